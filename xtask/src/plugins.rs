//! `cargo xtask build-plugins`: finds every plugin under `plugins/` (a directory with both
//! `Cargo.toml` and `plugin.toml`), builds it for wasm32-wasip2, and publishes each build as a unit
//! by the host's own rule (`autoflow_spec::publish`), after checking its manifest by the host's own
//! rules (`autoflow_spec::manifest`), into `dist/plugins/<name>` (test plugins,
//! named `test-*`, into `dist/test-plugins/`). A running host watching `dist/plugins` reloads it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autoflow_spec::Manifest;
use autoflow_spec::manifest::MANIFEST_FILE;

const TARGET: &str = "wasm32-wasip2";

/// One plugin crate found in the source tree.
struct PluginSource {
    /// The plugin's name from its `plugin.toml`.
    name: String,
    /// The Cargo package name.
    package: String,
    dir: PathBuf,
}

/// Builds and publishes every plugin; fails naming each plugin that did not build.
pub fn build_all(root: &Path, release: bool) -> Result<()> {
    ensure_wasm_target()?;
    let sources = discover(&root.join("plugins"))?;
    let mut published = 0;
    let mut failed = Vec::new();
    for source in &sources {
        eprintln!("xtask: building plugin `{}` ({})", source.name, source.dir.display());
        match checked_manifest(root, source).and_then(|manifest| Ok((manifest, build_one(root, source, release)?))) {
            Ok((manifest, artifact)) => {
                let dist = dist_of(root, &source.name);
                let dir = publish_build(&dist, source, &manifest, &artifact)?;
                let size = fs::metadata(dir.join("plugin.wasm")).map(|m| m.len()).unwrap_or(0);
                eprintln!("xtask: plugin `{}` → {} ({} KiB)", source.name, dir.display(), size / 1024);
                published += 1;
            }
            Err(error) => {
                eprintln!("xtask: plugin `{}` not published: {error:#}", source.name);
                failed.push(source.name.clone());
            }
        }
    }
    for dist in [root.join("dist/plugins"), root.join("dist/test-plugins")] {
        let names: Vec<&str> =
            sources.iter().map(|s| s.name.as_str()).filter(|name| dist_of(root, name) == dist).collect();
        remove_stale(&dist, &names)?;
    }
    if !failed.is_empty() {
        bail!("{} plugin(s) not published: {} (the reasons are above)", failed.len(), failed.join(", "));
    }
    eprintln!("xtask: {published} plugin(s) built");
    Ok(())
}

/// Where plugin `name` is published: `dist/test-plugins` for test fixtures, else `dist/plugins`.
fn dist_of(root: &Path, name: &str) -> PathBuf {
    root.join("dist").join(if name.starts_with("test-") { "test-plugins" } else { "plugins" })
}

/// The list, inside a dist directory, of the plugins this tool published there.
const PUBLISHED_LIST: &str = ".published-by-xtask";

/// Removes from `dist` the plugins this tool published there before whose sources are gone
/// (deleted or renamed), so a host loading `dist` never serves them beside their successor, and
/// records `names` as published. Builds it did not publish (uploads a running host installed) stay.
fn remove_stale(dist: &Path, names: &[&str]) -> Result<()> {
    let list = dist.join(PUBLISHED_LIST);
    let before = fs::read_to_string(&list).unwrap_or_default();
    for stale in before.lines().map(str::trim).filter(|name| !name.is_empty() && !names.contains(name)) {
        autoflow_spec::publish::remove_plugin(dist, stale)
            .with_context(|| format!("removing the stale build of `{stale}` from {}", dist.display()))?;
        eprintln!("xtask: removed `{stale}` from {}: no plugin under plugins/ is named so any more", dist.display());
    }
    if names.is_empty() && !dist.exists() {
        return Ok(());
    }
    fs::create_dir_all(dist)?;
    let now: String = names.iter().map(|name| format!("{name}\n")).collect();
    fs::write(&list, now).with_context(|| format!("writing {}", list.display()))
}

