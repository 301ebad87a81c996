//! Building a ready-to-serve host ([`Application::build`]) apart from running it
//! ([`Application::run_until_stopped`]), so tests and the binary start it the same way.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::capabilities::http::InternalRoutes;
use crate::capabilities::queue::TaskScheduler;
use crate::capabilities::{HostRuntime, HostServices};
use crate::config::{Config, KeySource, ShutdownSettings};
use crate::db::{ClaimError, Database, DbError, ServingClaim, Sharing};
use crate::http::{self, AppState, SharedState};
use crate::http::{Auth, ConnectionLimits, Draining};
use crate::plugins::fanout::Fanout;
use crate::plugins::{InstallError, LivePlugins, LoadErrors, Loader, PluginWatcher, sync_dir_from_db};
use crate::services::cache::Cache;
use crate::services::crypto::Crypto;
use crate::services::identity::Identity;
use crate::services::keys::{KeyError, RsaKeys};
use crate::services::passwords::Passwords;
use crate::services::records::Records;
use crate::services::redis_connection::RedisConnection;
use crate::services::revocations::Revocations;
use crate::services::tokens::Tokens;
use crate::tasks::{Scheduler, Wakeup, Workers};
use crate::telemetry::metrics::Metrics;

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
    #[error("could not watch the plugins directory: {0}")]
    Watch(#[from] notify_debouncer_full::notify::Error),
    #[error("could not bring uploaded plugin builds into the plugins directory: {0}")]
    Uploads(#[from] InstallError),
    #[error("REDIS_URL is not a valid Redis URL: {0}")]
    RedisUrl(redis::RedisError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("the RSA key cannot sign tokens: {0}")]
    Signing(jsonwebtoken::errors::Error),
    #[error(transparent)]
    Serving(#[from] ClaimError),
}

/// Everything a host process runs besides its HTTP listener: the database, the services, the
/// loaded plugins (watched and kept in sync with the other hosts), the task scheduler, this
/// process's task workers and, with `--metrics-listen`, the operations listener. `autoflow serve`
/// adds a listener; `autoflow worker` runs it alone.
pub struct Host {
    state: AppState,
    /// What plugins' internal requests and `queue.enqueue` reach; plugins hold only weak links.
    links: (Arc<dyn InternalRoutes>, Arc<dyn TaskScheduler>),
    /// The task workers of this process, if it runs any.
    workers: Option<Workers>,
    watcher: Option<PluginWatcher>,
    background: Vec<tokio::task::JoinHandle<()>>,
    ops: Option<OpsListener>,
    shutdown: ShutdownSettings,
}

/// `/metrics` and the health endpoints on an address of their own, served until the host closes.
struct OpsListener {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<io::Result<()>>,
}

impl Host {
    /// Connects and migrates the database, loads every plugin and starts the task workers.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        crate::private_fs::create_dir(&config.data_dir).map_err(|source| {
            StartupError::Database(DbError::DataDir { path: config.data_dir.display().to_string(), source })
        })?;
        let db = Database::connect(config.database_url.as_ref(), &config.data_dir).await?;
        db.migrate().await?;
        let redis = config
            .redis_url
            .as_ref()
            .map(|url| redis::Client::open(url.expose_secret()))
            .transpose()
            .map_err(StartupError::RedisUrl)?;
        let redis = redis.map(RedisConnection::new);
        let cache =
            redis.clone().map(Cache::redis).unwrap_or_else(Cache::memory).with_namespace(&config.cache_namespace);
        let (auth, services) = build_services(&config, db.clone(), cache.clone()).await?;
        let cache_dir = config.data_dir.join("cache").join("components");
        let runtime =
            HostRuntime::new(&config.limits, Some(&cache_dir), Metrics::new()).map_err(StartupError::Runtime)?;
        sync_dir_from_db(&db, &config.plugins_dir).await?;
        let loader = Loader { runtime: runtime.clone(), services };
        let plugins = Arc::new(LivePlugins::load(loader, &config.plugins_dir, db.clone()).await?);
        let mut background = Vec::new();
        let fanout = redis.as_ref().map(|redis| {
            let fanout = Fanout::new(cache.clone());
            background.push(fanout.spawn_listener(redis, plugins.clone()));
            fanout
        });
        let watcher = if config.watch { Some(PluginWatcher::start(plugins.clone())?) } else { None };
        let plugin_count = plugins.registry().plugins().len();
        if plugin_count == 0 {
            tracing::warn!(dir = %config.plugins_dir.display(), "no plugins found; only host routes are served");
        }

        let (wakeup, carriers) = Wakeup::spawn(&db);
        background.extend(carriers);
        let scheduler = Scheduler::new(db.clone(), plugins.clone(), runtime.clone(), wakeup.clone());
        background.push(scheduler.spawn_ticker());
        let workers = (config.workers.concurrency > 0).then(|| {
            let identity = auth.identity.clone();
            let (db, plugins, runtime) = (db.clone(), plugins.clone(), runtime.clone());
            Workers::spawn(db, plugins, runtime, identity, wakeup, config.workers)
        });
        let state = AppState::new(SharedState {
            runtime,
            plugins,
            db,
            limits: config.limits,
            admin_token: config.admin_token,
            auth,
            fanout,
            scheduler: scheduler.clone(),
            draining: Draining::default(),
        });
        let internal: Arc<dyn InternalRoutes> = Arc::new(state.clone());
        let scheduler: Arc<dyn TaskScheduler> = Arc::new(scheduler);
        let services = state.plugins.services();
        services.internal.connect(&internal);
        services.scheduler.connect(&scheduler);
        let mut host = Self {
            state,
            links: (internal, scheduler),
            workers,
            watcher,
            background,
            ops: None,
            shutdown: config.shutdown,
        };
        if let Some(addr) = config.metrics_listen {
            match OpsListener::start(addr, &host.state).await {
                Ok(ops) => host.ops = Some(ops),
                Err(error) => {
                    host.close().await;
                    return Err(error);
                }
            }
        }
        Ok(host)
    }

    /// The address `/metrics` and the health endpoints are served on with `--metrics-listen`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(|ops| ops.addr)
    }

    /// Drains and stops: readiness turns false, the workers stop claiming and their running tasks
    /// get the shutdown timeout to finish (then are handed back), and everything is closed.
    pub async fn shutdown(mut self) {
        self.state.draining.start();
        self.stop_workers().await;
        self.close().await;
    }

    /// Stops claiming tasks; running ones get the shutdown timeout, then are handed back.
    async fn stop_workers(&mut self) {
        if let Some(workers) = self.workers.take() {
            workers.shutdown(self.shutdown.timeout).await;
        }
    }

    /// Stops everything else and closes the database.
    async fn close(self) {
        drop(self.links);
        drop(self.watcher);
        for task in self.background {
            task.abort();
        }
        if let Some(ops) = self.ops {
            let _ = ops.stop.send(());
            let _ = ops.serving.await;
        }
        self.state.db.close().await;
    }

    /// Runs until `shutdown` completes (e.g. SIGTERM), working on tasks only; then drains.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(
            database = %self.state.db.backend(),
            workers = self.workers.as_ref().map_or(0, Workers::len),
            metrics = ?self.metrics_addr(),
            "working on tasks"
        );
        shutdown.await;
        tracing::info!(timeout = ?self.shutdown.timeout, "shutting down: no more claims; running tasks may finish");
        self.shutdown().await;
    }
}

