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
/// How long `--watch` lets changes settle before building: an editor's save is several events.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(50);

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
    build(root, release, &Rebuild::All, None)
}

/// [`build_all`] with cargo's build output in `target_dir` (a shared one keeps the SDK's
/// dependencies compiled across checkouts).
pub fn build_all_into(root: &Path, release: bool, target_dir: &Path) -> Result<()> {
    ensure_wasm_target()?;
    build(root, release, &Rebuild::All, Some(target_dir))
}

/// Which plugins a build covers.
enum Rebuild {
    All,
    /// The plugins whose directories hold any of these changed paths.
    Changed(Vec<PathBuf>),
}

impl Rebuild {
    /// What a change to `paths` needs rebuilt: only the plugins they lie in, unless one lies
    /// outside every plugin's own directory (the SDK, the WIT contract, the workspace's manifest or
    /// lock file, which every plugin shares, or a plugin directory removed or renamed).
    fn after(paths: Vec<PathBuf>, sources: &[PluginSource]) -> Self {
        let own = |path: &PathBuf| sources.iter().any(|source| path.starts_with(&source.dir));
        if paths.iter().all(own) { Self::Changed(paths) } else { Self::All }
    }

    fn includes(&self, source: &PluginSource) -> bool {
        match self {
            Self::All => true,
            Self::Changed(paths) => paths.iter().any(|path| path.starts_with(&source.dir)),
        }
    }
}