/// Builds every plugin now and again after each settled change to `plugins/` or `wit/`, until
/// interrupted. A failed build is reported and the previous one stays published.
pub fn watch(root: &Path, release: bool) -> Result<()> {
    use notify_debouncer_full::new_debouncer;
    use notify_debouncer_full::notify::RecursiveMode;
    use notify_debouncer_full::notify::event::{EventKind, ModifyKind};

    let build = || {
        let started = Instant::now();
        match build_all(root, release) {
            Ok(()) => eprintln!("xtask: built in {:.1}s; watching for changes", started.elapsed().as_secs_f64()),
            Err(error) => eprintln!("xtask: error: {error:#}; watching for changes"),
        }
    };
    build();
    let (tx, rx) = mpsc::channel();
    let mut debouncer = new_debouncer(Duration::from_millis(300), None, tx)?;
    debouncer.watch(root.join("plugins"), RecursiveMode::Recursive)?;
    debouncer.watch(root.join("wit"), RecursiveMode::Recursive)?;
    for result in rx {
        let Ok(events) = result else { continue };
        // Only writes count: the build itself opens and reads these files.
        let is_write = |kind: &EventKind| {
            matches!(kind, EventKind::Create(_) | EventKind::Remove(_))
                || matches!(kind, EventKind::Modify(m) if !matches!(m, ModifyKind::Metadata(_)))
        };
        let is_source = |path: &Path| !path.components().any(|c| c.as_os_str() == "target");
        if events.iter().filter(|e| is_write(&e.kind)).flat_map(|e| e.paths.iter()).any(|p| is_source(p)) {
            build();
        }
    }
    Ok(())
}

/// Adds the wasm32-wasip2 standard library through rustup when it is missing (a fresh machine).
pub fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("xtask: adding the {TARGET} target (rustup target add {TARGET})");
            let status = Command::new("rustup").args(["target", "add", TARGET]).status()?;
            if !status.success() {
                bail!("`rustup target add {TARGET}` failed ({status})");
            }
            Ok(())
        }
        Err(_) => {
            eprintln!("xtask: rustup not found; assuming the {TARGET} standard library is installed");
            Ok(())
        }
    }
}

fn discover(plugins_dir: &Path) -> Result<Vec<PluginSource>> {
    let mut sources = Vec::new();
    let entries = fs::read_dir(plugins_dir).with_context(|| format!("reading {}", plugins_dir.display()))?;
    for entry in entries {
        let dir = entry?.path();
        let (cargo_toml, plugin_toml) = (dir.join("Cargo.toml"), dir.join(MANIFEST_FILE));
        if !cargo_toml.is_file() || !plugin_toml.is_file() {
            continue;
        }
        let package = toml_string(&cargo_toml, &["package", "name"])?;
        let name = toml_string(&plugin_toml, &["name"])?;
        sources.push(PluginSource { name, package, dir });
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sources)
}

fn toml_string(path: &Path, keys: &[&str]) -> Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: toml::Value = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for key in keys {
        value = value.get(key).cloned().with_context(|| format!("{}: missing `{}`", path.display(), keys.join(".")))?;
    }
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{}: `{}` is not a string", path.display(), keys.join(".")))
}

/// Runs cargo for one plugin and returns the path of the component it produced.
fn build_one(root: &Path, source: &PluginSource, release: bool) -> Result<PathBuf> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Run inside plugins/ so its .cargo/config.toml (the wasm target) applies.
    command
        .current_dir(root.join("plugins"))
        .args(["build", "--target", TARGET, "--package", &source.package, "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        command.arg("--release");
    }
    let mut child = command.spawn().context("could not start cargo")?;
    let stdout = child.stdout.take().context("cargo's stdout was not captured")?;
    let mut artifact = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] == "compiler-artifact"
            && message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        {
            let wasm = message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"));
            if let Some(wasm) = wasm {
                artifact = Some(PathBuf::from(wasm));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build exited with {status}");
    }
    artifact
        .with_context(|| format!("cargo built `{}` but produced no .wasm (is its crate-type cdylib?)", source.package))
}

/// The manifest to publish for `source`: its `plugin.toml` with schema files inlined, checked by
/// the host's own manifest rules, so a build the host would refuse is never published. Errors name
/// the file the author edits.
fn checked_manifest(root: &Path, source: &PluginSource) -> Result<String> {
    let path = source.dir.join(MANIFEST_FILE);
    let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
    let text = fs::read_to_string(&path).with_context(|| format!("reading {shown}"))?;
    let published = inline_schemas(&text, &path)?;
    Manifest::parse(&published).map_err(|reason| anyhow::anyhow!("{shown}: invalid manifest: {reason}"))?;
    Ok(published)
}

/// Publishes the plugin's manifest and the built component together (an unchanged build is left as is).
fn publish_build(dist: &Path, source: &PluginSource, manifest: &str, artifact: &Path) -> Result<PathBuf> {
    let component = fs::read(artifact).with_context(|| format!("reading {}", artifact.display()))?;
    autoflow_spec::publish::publish(dist, &source.name, manifest.as_bytes(), &component)
        .with_context(|| format!("publishing {} into {}", source.name, dist.display()))?;
    Ok(dist.join(&source.name))
}