impl OpsListener {
    async fn start(addr: SocketAddr, state: &AppState) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr, source })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = &state.limits;
        let connections = ConnectionLimits { max_connections: 64, request_head_timeout: limits.request_head_timeout };
        let router = http::ops_router(state.clone());
        let closed = async move {
            let _ = stopped.await;
        };
        let serving = tokio::spawn(http::serve(listener, router, connections, closed, limits.request_timeout));
        tracing::info!(address = %addr, "serving /metrics and health");
        Ok(Self { addr, stop, serving })
    }
}

/// A host with its database migrated, plugins loaded and socket bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    host: Host,
    /// This host's claim on the database, held while it serves.
    _serving: ServingClaim,
}

impl Application {
    /// Builds the [`Host`] and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let listen = config.listen;
        let sharing = if config.redis_url.is_some() { Sharing::Shared } else { Sharing::Exclusive };
        let host = Host::build(config).await?;
        let serving = match host.state.db.claim_serving(sharing).await {
            Ok(claim) => claim,
            Err(error) => {
                host.shutdown().await;
                return Err(error.into());
            }
        };
        let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?;
        tracing::info!(
            address = %local_addr,
            database = %host.state.db.backend(),
            allocator = ?host.state.runtime.allocator(),
            plugins = host.state.plugins.registry().plugins().len(),
            "listening"
        );
        Ok(Self { listener, local_addr, host, _serving: serving })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The database this host uses.
    pub fn database(&self) -> &Database {
        &self.host.state.db
    }

    /// The authentication services: identity and tokens.
    pub fn auth(&self) -> &Auth {
        &self.host.state.auth
    }

    /// The services plugin capabilities are built on.
    pub fn services(&self) -> &HostServices {
        self.host.state.plugins.services()
    }