/// Builds and publishes the plugins `which` selects, and removes builds whose source is gone.
fn build(root: &Path, release: bool, which: &Rebuild, target_dir: Option<&Path>) -> Result<()> {
    let sources = discover(&root.join("plugins"))?;
    let mut published = 0;
    let mut failed = Vec::new();
    for source in sources.iter().filter(|source| which.includes(source)) {
        eprintln!("xtask: building plugin `{}` ({})", source.name, source.dir.display());
        match checked_build(root, source, release, target_dir) {
            Ok((manifest, component)) => {
                let dist = dist_of(root, &source.name);
                let dir = publish_build(&dist, source, &manifest, &component)?;
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

/// Builds every plugin now, then after each settled change to `plugins/` or `wit/` rebuilds the
/// plugins the change touches (every plugin after a change to the SDK or the contract), until
/// interrupted. A failed build is reported and the previous one stays published.
pub fn watch(root: &Path, release: bool) -> Result<()> {
    use notify_debouncer_full::new_debouncer;
    use notify_debouncer_full::notify::RecursiveMode;
    use notify_debouncer_full::notify::event::{EventKind, ModifyKind};

    ensure_wasm_target()?;
    let rebuild = |which: Rebuild| {
        let started = Instant::now();
        match build(root, release, &which, None) {
            Ok(()) => eprintln!("xtask: built in {:.1}s; watching for changes", started.elapsed().as_secs_f64()),
            Err(error) => eprintln!("xtask: error: {error:#}; watching for changes"),
        }
    };
    rebuild(Rebuild::All);
    let (tx, rx) = mpsc::channel();
    let mut debouncer = new_debouncer(WATCH_DEBOUNCE, None, tx)?;
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
        let changed: Vec<PathBuf> = events
            .iter()
            .filter(|e| is_write(&e.kind))
            .flat_map(|e| e.paths.iter())
            .filter(|p| is_source(p))
            .cloned()
            .collect();
        if changed.is_empty() {
            continue;
        }
        match discover(&root.join("plugins")) {
            Ok(sources) => rebuild(Rebuild::after(changed, &sources)),
            Err(error) => eprintln!("xtask: error: {error:#}; watching for changes"),
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
fn build_one(root: &Path, source: &PluginSource, release: bool, target_dir: Option<&Path>) -> Result<PathBuf> {
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
    if let Some(dir) = target_dir {
        command.arg("--target-dir").arg(dir);
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

/// Builds `source` and returns the manifest and component to publish, refusing (with errors that
/// name the files the author edits) a build the host would refuse: a manifest its rules reject, or
/// code that serves or uses other routes, tasks or collections than the manifest declares.
fn checked_build(
    root: &Path,
    source: &PluginSource,
    release: bool,
    target_dir: Option<&Path>,
) -> Result<(String, Vec<u8>)> {
    let (text, manifest) = checked_manifest(root, source)?;
    let artifact = build_one(root, source, release, target_dir)?;
    let component = fs::read(&artifact).with_context(|| format!("reading {}", artifact.display()))?;
    check_component(root, source, &manifest, &component)?;
    Ok((text, component))
}

/// The manifest to publish for `source`: its `plugin.toml` with schema files inlined, checked by
/// the host's own manifest rules.
fn checked_manifest(root: &Path, source: &PluginSource) -> Result<(String, Manifest)> {
    let path = source.dir.join(MANIFEST_FILE);
    let shown = shown(root, &path);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {shown}"))?;
    let published = inline_schemas(&text, &path)?;
    let manifest =
        Manifest::parse(&published).map_err(|reason| anyhow::anyhow!("{shown}: invalid manifest: {reason}"))?;
    Ok((published, manifest))
}

/// Checks the built `component` against `manifest` as the host's loader will: every import it
/// needs is granted, and what its code describes is what the manifest declares.
fn check_component(root: &Path, source: &PluginSource, manifest: &Manifest, component: &[u8]) -> Result<()> {
    let manifest_path = shown(root, &source.dir.join(MANIFEST_FILE));
    let code = shown(root, &source.dir.join("src"));
    let inspected = crate::describe::inspect(component).with_context(|| format!("reading what {code} serves"))?;
    if let Some((interface, capability)) = autoflow_spec::grants::ungranted(manifest, &inspected.imports) {
        bail!(
            "{manifest_path}: {code} imports `{interface}` but the manifest does not grant it (add {})",
            capability.grant
        );
    }
    let differences = inspected.description.differences(manifest, &code);
    if !differences.is_empty() {
        bail!("{manifest_path}: code and manifest disagree:\n  - {}", differences.join("\n  - "));
    }
    Ok(())
}

/// `path` relative to the repository root, as the author sees it.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// Publishes the plugin's manifest and the built component together (an unchanged build is left as is).
fn publish_build(dist: &Path, source: &PluginSource, manifest: &str, component: &[u8]) -> Result<PathBuf> {
    autoflow_spec::publish::publish(dist, &source.name, manifest.as_bytes(), component)
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

        let error = format!("{:#}", checked_manifest(root.path(), &source).map(|_| ()).unwrap_err());
        assert_eq!(
            error,
            "plugins/fetcher/plugin.toml: invalid manifest: outbound-hosts entry `http://127.0.0.1:8765/` is not \
             `host` or `host:port`: write `127.0.0.1:8765`"
        );
        fs::write(dir.join(MANIFEST_FILE), manifest.replace("http://127.0.0.1:8765/", "127.0.0.1:8765")).unwrap();
        assert!(checked_manifest(root.path(), &source).is_ok());
    }

    /// The repository root and the built `notes` example (`cargo xtask test` builds the plugins first).
    fn built_notes() -> (PathBuf, PluginSource, Vec<u8>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
        let component = fs::read(root.join("dist/plugins/notes/plugin.wasm"))
            .expect("dist/plugins/notes is built by `cargo xtask build-plugins`");
        let source = PluginSource { name: "notes".into(), package: "notes".into(), dir: root.join("plugins/notes") };
        (root, source, component)
    }

    #[test]
    fn a_build_whose_code_and_manifest_agree_passes() {
        let (root, source, component) = built_notes();
        let (_, manifest) = checked_manifest(&root, &source).unwrap();
        check_component(&root, &source, &manifest, &component).unwrap();
    }

    #[test]
    fn a_build_whose_code_and_manifest_disagree_is_refused_naming_both_files() {
        let (root, source, component) = built_notes();
        let (text, _) = checked_manifest(&root, &source).unwrap();
        let misnamed = Manifest::parse(&text.replace("notes = \"user\"", "note = \"user\"")).unwrap();

        let error = check_component(&root, &source, &misnamed, &component).unwrap_err().to_string();

        assert!(error.starts_with("plugins/notes/plugin.toml: code and manifest disagree:"), "{error}");
        assert!(
            error.contains("records collection `notes` is used by plugins/notes/src but plugin.toml does not grant it"),
            "{error}"
        );
        assert!(error.contains("records collection `note` is granted in plugin.toml but plugins/notes/src"), "{error}");
    }

    #[test]
    fn a_change_inside_one_plugin_rebuilds_only_that_plugin() {
        let source = |name: &str| PluginSource {
            name: name.into(),
            package: name.into(),
            dir: format!("/r/plugins/{name}").into(),
        };
        let sources = [source("notes"), source("hello"), source("note")];
        let after = |paths: &[&str]| Rebuild::after(paths.iter().map(PathBuf::from).collect(), &sources);

        let one = after(&["/r/plugins/notes/src/lib.rs", "/r/plugins/notes/plugin.toml"]);
        let built: Vec<&str> = sources.iter().filter(|s| one.includes(s)).map(|s| s.name.as_str()).collect();
        assert_eq!(built, ["notes"], "`note` is not inside `notes`");

        for shared in
            ["/r/plugins/sdk/src/lib.rs", "/r/wit/records.wit", "/r/plugins/Cargo.toml", "/r/plugins/gone/src/lib.rs"]
        {
            let all = after(&["/r/plugins/hello/src/lib.rs", shared]);
            assert!(sources.iter().all(|s| all.includes(s)), "{shared}");
        }
    }

    #[test]
    fn a_build_importing_what_its_manifest_does_not_grant_is_refused_naming_the_grant() {
        let (root, source, component) = built_notes();
        let (text, _) = checked_manifest(&root, &source).unwrap();
        let uncached = Manifest::parse(&text.replace("cache = true", "cache = false")).unwrap();

        let error = check_component(&root, &source, &uncached, &component).unwrap_err().to_string();

        assert_eq!(
            error,
            "plugins/notes/plugin.toml: plugins/notes/src imports `autoflow:platform/cache@0.1.0` but the manifest \
             does not grant it (add [capabilities] cache = true)"
        );
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
