//! The plugins being served, swapped atomically while requests run.
//!
//! Each request takes a snapshot ([`LivePlugins::registry`]) and keeps it to the end, so requests
//! in flight finish on the build they started on; a swap only affects requests that start after it.
//! A reload compiles off the request path, checks the new build against the other plugins, and
//! either swaps it in or keeps the previous build serving and records why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use super::loader::{LoadErrors, LoadedPlugin, Loader, load_dir, load_one};
use super::registry::Registry;
use crate::capabilities::HostServices;
use crate::db::{Database, PluginRecord};
use crate::telemetry::metrics::{Metrics, ReloadResult};

/// Why the latest reload of a plugin did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    pub message: String,
    pub at: DateTime<Utc>,
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new build now serves.
    Loaded { version: String, content_hash: String },
    /// The build on disk is the one already serving.
    Unchanged,
    /// The plugin's directory is gone; its routes now answer 404.
    Unloaded,
    /// There is no such plugin, on disk or serving.
    Absent,
}

/// The live plugin set of one host.
pub struct LivePlugins {
    loader: Loader,
    dir: PathBuf,
    db: Database,
    registry: ArcSwap<Registry>,
    failures: Mutex<BTreeMap<String, ReloadFailure>>,
    /// Reloads run one at a time, so two never race to swap.
    reload_lock: tokio::sync::Mutex<()>,
    /// Builds read and prepared by reloads (compiled or taken from the artifact cache).
    builds_loaded: AtomicU64,
}

impl LivePlugins {
    /// Loads every plugin under `dir`; any problem refuses the whole set (start-up is strict).
    pub async fn load(loader: Loader, dir: &Path, db: Database) -> Result<Self, LoadErrors> {
        let plugins = load_dir(&loader, dir).await?.into_iter().map(Arc::new).collect();
        let registry = Registry::new(plugins)?;
        let live = Self {
            loader,
            dir: dir.to_owned(),
            db,
            registry: ArcSwap::from_pointee(registry),
            failures: Mutex::default(),
            reload_lock: tokio::sync::Mutex::new(()),
            builds_loaded: AtomicU64::new(0),
        };
        for plugin in live.registry().plugins() {
            live.record(plugin).await;
        }
        Ok(live)
    }

    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Metrics {
        self.loader.runtime.metrics()
    }

    /// The services plugin capabilities are built on.
    pub fn services(&self) -> &HostServices {
        &self.loader.services
    }

    pub(super) fn db(&self) -> &Database {
        &self.db
    }

    /// A snapshot of the current plugin set; hold it for the whole request.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// How many builds reloads have read and prepared since start-up.
    pub fn builds_loaded(&self) -> u64 {
        self.builds_loaded.load(Ordering::Relaxed)
    }

    /// The latest failed reload of each plugin whose newest build is not serving.
    pub fn failures(&self) -> BTreeMap<String, ReloadFailure> {
        self.failures.lock().expect("failures lock").clone()
    }

    /// Reloads plugin `name` from its directory: loads a new or changed build, unloads a removed
    /// one. On failure the previous build keeps serving and the failure is kept for the admin API.
    #[tracing::instrument(skip(self))]
    pub async fn reload(&self, name: &str) -> Result<ReloadOutcome, LoadErrors> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let current = self.registry();
        let serving = current.find(name).cloned();
        let others: Vec<_> = current.plugins().iter().filter(|p| p.manifest.name.as_str() != name).cloned().collect();
        let dir = self.dir.join(name);

        let result = if dir.is_dir() {
            self.load_changed(&dir, serving.as_deref(), others).await
        } else if serving.is_some() {
            Registry::new(others).map(|registry| Some((registry, ReloadOutcome::Unloaded)))
        } else {
            Ok(None)
        };
        match result {
            Ok(Some((registry, outcome))) => {
                self.registry.store(Arc::new(registry));
                // No request can reach the replaced build any more; its warm instances go now.
                if let Some(retired) = &serving {
                    retired.warm.clear();
                }
                self.clear_failure(name);
                if let Some(plugin) = self.registry().find(name) {
                    self.record(plugin).await;
                }
                tracing::info!(?outcome, "plugin reloaded");
                let counted = match outcome {
                    ReloadOutcome::Unloaded => ReloadResult::Unloaded,
                    _ => ReloadResult::Loaded,
                };
                self.metrics().reload(name, counted);
                Ok(outcome)
            }
            Ok(None) => {
                self.clear_failure(name);
                if serving.is_none() {
                    return Ok(ReloadOutcome::Absent);
                }
                self.metrics().reload(name, ReloadResult::Unchanged);
                Ok(ReloadOutcome::Unchanged)
            }
            Err(errors) => {
                tracing::warn!(error = %errors, "reload failed; the previous build keeps serving");
                self.metrics().reload(name, ReloadResult::Failed);
                let failure = ReloadFailure { message: errors.to_string(), at: Utc::now() };
                self.failures.lock().expect("failures lock").insert(name.to_owned(), failure);
                Err(errors)
            }
        }
    }

    /// Reloads every plugin on disk or serving.
    pub async fn reload_all(&self) -> Vec<(String, Result<ReloadOutcome, LoadErrors>)> {
        let mut names: Vec<String> = self.registry().plugins().iter().map(|p| p.manifest.name.to_string()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && entry.path().is_dir() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let result = self.reload(&name).await;
            results.push((name, result));
        }
        results
    }

    /// Loads the build in `dir`; `None` when it is the build already serving.
    async fn load_changed(
        &self,
        dir: &Path,
        serving: Option<&LoadedPlugin>,
        mut others: Vec<Arc<LoadedPlugin>>,
    ) -> Result<Option<(Registry, ReloadOutcome)>, LoadErrors> {
        self.builds_loaded.fetch_add(1, Ordering::Relaxed);
        let plugin = load_one(&self.loader, dir).await.map_err(|error| LoadErrors(vec![error]))?;
        if serving.is_some_and(|s| s.content_hash == plugin.content_hash && s.manifest == plugin.manifest) {
            return Ok(None);
        }
        let outcome = ReloadOutcome::Loaded {
            version: plugin.manifest.version.clone(),
            content_hash: plugin.content_hash.clone(),
        };
        others.push(Arc::new(plugin));
        others.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(Some((Registry::new(others)?, outcome)))
    }

    fn clear_failure(&self, name: &str) {
        self.failures.lock().expect("failures lock").remove(name);
    }

    /// Notes in the database which build now serves; a failure is logged, not fatal.
    async fn record(&self, plugin: &LoadedPlugin) {
        let record = PluginRecord {
            name: plugin.manifest.name.to_string(),
            version: plugin.manifest.version.clone(),
            content_hash: plugin.content_hash.clone(),
            loaded_at: plugin.loaded_at,
        };
        if let Err(error) = self.db.record_plugin_loaded(&record).await {
            tracing::warn!(plugin = %record.name, %error, "could not record the loaded plugin");
        }
    }
}
