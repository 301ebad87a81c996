//! Loads every plugin in a directory: reads and validates its manifest, compiles its component
//! once (off the async threads), links it against the host and compares what its code serves
//! with its manifest, so a bad plugin is refused before anything is served. Every problem found is
//! reported, each naming the file at fault.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::ceilings;
use crate::capabilities::{Grants, HostRuntime, HostServices, Instance};
use crate::contract::{FeaturePre, TaskPre};
use crate::runtime::{ArtifactSource, PluginPre, WarmInstances};
use crate::spec::manifest::{COMPONENT_FILE, MANIFEST_FILE};
use crate::spec::{Manifest, PluginLimits};
use crate::telemetry::metrics::{InUse, PluginMeters, Refusal};

/// What plugins are loaded with: the runtime that compiles and links them and the services their
/// grants are built on. Cheap to clone.
#[derive(Clone)]
pub struct Loader {
    pub runtime: HostRuntime,
    pub services: HostServices,
}

/// A plugin compiled, linked and ready to instantiate.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// Hex SHA-256 of the component file.
    pub content_hash: String,
    pub loaded_at: DateTime<Utc>,
    /// Whether its machine code was compiled for this load or read from the artifact cache.
    pub artifact: ArtifactSource,
    pub pre: PluginPre<Grants>,
    /// The limits its calls run under.
    pub limits: PluginLimits,
    /// One permit per instance allowed to run at once (`limits.max_concurrency`).
    pub slots: Arc<Semaphore>,
    /// The capabilities its manifest grants.
    pub grants: Grants,
    /// Where its calls are counted.
    pub meters: PluginMeters,
    /// Its instances waiting for their caller's next request (none unless `[limits] reuse`).
    pub warm: WarmInstances<Grants>,
}

/// One of a plugin's instance slots, held while its instance lives, and counted as in use.
pub struct Slot<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    _in_use: InUse,
}

/// All of a plugin's instance slots stayed taken for as long as a call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginBusy {
    pub limit: u32,
}

impl LoadedPlugin {
    /// One of its instance slots, waiting at most `wait`: every call into the plugin (a request,
    /// a task's validation, a task run) holds one while its instance lives.
    pub async fn slot(&self, wait: std::time::Duration) -> Result<Slot<'_>, PluginBusy> {
        match tokio::time::timeout(wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(Slot { _permit: permit, _in_use: self.meters.in_use() }),
            _ => {
                self.meters.refused(Refusal::Busy);
                Err(PluginBusy { limit: self.limits.max_concurrency })
            }
        }
    }

    /// One of its instance slots, waiting as long as it takes (task runs, which hold a worker).
    pub async fn wait_for_slot(&self) -> Slot<'_> {
        let permit = self.slots.acquire().await.expect("a plugin's slots are never closed");
        Slot { _permit: permit, _in_use: self.meters.in_use() }
    }

    /// Its `handler` export, if it is a feature plugin.
    pub fn feature(&self) -> Option<&FeaturePre<Instance>> {
        self.pre.handler.as_ref()
    }

    /// Its `task-handler` export, if it handles tasks.
    pub fn task(&self) -> Option<&TaskPre<Instance>> {
        self.pre.task_handler.as_ref()
    }
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("dir", &self.dir)
            .field("content_hash", &self.content_hash)
            .finish_non_exhaustive()
    }
}

/// Why a plugin (or the plugin set) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "plugins directory {} does not exist (build the plugins with `cargo xtask build-plugins`, or pass --plugins)",
        .0.display()
    )]
    MissingDir(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: invalid manifest: {reason}", .path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("{}: component file not found (each plugin directory needs {MANIFEST_FILE} and {COMPONENT_FILE})", .0.display())]
    MissingComponent(PathBuf),
    #[error("{}: not a valid wasm component: {reason}", .path.display())]
    InvalidComponent { path: PathBuf, reason: String },
    #[error(
        "{}: plugin '{plugin}' imports `{interface}` but its manifest does not grant it (add {grant})",
        .path.display()
    )]
    Ungranted { path: PathBuf, plugin: String, interface: String, grant: &'static str },
    #[error("{}: plugin '{plugin}' cannot be linked against the host: {reason}", .path.display())]
    Link { path: PathBuf, plugin: String, reason: String },
    #[error("{}: plugin '{plugin}' could not describe what it serves: {reason}", .path.display())]
    Describe { path: PathBuf, plugin: String, reason: String },
    #[error("{}: plugin '{plugin}' code and manifest disagree: {}", .path.display(), .differences.join("; "))]
    Disagrees { path: PathBuf, plugin: String, differences: Vec<String> },
    #[error("{0}")]
    RouteConflict(String),
    #[error("task `{task}` is handled by both plugin '{first}' and plugin '{second}'")]
    TaskConflict { task: String, first: String, second: String },
}

