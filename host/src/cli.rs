//! The `autoflow` command line: subcommands and their flags, each flag also readable from env.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use secrecy::SecretString;

use crate::config::{
    AdminToken, AuthConfig, Config, KeySource, Limits, LoginLimit, ShutdownSettings, TokenSettings, TrustedProxies,
    WorkerSettings,
};

/// Autoflow: serves HTTP routes and runs tasks from sandboxed wasm plugins.
#[derive(Debug, Parser)]
#[command(name = "autoflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments, exiting with clap's message on bad input.
    pub fn parse_layered() -> Self {
        Self::try_parse_layered(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses `args` in layers: a flag beats its environment variable, which beats the `serve
    /// --config` file, which beats the built-in default.
    pub fn try_parse_layered(args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Self, clap::Error> {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Self::command().try_get_matches_from(&args)?;
        let Some((command @ ("serve" | "worker"), settings)) = matches.subcommand() else {
            return Self::from_arg_matches(&matches);
        };
        let Some(file) = settings.get_one::<PathBuf>("config") else { return Self::from_arg_matches(&matches) };
        args.extend(settings_from_file(file, command, settings)?);
        Self::try_parse_from(args)
    }
}

/// The `--name=value` flags for the settings in the TOML `file` that neither a flag nor an
/// environment variable gave to subcommand `command`; an unknown setting is an error naming it.
fn settings_from_file(file: &Path, command: &str, matches: &ArgMatches) -> Result<Vec<OsString>, clap::Error> {
    let fail = |message: String| clap::Error::raw(ErrorKind::InvalidValue, format!("{message}\n"));
    let text = std::fs::read_to_string(file)
        .map_err(|error| fail(format!("cannot read the config file {}: {error}", file.display())))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|error| fail(format!("config file {}: {error}", file.display())))?;
    let cli = Cli::command();
    let subcommand = cli.find_subcommand(command).expect("the caller names a subcommand");
    let mut flags = Vec::new();
    for (name, value) in table {
        let arg = subcommand
            .get_arguments()
            .find(|arg| arg.get_long() == Some(name.as_str()) && name != "config")
            .ok_or_else(|| fail(format!("config file {}: unknown setting `{name}`", file.display())))?;
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => value.to_string(),
            other => {
                return Err(fail(format!(
                    "config file {}: `{name}` must be a string, number or boolean, not {}",
                    file.display(),
                    other.type_str()
                )));
            }
        };
        if matches!(matches.value_source(arg.get_id().as_str()), None | Some(ValueSource::DefaultValue)) {
            flags.push(OsString::from(format!("--{name}={value}")));
        }
    }
    Ok(flags)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the plugins and serve HTTP until interrupted.
    Serve(Box<ServeArgs>),
    /// Load the plugins and run background tasks (no HTTP) until interrupted; any number of
    /// workers on any number of machines share one database's tasks.
    Worker(Box<WorkerArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Inspect and deploy plugins on a running host through its admin API.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Manage users directly in the database (e.g. the first admin of a fresh install).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Schedule, pause and count background tasks on a running host through its tasks API.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Manage repeatable tasks on a running host through its schedules API.
    #[command(subcommand)]
    Schedules(SchedulesCommand),
}

/// `autoflow worker`: the settings of `serve`, with the number of tasks run at once.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Tasks this process runs at once.
    #[arg(long, env = "AUTOFLOW_WORKER_CONCURRENCY", default_value_t = WorkerSettings::default().concurrency)]
    pub concurrency: usize,

    #[command(flatten)]
    pub serve: ServeArgs,
}