    /// The live plugin set.
    pub fn plugins(&self) -> &Arc<LivePlugins> {
        &self.host.state.plugins
    }

    /// The task scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.host.state.scheduler
    }

    /// The address `/metrics` and the health endpoints are served on with `--metrics-listen`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.host.metrics_addr()
    }

    /// Serves until `shutdown` completes, then drains: readiness turns false at once, connections
    /// are still accepted for the grace period, then the listener closes and in-flight requests
    /// finish (for at most the shutdown timeout). Meanwhile the workers stop claiming and their
    /// running tasks finish or, after the timeout, are handed back to the queue.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let Self { listener, mut host, _serving: serving, .. } = self;
        let limits = &host.state.limits;
        let connections = ConnectionLimits {
            max_connections: limits.max_connections,
            request_head_timeout: limits.request_head_timeout,
        };
        let (signal, signalled) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = signal.send(true);
        });
        let settings = host.shutdown;
        let draining = host.state.draining.clone();
        let mut http_signal = signalled.clone();
        let close_listener = async move {
            let _ = http_signal.wait_for(|signalled| *signalled).await;
            draining.start();
            tracing::info!(grace = ?settings.grace, timeout = ?settings.timeout, "shutting down: not ready any more");
            tokio::time::sleep(settings.grace).await;
            tracing::info!("closing the listener; finishing in-flight requests");
        };
        let router = http::router(host.state.clone());
        let serving_http = http::serve(listener, router, connections, close_listener, settings.timeout);
        let mut task_signal = signalled;
        let stopping_workers = async {
            let _ = task_signal.wait_for(|signalled| *signalled).await;
            host.stop_workers().await;
        };
        let (result, ()) = tokio::join!(serving_http, stopping_workers);
        host.close().await;
        drop(serving);
        result
    }
}

/// The host services over `db` and `cache`: identity and tokens (for the HTTP layer) and what
/// plugin capabilities are built on. The RSA key pair and the data key are loaded (or generated on
/// first run) off the async threads.
pub async fn build_services(config: &Config, db: Database, cache: Cache) -> Result<(Auth, HostServices), StartupError> {
    let (rsa_source, data_source) = (config.key_source(), config.data_key_source());
    let encryption_source = config.encryption_key_source();
    let retired_files = config.auth.retired_keys.clone();
    let retired_encryption_files = config.retired_encryption_keys.clone();
    let (keys, retired, crypto) = tokio::task::spawn_blocking(move || {
        let load_files = |files: Vec<std::path::PathBuf>| {
            files.into_iter().map(|path| RsaKeys::load(&KeySource::File(path))).collect::<Result<Vec<_>, _>>()
        };
        let keys = RsaKeys::load(&rsa_source)?;
        let retired = load_files(retired_files)?;
        let encryption = RsaKeys::load(&encryption_source)?;
        let retired_encryption = load_files(retired_encryption_files)?;
        // A key that signs tokens is never lent to plugins, nor one that once signed them.
        let signing_kids: Vec<&str> = std::iter::once(&keys).chain(&retired).map(RsaKeys::kid).collect();
        if std::iter::once(&encryption).chain(&retired_encryption).any(|key| signing_kids.contains(&key.kid())) {
            return Err(KeyError::Invalid {
                origin: "the encryption key settings (--rsa-encryption-key-file …)".into(),
                reason: "an encryption key is also a token-signing key; give plugins a key of their own".into(),
            });
        }
        let crypto = Crypto::load(&data_source, &encryption, &retired_encryption)?;
        Ok::<_, KeyError>((keys, retired, crypto))
    })
    .await
    .map_err(|e| StartupError::Keys(KeyError::Invalid { origin: "key loader".into(), reason: e.to_string() }))??;
    let revocations = Revocations::new(db.clone(), cache.clone());
    let tokens =
        Tokens::new(&keys, &retired, config.auth.tokens.clone(), revocations).map_err(StartupError::Signing)?;
    let passwords = Passwords::default();
    let records = Records::new(db.clone(), cache.clone(), config.limits.plugin_cache_bytes);
    let identity = Identity::new(db.clone(), passwords.clone(), cache.clone());
    let services = HostServices {
        db,
        identity: identity.clone(),
        cache: cache.clone(),
        plugin_cache_quota: config.limits.plugin_cache_bytes,
        crypto,
        passwords,
        records,
        config_overrides: Arc::new(config.plugin_overrides.clone()),
        internal: Default::default(),
        scheduler: Default::default(),
    };
    let crypto = services.crypto.clone();
    Ok((Auth { identity, tokens, cache, crypto, config: Arc::new(config.auth.clone()) }, services))
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
    tracing::info!("shutdown signal received");
}
