//! Reads what a built component imports and what its code serves and uses (its `description`
//! export), so `build-plugins` can check both against the manifest before publishing, by the same
//! rules the host's loader applies (`autoflow_spec::grants` and `autoflow_spec::description`).
//!
//! The component runs in a bare engine with every import stubbed to trap: describing must not
//! call the host, and nothing else of the plugin runs.

use anyhow::{Result, bail};
use autoflow_spec::description::Description;
use wasmtime::component::{Component, Linker, Val};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, OptLevel, Store};

/// The exported interface, as the `plugin` world names it.
const INTERFACE: &str = "autoflow:platform/description@0.1.0";

/// What a built component says of itself.
pub struct Inspected {
    /// The interfaces it imports, versioned (`autoflow:platform/cache@0.1.0`).
    pub imports: Vec<String>,
    /// What its `describe` export returned.
    pub description: Description,
}

/// Reads the imports of `component` (the bytes of a built `plugin.wasm`) and calls its `describe`.
pub fn inspect(component: &[u8]) -> Result<Inspected> {
    let (imports, returned) = call_describe(component).map_err(|error| anyhow::anyhow!("{error:#}"))?;
    Ok(Inspected { imports, description: contents(&returned)? })
}

/// The component's imports and the value its `describe` export returns.
fn call_describe(component: &[u8]) -> wasmtime::Result<(Vec<String>, Val)> {
    let mut config = Config::new();
    // Compiled once to be called once: compile as fast as possible.
    config.cranelift_opt_level(OptLevel::None);
    let engine = Engine::new(&config)?;
    let component = Component::new(&engine, component).context("the build is not a valid component")?;
    let imports = component.component_type().imports(&engine).map(|(name, _)| name.to_owned()).collect();
    let mut linker = Linker::<()>::new(&engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &component).context("the component could not be instantiated")?;
    let interface = instance
        .get_export_index(&mut store, None, INTERFACE)
        .with_context(|| format!("the component exports no `{INTERFACE}` (is it built with autoflow-sdk?)"))?;
    let describe = instance
        .get_export_index(&mut store, Some(&interface), "describe")
        .and_then(|index| instance.get_func(&mut store, index))
        .with_context(|| format!("`{INTERFACE}` has no `describe` function"))?;
    let mut results = [Val::Bool(false)];
    describe.call(&mut store, &[], &mut results).context("its `describe` function failed")?;
    let [returned] = results;
    Ok((imports, returned))
}

/// The `contents` record as a [`Description`].
fn contents(value: &Val) -> Result<Description> {
    let Val::Record(fields) = value else { bail!("`describe` returned {value:?}, not a record") };
    let mut description = Description::default();
    for (name, value) in fields {
        match name.as_str() {
            "routes" => {
                for route in list(value)? {
                    let Val::Record(route) = route else { bail!("a route is {route:?}, not a record") };
                    let field = |wanted: &str| {
                        route.iter().find(|(name, _)| name == wanted).map(|(_, value)| string(value)).transpose()
                    };
                    let (Some(method), Some(path)) = (field("method")?, field("path")?) else {
                        bail!("a route lacks its method or path")
                    };
                    description.routes.push((method, path));
                }
            }
            "tasks" => description.tasks = list(value)?.iter().map(string).collect::<Result<_>>()?,
            "collections" => description.collections = list(value)?.iter().map(string).collect::<Result<_>>()?,
            _ => {}
        }
    }
    Ok(description)
}

fn list(value: &Val) -> Result<&[Val]> {
    match value {
        Val::List(items) => Ok(items),
        other => bail!("expected a list, found {other:?}"),
    }
}

fn string(value: &Val) -> Result<String> {
    match value {
        Val::String(text) => Ok(text.clone()),
        other => bail!("expected a string, found {other:?}"),
    }
}