impl From<WorkerArgs> for Config {
    fn from(args: WorkerArgs) -> Self {
        let mut config = Config::from(args.serve);
        config.workers.concurrency = args.concurrency;
        config
    }
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from AUTOFLOW_USER_PASSWORD if set, else from stdin
    /// (prompted without echo on a terminal); never from the command line.
    Create {
        /// The user's email address (their login).
        #[arg(long)]
        email: String,
        /// Display name; defaults to the part of the email before '@'.
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated permissions, e.g. `admin` or `read:users`.
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Schedule a task; the plugin handling it validates the payload first.
    Schedule(ScheduleArgs),
    /// Stop workers claiming tasks of a name (running ones finish), for every host, until resumed.
    Pause(NamedArgs),
    /// Let workers claim tasks of a paused name again.
    Resume(NamedArgs),
    /// Counts by status and name, and the age of the oldest waiting task per priority.
    Stats(ApiArgs),
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List the schedules with their next run.
    List(ApiArgs),
    /// Create a schedule: each tick (a cron expression, or every N milliseconds) schedules the task.
    Create {
        /// A name for the schedule (a-z, 0-9, '-').
        name: String,
        /// The task each tick schedules.
        #[arg(long)]
        task: String,
        /// A cron expression: 5 fields, or 6 with seconds first, e.g. "0 9 * * 1-5".
        #[arg(long, conflicts_with = "every_ms")]
        cron: Option<String>,
        /// The IANA time zone the cron expression is read in (default UTC), e.g. Europe/Paris.
        #[arg(long, requires = "cron")]
        timezone: Option<String>,
        /// Tick every this many milliseconds (at least 1000) instead of a cron expression.
        #[arg(long)]
        every_ms: Option<u64>,
        /// The payload, as JSON.
        #[arg(long, default_value = "null")]
        payload: String,
        /// What becomes of ticks missed while no host ran: run-once (default) or skip.
        #[arg(long)]
        missed: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pause a schedule: no tick runs until it is resumed.
    Pause(NamedArgs),
    /// Resume a schedule from its next tick (ticks missed while paused do not run).
    Resume(NamedArgs),
    /// Delete a schedule (the tasks it made stay).
    Delete(NamedArgs),
}

/// A command about one task name or schedule.
#[derive(Debug, Args)]
pub struct NamedArgs {
    /// The task's or schedule's name, e.g. send-email.
    pub name: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// How to reach a host's API as a user.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Base URL of the host.
    #[arg(long, env = "AUTOFLOW_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// An access token of a user with the permission the command needs, from POST /auth/login.
    #[arg(long, env = "AUTOFLOW_TOKEN", hide_env_values = true)]
    pub token: SecretString,
}

/// `autoflow tasks schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The task's name, e.g. send-email.
    pub name: String,
    /// The payload, as JSON.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// critical, high, normal or low; default: the task's own.
    #[arg(long)]
    pub priority: Option<String>,
    /// Run no earlier than this many milliseconds from now.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Attempts before the task is dead; default: the task's own.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Ties related tasks together, for finding them with GET /api/tasks?correlationId=.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// While a task of this name with this key waits or runs, return it instead of adding another.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// Needs a user with the `write:tasks` (or `admin`) permission.
    #[command(flatten)]
    pub api: ApiArgs,
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
    /// A TOML file of settings, named as the long flags below (`listen = "0.0.0.0:8080"`); flags
    /// and environment variables override it.
    #[arg(long, env = "AUTOFLOW_CONFIG")]
    pub config: Option<PathBuf>,

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

    /// Prefix of this deployment's keys and pub/sub channels in Redis, so deployments can share one
    /// server; every host of a deployment uses the same.
    #[arg(long, env = "AUTOFLOW_CACHE_NAMESPACE", default_value = crate::config::DEFAULT_CACHE_NAMESPACE)]
    pub cache_namespace: String,

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

    /// Cache bytes (keys and values) one plugin may hold, in MiB.
    #[arg(long, env = "AUTOFLOW_PLUGIN_CACHE_MB", default_value_t = Limits::default().plugin_cache_bytes / (1024 * 1024))]
    pub plugin_cache_mb: u64,

    /// Client connections served at once; more wait to be accepted.
    #[arg(long, env = "AUTOFLOW_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,

    /// Longest a client may take to send a request's head, in milliseconds, counted from when the
    /// connection is ready for it (new, or idle after a response): it also closes idle connections.
    #[arg(long, env = "AUTOFLOW_REQUEST_HEAD_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_head_timeout_ms: u64,

    /// How long a warm instance (of a plugin with `[limits] reuse`) waits unused before it is
    /// dropped, in milliseconds.
    #[arg(long, env = "AUTOFLOW_WARM_IDLE_MS", default_value_t = 10_000)]
    pub warm_idle_ms: u64,

    /// Longest one attempt of a task may run, in milliseconds (default and ceiling for manifests).
    #[arg(long, env = "AUTOFLOW_TASK_TIMEOUT_MS", default_value_t = 300_000)]
    pub task_timeout_ms: u64,

    /// How long past a task's timeout a worker's claim lasts before another worker may take the
    /// task over (a worker that died mid-task), in milliseconds.
    #[arg(long, env = "AUTOFLOW_TASK_LEASE_MARGIN_MS", default_value_t = 30_000)]
    pub task_lease_margin_ms: u64,

    /// How long finished tasks (completed, dead, cancelled) and their attempts are kept before
    /// they are removed, in hours.
    #[arg(long, env = "AUTOFLOW_TASK_RETENTION_HOURS", default_value_t = 7 * 24)]
    pub task_retention_hours: u64,

    /// How often an idle worker process looks for due tasks when nothing woke it (delayed tasks
    /// scheduled elsewhere, tasks whose worker died), in milliseconds.
    #[arg(long, env = "AUTOFLOW_TASK_POLL_INTERVAL_MS", default_value_t = 500)]
    pub task_poll_interval_ms: u64,

    /// Also serve `/metrics` (unauthenticated) and the health endpoints on this address, for a
    /// scraper on a private network; unset: `/metrics` is on the main listener, admin-only.
    #[arg(long, env = "AUTOFLOW_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Export traces to this OpenTelemetry collector (OTLP over HTTP, JSON encoding; its base
    /// URL: spans go to `/v1/traces` under it); unset: no traces leave the process.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// On SIGTERM or Ctrl-C, how long connections are still accepted after readiness turns false
    /// (`10s`, `500ms`; a bare number is seconds), so load balancers stop sending traffic first.
    #[arg(long, env = "AUTOFLOW_SHUTDOWN_GRACE", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Longest in-flight requests and running tasks get to finish once shutting down; tasks still
    /// running then are handed back to the queue for another worker.
    #[arg(long, env = "AUTOFLOW_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Tasks this process runs at once (0: none, another process runs the tasks).
    #[arg(long, env = "AUTOFLOW_WORKERS", default_value_t = WorkerSettings::default().concurrency)]
    pub workers: usize,

    /// Reload plugins when their files change (`false` to load them once).
    #[arg(long, env = "AUTOFLOW_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,

    /// A static bearer token that also opens the /admin API (opt-in; users with the `admin`
    /// permission can always use it).
    #[arg(long, env = "AUTOFLOW_ADMIN_TOKEN", hide_env_values = true, value_parser = AdminToken::parse)]
    pub admin_token: Option<AdminToken>,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// The data key that seals values for plugins (base64 of 32 bytes); unset = generated under
    /// <data>/keys on first run. Hosts sharing a database must share it.
    #[arg(long, env = "AUTOFLOW_DATA_KEY", hide_env_values = true)]
    pub data_key: Option<SecretString>,

    /// PEM file with the RSA key that plugins decrypt clients' ciphertexts with; it must not be the
    /// token-signing key. Unset = generated under <data>/keys on first run. Hosts sharing a database
    /// must share it.
    #[arg(long, env = "AUTOFLOW_RSA_ENCRYPTION_KEY_FILE", conflicts_with = "rsa_encryption_key")]
    pub rsa_encryption_key_file: Option<PathBuf>,

    /// The encryption key as PEM text (alternative to the file).
    #[arg(long, env = "AUTOFLOW_RSA_ENCRYPTION_KEY", hide_env_values = true)]
    pub rsa_encryption_key: Option<SecretString>,

    /// PEM files of earlier encryption keys, comma-separated: after a rotation, what clients
    /// encrypted to them still decrypts.
    #[arg(long, env = "AUTOFLOW_RSA_RETIRED_ENCRYPTION_KEY_FILES", value_delimiter = ',')]
    pub rsa_retired_encryption_key_files: Vec<PathBuf>,
}

/// Authentication settings of `serve`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// PEM file with the host's RSA private key; unset = generated under <data>/keys on first run.
    /// Hosts sharing a database must share this key.
    #[arg(long, env = "AUTOFLOW_RSA_PRIVATE_KEY_FILE", conflicts_with = "rsa_private_key")]
    pub rsa_private_key_file: Option<PathBuf>,

