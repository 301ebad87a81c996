//! The `autoflow` command line: subcommands and their flags, each flag also readable from env.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::config::{Config, Limits};

/// Autoflow: serves HTTP routes and runs tasks from sandboxed wasm plugins.
#[derive(Debug, Parser)]
#[command(name = "autoflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the plugins and serve HTTP until interrupted.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Inspect and deploy plugins on a running host through its admin API.
    #[command(subcommand)]
    Plugins(PluginsCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the host's plugins: version, status, build hash, last reload error.
    List(AdminArgs),
    /// Upload a built plugin (a directory with plugin.toml and plugin.wasm) to the host, which
    /// stores it for every host sharing its database and swaps it in.
    Push {
        /// The plugin's build directory, e.g. dist/plugins/hello.
        dir: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// How to reach a host's admin API.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the host.
    #[arg(long, env = "AUTOFLOW_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// The host's admin token.
    #[arg(long, env = "AUTOFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub token: SecretString,
}

/// Where the database is.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Directory for local state (the embedded SQLite database lives here).
    #[arg(long = "data", env = "AUTOFLOW_DATA", default_value = "data")]
    pub data_dir: PathBuf,

    /// PostgreSQL (`postgres://…`) or SQLite (`sqlite://…`) URL; unset = `<data>/autoflow.db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AUTOFLOW_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Directory with one sub-directory per plugin, as `cargo xtask build-plugins` lays them out.
    #[arg(long = "plugins", env = "AUTOFLOW_PLUGINS", default_value = "dist/plugins")]
    pub plugins_dir: PathBuf,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Redis shared by every host on the database (plugin changes reach them all); unset = one process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "AUTOFLOW_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,

    /// Longest a plugin may run for one request, in milliseconds.
    #[arg(long, env = "AUTOFLOW_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Most plugin instances alive at once (the instance pool's size).
    #[arg(long, env = "AUTOFLOW_MAX_INSTANCES", default_value_t = Limits::default().max_instances)]
    pub max_instances: u32,

    /// Largest plugin build accepted by the admin API's upload, in bytes.
    #[arg(long, env = "AUTOFLOW_MAX_UPLOAD_BYTES", default_value_t = Limits::default().max_upload_bytes)]
    pub max_upload_bytes: usize,

    /// Largest response body a plugin may return, in bytes (larger → 502).
    #[arg(long, env = "AUTOFLOW_MAX_RESPONSE_BYTES", default_value_t = Limits::default().max_response_bytes)]
    pub max_response_bytes: usize,

    /// Linear memory per plugin instance, in MiB (default and ceiling for manifests).
    #[arg(long, env = "AUTOFLOW_PLUGIN_MEMORY_MB", default_value_t = Limits::default().plugin_memory_bytes / (1024 * 1024))]
    pub plugin_memory_mb: usize,

    /// Instances of one plugin at once (default and ceiling for manifests).
    #[arg(long, env = "AUTOFLOW_PLUGIN_CONCURRENCY", default_value_t = Limits::default().plugin_concurrency)]
    pub plugin_concurrency: u32,

    /// How long a request waits for a busy plugin before `503`, in milliseconds.
    #[arg(long, env = "AUTOFLOW_QUEUE_TIMEOUT_MS", default_value_t = 1_000)]
    pub queue_timeout_ms: u64,

    /// Reload plugins when their files change (`false` to load them once).
    #[arg(long, env = "AUTOFLOW_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,

    /// Bearer token for the /admin API; unset disables it.
    #[arg(long, env = "AUTOFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,
}

impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Self {
        Config {
            listen: args.listen,
            plugins_dir: args.plugins_dir,
            data_dir: args.database.data_dir,
            database_url: args.database.database_url,
            redis_url: args.redis_url,
            limits: Limits {
                max_body_bytes: args.max_body_bytes,
                request_timeout: Duration::from_millis(args.request_timeout_ms),
                max_instances: args.max_instances,
                max_upload_bytes: args.max_upload_bytes,
                max_response_bytes: args.max_response_bytes,
                plugin_memory_bytes: args.plugin_memory_mb.saturating_mul(1024 * 1024),
                plugin_concurrency: args.plugin_concurrency,
                queue_timeout: Duration::from_millis(args.queue_timeout_ms),
            },
            watch: args.watch,
            admin_token: args.admin_token,
        }
    }
}