/// The manifest at `manifest_path` (text `text`) with each route's `request-schema` and
/// `response-schema` file (a path relative to the manifest) replaced by the file's JSON, so the
/// published manifest carries its schemas wherever it goes (uploads, other hosts). Unchanged
/// when no route names a file; a manifest that does not parse is left for the host to report.
fn inline_schemas(text: &str, manifest_path: &Path) -> Result<String> {
    let Ok(mut manifest) = toml::from_str::<toml::Table>(text) else { return Ok(text.to_owned()) };
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let mut inlined = false;
    let routes = manifest.get_mut("routes").and_then(toml::Value::as_array_mut).into_iter().flatten();
    for route in routes.filter_map(toml::Value::as_table_mut) {
        for key in ["request-schema", "response-schema"] {
            let Some(reference) = route.get(key).and_then(toml::Value::as_str) else { continue };
            if reference.trim_start().starts_with('{') {
                continue;
            }
            let file = dir.join(reference);
            let json = fs::read_to_string(&file).with_context(|| {
                format!("{}: {key} names {}, which cannot be read", manifest_path.display(), file.display())
            })?;
            let schema: serde_json::Value = serde_json::from_str(&json).with_context(|| {
                format!("{} ({key} of {}) is not valid JSON", file.display(), manifest_path.display())
            })?;
            route.insert(key.to_owned(), toml::Value::String(schema.to_string()));
            inlined = true;
        }
    }
    if !inlined {
        return Ok(text.to_owned());
    }
    toml::to_string(&manifest).with_context(|| format!("writing {} with its schemas", manifest_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_whose_sources_are_gone_are_removed_and_uploads_stay() {
        let dist = tempfile::TempDir::new().unwrap();
        for name in ["bookmark", "notes", "uploaded"] {
            autoflow_spec::publish::publish(dist.path(), name, name.as_bytes(), b"component").unwrap();
        }
        remove_stale(dist.path(), &["bookmark", "notes"]).unwrap();

        remove_stale(dist.path(), &["bookmarks", "notes"]).unwrap();

        let left: Vec<String> = fs::read_dir(dist.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with(".published"))
            .collect();
        assert!(!left.iter().any(|name| name == "bookmark" || name.starts_with(".bookmark.")), "{left:?}");
        assert!(left.iter().any(|name| name == "notes") && left.iter().any(|name| name == "uploaded"), "{left:?}");
        let listed = fs::read_to_string(dist.path().join(PUBLISHED_LIST)).unwrap();
        assert_eq!(listed, "bookmarks\nnotes\n");
    }

    #[test]
    fn a_manifest_the_host_would_refuse_is_reported_against_the_source_file() {
        let root = tempfile::TempDir::new().unwrap();
        let dir = root.path().join("plugins/fetcher");
        fs::create_dir_all(&dir).unwrap();
        let source = PluginSource { name: "fetcher".into(), package: "fetcher".into(), dir: dir.clone() };
        let manifest = "name = \"fetcher\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"fetch\"\n\
                        [capabilities]\noutbound-hosts = [\"http://127.0.0.1:8765/\"]\n";
        fs::write(dir.join(MANIFEST_FILE), manifest).unwrap();

        let error = format!("{:#}", checked_manifest(root.path(), &source).unwrap_err());
        assert_eq!(
            error,
            "plugins/fetcher/plugin.toml: invalid manifest: outbound-hosts entry `http://127.0.0.1:8765/` is not \
             `host` or `host:port`: write `127.0.0.1:8765`"
        );
        fs::write(dir.join(MANIFEST_FILE), manifest.replace("http://127.0.0.1:8765/", "127.0.0.1:8765")).unwrap();
        assert!(checked_manifest(root.path(), &source).is_ok());
    }

    #[test]
    fn schema_files_are_inlined_as_json_and_missing_ones_named() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join("schemas")).unwrap();
        std::fs::write(dir.path().join("schemas/new.json"), "{ \"type\": \"object\" }").unwrap();
        let manifest = dir.path().join("plugin.toml");
        let text =
            "name = \"a\"\n[[routes]]\nmethod = \"POST\"\npath = \"/a\"\nrequest-schema = \"schemas/new.json\"\n";

        let published: toml::Table = toml::from_str(&inline_schemas(text, &manifest).unwrap()).unwrap();
        assert_eq!(published["routes"][0]["request-schema"].as_str(), Some(r#"{"type":"object"}"#));
        assert_eq!(published["name"].as_str(), Some("a"));

        let plain = "name = \"a\" # kept as written\n";
        assert_eq!(inline_schemas(plain, &manifest).unwrap(), plain);
        let missing = text.replace("new.json", "gone.json");
        let error = format!("{:#}", inline_schemas(&missing, &manifest).unwrap_err());
        assert!(error.contains("request-schema names") && error.contains("gone.json"), "{error}");
    }
}
