//! Typed configuration of a host process: where it listens, where plugins and data live, which
//! database it uses and the limits it enforces. Built from the command line and `AUTOFLOW_*` env.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// Everything `autoflow serve` needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Directory holding one sub-directory per plugin (`plugin.toml` + `plugin.wasm`).
    pub plugins_dir: PathBuf,
    /// Directory for local state: the embedded SQLite database, compiled-component cache, later keys.
    pub data_dir: PathBuf,
    /// The database to use; `None` selects the embedded SQLite file under `data_dir`.
    pub database_url: Option<SecretString>,
    /// Redis, shared by every host on the database; `None` runs as a single process.
    pub redis_url: Option<SecretString>,
    pub limits: Limits,
    /// Reload plugins when their files change.
    pub watch: bool,
    /// Bearer token guarding `/admin`; `None` disables the admin API.
    pub admin_token: Option<SecretString>,
}

/// Limits applied to every request and plugin call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted, in bytes; larger ones get `413`.
    pub max_body_bytes: usize,
    /// Longest a plugin may run for one request before it is stopped with `504`: the default and
    /// the ceiling for manifests.
    pub request_timeout: Duration,
    /// Most plugin instances alive at once across all plugins (size of the instance pool).
    pub max_instances: u32,
    /// Largest plugin build accepted by `PUT /admin/plugins/{name}`, in bytes.
    pub max_upload_bytes: usize,
    /// Largest response body a plugin may return; larger ones become `502`.
    pub max_response_bytes: usize,
    /// Linear memory one plugin instance may use: the default and the ceiling for manifests.
    pub plugin_memory_bytes: usize,
    /// Instances of one plugin running at once: the default and the ceiling for manifests.
    pub plugin_concurrency: u32,
    /// How long a request waits for a busy plugin before it gets `503` with `Retry-After`.
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_instances: 1000,
            max_upload_bytes: 32 * 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            plugin_memory_bytes: 128 * 1024 * 1024,
            plugin_concurrency: 100,
            queue_timeout: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// The embedded defaults: loopback port 3000, `./dist/plugins`, `./data`, SQLite.
    pub fn embedded() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            plugins_dir: PathBuf::from("dist/plugins"),
            data_dir: PathBuf::from("data"),
            database_url: None,
            redis_url: None,
            limits: Limits::default(),
            watch: true,
            admin_token: None,
        }
    }
}