    /// The RSA private key as PEM text (alternative to the file).
    #[arg(long, env = "AUTOFLOW_RSA_PRIVATE_KEY", hide_env_values = true)]
    pub rsa_private_key: Option<SecretString>,

    /// PEM files of earlier RSA private keys, comma-separated: after a key rotation, tokens they
    /// signed are accepted until they expire.
    #[arg(long, env = "AUTOFLOW_RSA_RETIRED_KEY_FILES", value_delimiter = ',')]
    pub rsa_retired_key_files: Vec<PathBuf>,

    /// How long an access token is valid, in seconds.
    #[arg(long, env = "AUTOFLOW_TOKEN_LIFETIME_SECS", default_value_t = 3600)]
    pub token_lifetime_secs: u64,

    /// `iss` of issued tokens and the only issuer accepted.
    #[arg(long, env = "AUTOFLOW_TOKEN_ISSUER", default_value = "autoflow")]
    pub token_issuer: String,

    /// `aud` of issued tokens and the only audience accepted.
    #[arg(long, env = "AUTOFLOW_TOKEN_AUDIENCE", default_value = "autoflow")]
    pub token_audience: String,

    /// Mark the session cookie Secure (HTTPS only); `false` for plain-HTTP development.
    #[arg(long, env = "AUTOFLOW_SECURE_COOKIE", default_value_t = true, action = clap::ArgAction::Set)]
    pub secure_cookie: bool,