/// Every problem found while loading a set of plugins.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(f, "{count} plugin problem{}:", if count == 1 { "" } else { "s" })?;
        for error in &self.0 {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// Loads every plugin directory under `dir` (hidden entries are skipped), in name order.
pub async fn load_dir(loader: &Loader, dir: &Path) -> Result<Vec<LoadedPlugin>, LoadErrors> {
    let plugin_dirs = list_plugin_dirs(dir).map_err(|e| LoadErrors(vec![e]))?;
    let mut loaded = Vec::with_capacity(plugin_dirs.len());
    let mut errors = Vec::new();
    for plugin_dir in plugin_dirs {
        match load_one(loader, &plugin_dir).await {
            Ok(plugin) => loaded.push(plugin),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() { Ok(loaded) } else { Err(LoadErrors(errors)) }
}

fn list_plugin_dirs(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LoadError::MissingDir(dir.to_owned()),
        _ => LoadError::Io { path: dir.to_owned(), source },
    })?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Io { path: dir.to_owned(), source })?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Loads one plugin directory.
#[tracing::instrument(skip(loader), fields(dir = %dir.display()))]
pub async fn load_one(loader: &Loader, dir: &Path) -> Result<LoadedPlugin, LoadError> {
    // Resolve a published symlink once: manifest and component are read from the same build.
    let build_dir = tokio::fs::canonicalize(dir).await.unwrap_or_else(|_| dir.to_owned());
    let manifest_path = dir.join(MANIFEST_FILE);
    let text =
        tokio::fs::read_to_string(build_dir.join(MANIFEST_FILE)).await.map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => {
                LoadError::Manifest { path: manifest_path.clone(), reason: "file not found".into() }
            }
            _ => LoadError::Io { path: manifest_path.clone(), source },
        })?;
    let component_path = dir.join(COMPONENT_FILE);
    let bytes = tokio::fs::read(build_dir.join(COMPONENT_FILE)).await.map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LoadError::MissingComponent(component_path.clone()),
        _ => LoadError::Io { path: component_path.clone(), source },
    })?;
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    prepare(loader, &dir_name, &manifest_path, &text, bytes).await
}

/// Validates and compiles a build given as bytes, expected to be plugin `name`; `manifest_path`
/// names the build in errors (its component is the file beside it).
pub async fn prepare(
    loader: &Loader,
    name: &str,
    manifest_path: &Path,
    manifest_text: &str,
    component: Vec<u8>,
) -> Result<LoadedPlugin, LoadError> {
    let manifest = Manifest::parse(manifest_text)
        .map_err(|reason| LoadError::Manifest { path: manifest_path.to_owned(), reason })?;
    let runtime = &loader.runtime;
    let limits = ceilings::apply(&manifest, runtime.limits())
        .map_err(|reason| LoadError::Manifest { path: manifest_path.to_owned(), reason })?;
    if name != manifest.name.as_str() {
        let reason = format!("the manifest names plugin '{}' but its directory is '{name}'", manifest.name);
        return Err(LoadError::Manifest { path: manifest_path.to_owned(), reason });
    }
    let component_path = manifest_path.with_file_name(COMPONENT_FILE);
    let content_hash = hex::encode(Sha256::digest(&component));

    let compiler = runtime.clone();
    let started = std::time::Instant::now();
    let hash = content_hash.clone();
    let (component, artifact) = tokio::task::spawn_blocking(move || compiler.load_component(&component, &hash))
        .await
        .map_err(|e| LoadError::InvalidComponent { path: component_path.clone(), reason: e.to_string() })?
        .map_err(|e| LoadError::InvalidComponent { path: component_path.clone(), reason: format!("{e:#}") })?;
    let grants = Grants::for_manifest(&manifest, &loader.services, limits.timeout)
        .map_err(|reason| LoadError::Manifest { path: manifest_path.to_owned(), reason })?;
    if let Some((interface, capability)) = crate::spec::grants::ungranted(&manifest, &runtime.imports(&component)) {
        let (plugin, interface, grant) = (manifest.name.to_string(), interface.to_owned(), capability.grant);
        return Err(LoadError::Ungranted { path: component_path, plugin, interface, grant });
    }
    let pre = runtime.prepare(&manifest, &component).map_err(|e| LoadError::Link {
        path: component_path.clone(),
        plugin: manifest.name.to_string(),
        reason: format!("{e:#}"),
    })?;
    let meters = loader.runtime.metrics().plugin(manifest.name.as_str());
    let description = runtime.describe(&pre, &limits, &meters, grants.clone()).await.map_err(|e| {
        LoadError::Describe { path: component_path.clone(), plugin: manifest.name.to_string(), reason: e.to_string() }
    })?;
    let differences = description.differences(&manifest, "its code");
    if !differences.is_empty() {
        let plugin = manifest.name.to_string();
        return Err(LoadError::Disagrees { path: manifest_path.to_owned(), plugin, differences });
    }
    tracing::info!(
        plugin = %manifest.name,
        version = %manifest.version,
        hash = &content_hash[..12],
        artifact = artifact.as_str(),
        load_ms = started.elapsed().as_millis() as u64,
        "plugin loaded"
    );
    let dir = manifest_path.parent().map(Path::to_owned).unwrap_or_default();
    let slots = Arc::new(Semaphore::new(limits.max_concurrency as usize));
    let warm = runtime.warm_instances(&limits, &meters);
    Ok(LoadedPlugin {
        manifest,
        dir,
        content_hash,
        loaded_at: Utc::now(),
        artifact,
        pre,
        limits,
        slots,
        grants,
        meters,
        warm,
    })
}
