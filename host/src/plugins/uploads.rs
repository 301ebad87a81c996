//! Uploaded builds. An upload is validated exactly like a build on disk, stored in the database
//! (so every host sharing it can load it), then published into this host's plugins directory,
//! where the ordinary reload path swaps it in. Other hosts bring their directory in line with the
//! database when told a plugin changed ([`LivePlugins::sync_from_db`]) and at start-up
//! ([`sync_dir_from_db`]); the database is the source of truth for every uploaded name.

use std::io;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use super::live::{LivePlugins, ReloadOutcome};
use super::loader::{LoadErrors, prepare};
use super::registry::Registry;
use crate::db::{Database, DbError, PluginBuild};
use crate::spec::PluginName;
use crate::spec::publish::{publish, unpublish};

/// Why an upload or delete did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The build is not a valid plugin (manifest, component, imports).
    #[error("{0}")]
    Invalid(String),
    /// Its routes conflict with a plugin already serving.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not write the build into the plugins directory: {0}")]
    Io(#[from] io::Error),
    #[error("the build was stored but did not load: {0}")]
    Reload(LoadErrors),
}

/// Where uploads are said to come from in error messages.
const UPLOAD_MANIFEST: &str = "upload/plugin.toml";

impl LivePlugins {
    /// Validates an uploaded build of `name`, stores it for every host and swaps it in here.
    #[tracing::instrument(skip(self, manifest, component), fields(bytes = component.len()))]
    pub async fn install(
        &self,
        name: &PluginName,
        manifest: String,
        component: Vec<u8>,
    ) -> Result<ReloadOutcome, InstallError> {
        let plugin = prepare(self.loader(), name.as_str(), Path::new(UPLOAD_MANIFEST), &manifest, component.clone())
            .await
            .map_err(|error| InstallError::Invalid(error.to_string()))?;
        let build = PluginBuild {
            name: name.to_string(),
            version: plugin.manifest.version.clone(),
            content_hash: plugin.content_hash.clone(),
            manifest,
            component,
            uploaded_at: Utc::now(),
            deleted_at: None,
        };
        let registry = self.registry();
        let mut plugins: Vec<_> = registry.plugins().iter().filter(|p| p.manifest.name != *name).cloned().collect();
        plugins.push(Arc::new(plugin));
        Registry::new(plugins).map_err(|errors| InstallError::Conflict(errors.to_string()))?;

        self.db().store_plugin_build(&build).await?;
        write_build(self.dir(), &build)?;
        self.reload(name.as_str()).await.map_err(InstallError::Reload)
    }

    /// Deletes the uploaded build of `name` for every host and unloads it here; `false` if there
    /// was no uploaded build of that name.
    #[tracing::instrument(skip(self))]
    pub async fn uninstall(&self, name: &PluginName) -> Result<bool, InstallError> {
        if !self.db().delete_plugin_build(name.as_str()).await? {
            return Ok(false);
        }
        self.sync_from_db(name.as_str()).await?;
        Ok(true)
    }

    /// Brings this host's copy of plugin `name` in line with the database and reloads it. Names
    /// the database does not know (plugins deployed as files) are left alone.
    pub async fn sync_from_db(&self, name: &str) -> Result<(), InstallError> {
        if let Some(build) = self.db().plugin_build(name).await? {
            write_build(self.dir(), &build)?;
            self.reload(name).await.map_err(InstallError::Reload)?;
        }
        Ok(())
    }

    /// [`Self::sync_from_db`] for every stored build: catches up after missed notifications.
    pub async fn sync_all_from_db(&self) -> Result<(), InstallError> {
        for name in self.db().plugin_build_names().await? {
            if let Err(error) = self.sync_from_db(&name).await {
                tracing::warn!(plugin = name, %error, "could not sync the uploaded build");
            }
        }
        Ok(())
    }
}

/// Before the first load: writes every stored build into `dir` and removes deleted ones.
pub async fn sync_dir_from_db(db: &Database, dir: &Path) -> Result<(), InstallError> {
    for name in db.plugin_build_names().await? {
        if let Some(build) = db.plugin_build(&name).await? {
            write_build(dir, &build)?;
        }
    }
    Ok(())
}

/// Makes `dir` hold `build` (or not hold it, for a tombstone); publishing leaves a current copy alone.
fn write_build(dir: &Path, build: &PluginBuild) -> io::Result<()> {
    if build.deleted_at.is_some() {
        return if dir.join(&build.name).exists() { unpublish(dir, &build.name) } else { Ok(()) };
    }
    publish(dir, &build.name, build.manifest.as_bytes(), &build.component).map(drop)
}