    /// Login attempts per email per window.
    #[arg(long, env = "AUTOFLOW_LOGIN_ATTEMPTS_PER_EMAIL", default_value_t = LoginLimit::default().per_email)]
    pub login_attempts_per_email: u32,

    /// Login attempts per client address per window.
    #[arg(long, env = "AUTOFLOW_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = LoginLimit::default().per_address)]
    pub login_attempts_per_address: u32,

    /// The login rate-limit window, in seconds.
    #[arg(long, env = "AUTOFLOW_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// Reverse proxies whose X-Forwarded-For names the client: comma-separated addresses or CIDR
    /// ranges (e.g. `10.0.0.0/8`); empty = the connection's peer is the client.
    #[arg(long, env = "AUTOFLOW_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Origins besides the host's own whose pages may send cookie-authenticated writes
    /// (comma-separated, e.g. `https://console.example.com`); other origins are refused.
    #[arg(long, env = "AUTOFLOW_TRUSTED_ORIGINS", value_delimiter = ',')]
    pub trusted_origins: Vec<String>,
}

/// An operator's key: a PEM file, else PEM text, else none (the host generates one).
fn key_source(file: Option<PathBuf>, pem: Option<SecretString>) -> Option<KeySource> {
    match (file, pem) {
        (Some(path), _) => Some(KeySource::File(path)),
        (None, Some(pem)) => Some(KeySource::Pem(pem)),
        (None, None) => None,
    }
}

impl From<AuthArgs> for AuthConfig {
    fn from(args: AuthArgs) -> Self {
        let private_key = key_source(args.rsa_private_key_file, args.rsa_private_key);
        AuthConfig {
            private_key,
            retired_keys: args.rsa_retired_key_files,
            tokens: TokenSettings {
                issuer: args.token_issuer,
                audience: args.token_audience,
                lifetime: Duration::from_secs(args.token_lifetime_secs),
            },
            secure_cookie: args.secure_cookie,
            login_limit: LoginLimit {
                per_email: args.login_attempts_per_email,
                per_address: args.login_attempts_per_address,
                window: Duration::from_secs(args.login_window_secs),
            },
            trusted_proxies: args.trusted_proxies,
            trusted_origins: args
                .trusted_origins
                .into_iter()
                .map(|origin| origin.trim().trim_end_matches('/').to_owned())
                .filter(|origin| !origin.is_empty())
                .collect(),
        }
    }
}

impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Self {
        Config {
            listen: args.listen,
            plugins_dir: args.plugins_dir,
            data_dir: args.database.data_dir,
            database_url: args.database.database_url,
            redis_url: args.redis_url,
            cache_namespace: args.cache_namespace,
            limits: Limits {
                max_body_bytes: args.max_body_bytes,
                request_timeout: Duration::from_millis(args.request_timeout_ms),
                max_instances: args.max_instances,
                max_upload_bytes: args.max_upload_bytes,
                max_response_bytes: args.max_response_bytes,
                plugin_memory_bytes: args.plugin_memory_mb.saturating_mul(1024 * 1024),
                plugin_concurrency: args.plugin_concurrency,
                queue_timeout: Duration::from_millis(args.queue_timeout_ms),
                task_timeout: Duration::from_millis(args.task_timeout_ms),
                plugin_cache_bytes: args.plugin_cache_mb.saturating_mul(1024 * 1024),
                max_connections: args.max_connections,
                request_head_timeout: Duration::from_millis(args.request_head_timeout_ms.max(1)),
                warm_idle: Duration::from_millis(args.warm_idle_ms),
            },
            watch: args.watch,
            admin_token: args.admin_token,
            auth: args.auth.into(),
            data_key: args.data_key,
            encryption_key: key_source(args.rsa_encryption_key_file, args.rsa_encryption_key),
            retired_encryption_keys: args.rsa_retired_encryption_key_files,
            plugin_overrides: crate::config::plugin_overrides_from_env(),
            workers: WorkerSettings {
                concurrency: args.workers,
                lease_margin: Duration::from_millis(args.task_lease_margin_ms),
                poll_interval: Duration::from_millis(args.task_poll_interval_ms.max(1)),
                retention: Duration::from_secs(args.task_retention_hours.saturating_mul(60 * 60)),
            },
            metrics_listen: args.metrics_listen,
            shutdown: ShutdownSettings { grace: args.shutdown_grace, timeout: args.shutdown_timeout },
        }
    }
}

/// A duration written `500ms`, `10s` or `2m`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 500ms, 10s or 2m"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        other => Err(format!("unknown unit `{other}` in `{text}`: use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_config(file_text: &str, flags: &[&str]) -> Result<Config, String> {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("autoflow.toml");
        std::fs::write(&file, file_text).unwrap();
        let mut args = vec!["autoflow".into(), "serve".into(), "--config".into(), file.into_os_string()];
        args.extend(flags.iter().map(OsString::from));
        match Cli::try_parse_layered(args).map_err(|e| e.to_string())?.command {
            Command::Serve(serve) => Ok(Config::from(*serve)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn shutdown_durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5h").unwrap_err().contains("unknown unit `h`"));
        assert!(parse_duration("soon").is_err());
        let config = serve_config("shutdown-grace = \"3s\"\n", &["--shutdown-timeout", "250ms"]).unwrap();
        assert_eq!(
            config.shutdown,
            ShutdownSettings { grace: Duration::from_secs(3), timeout: Duration::from_millis(250) }
        );
    }

    #[test]
    fn the_file_fills_in_what_flags_leave_at_their_defaults() {
        let file = "listen = \"127.0.0.1:4000\"\nmax-body-bytes = 10\nwatch = false\ntoken-issuer = \"me\"\n";
        let config = serve_config(file, &[]).unwrap();
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.limits.max_body_bytes, 10);
        assert!(!config.watch);
        assert_eq!(config.auth.tokens.issuer, "me");
        assert_eq!(config.limits.max_instances, Limits::default().max_instances, "unset stays default");

        let config = serve_config(file, &["--max-body-bytes", "20"]).unwrap();
        assert_eq!(config.limits.max_body_bytes, 20, "a flag beats the file");
    }

    #[test]
    fn unknown_settings_and_unreadable_files_are_named() {
        let err = serve_config("max-bodybytes = 1\n", &[]).unwrap_err();
        assert!(err.contains("unknown setting `max-bodybytes`"), "{err}");
        let err = serve_config("listen = [1]\n", &[]).unwrap_err();
        assert!(err.contains("`listen` must be a string"), "{err}");
        let err = serve_config("listen = \"nowhere\"\n", &[]).unwrap_err();
        assert!(err.contains("nowhere"), "{err}");
        let err = Cli::try_parse_layered(["autoflow", "serve", "--config", "/no/such/autoflow.toml"]).unwrap_err();
        assert!(err.to_string().contains("/no/such/autoflow.toml"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let config = serve_config("trusted-proxies = \"10.0.0.0/8, 192.0.2.7\"\n", &[]).unwrap();
        assert_eq!(config.auth.trusted_proxies, "10.0.0.0/8,192.0.2.7".parse().unwrap());
        let err = serve_config("", &["--trusted-proxies", "10.0.0.0/8,proxy.internal"]).unwrap_err();
        assert!(err.contains("`proxy.internal` is neither an IP address nor a CIDR range"), "{err}");
    }
}
