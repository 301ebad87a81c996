//! Building a ready-to-serve host ([`Application::build`]) apart from running it
//! ([`Application::run_until_stopped`]), so tests and the binary start it the same way.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{Database, DbError, PluginRecord};
use crate::http::{self, AppState};
use crate::plugins::{self, LoadErrors, Registry};
use crate::runtime::Runtime;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not start the wasm runtime: {0:#}")]
    Runtime(wasmtime::Error),
    #[error(transparent)]
    Plugins(#[from] LoadErrors),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// A host with its database migrated, plugins loaded and socket bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Connects and migrates the database, loads every plugin, and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let db = Database::connect(config.database_url.as_ref(), &config.data_dir).await?;
        db.migrate().await?;
        let runtime = Runtime::new(&config.limits).map_err(StartupError::Runtime)?;
        let registry = Registry::new(plugins::load_dir(&runtime, &config.plugins_dir).await?)?;
        for plugin in registry.plugins() {
            db.record_plugin_loaded(&PluginRecord {
                name: plugin.manifest.name.to_string(),
                version: plugin.manifest.version.clone(),
                content_hash: plugin.content_hash.clone(),
                loaded_at: plugin.loaded_at,
            })
            .await?;
        }
        if registry.plugins().is_empty() {
            tracing::warn!(dir = %config.plugins_dir.display(), "no plugins found; only host routes are served");
        }

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: config.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: config.listen, source })?;
        tracing::info!(
            address = %local_addr,
            database = %db.backend(),
            allocator = ?runtime.allocator(),
            plugins = registry.plugins().len(),
            "listening"
        );
        let state = AppState { runtime, registry: Arc::new(registry), db, limits: config.limits };
        Ok(Self { listener, local_addr, state })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The database this host uses.
    pub fn database(&self) -> &Database {
        &self.state.db
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let db = self.state.db.clone();
        let result = axum::serve(self.listener, http::router(self.state)).with_graceful_shutdown(shutdown).await;
        db.close().await;
        result
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
