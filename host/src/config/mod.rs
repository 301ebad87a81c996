//! Typed configuration of a host process: where it listens, where plugins and data live, which
//! database it uses and the limits it enforces. Built from the command line and `AUTOFLOW_*` env.
//! A leaf: every other layer reads its settings types from here.

mod keys;
mod proxies;
mod workers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use keys::{DataKeySource, GENERATED_ENCRYPTION_KEY_FILE, GENERATED_KEY_FILE, KeySource};
pub use proxies::TrustedProxies;
pub use workers::WorkerSettings;

/// The prefix of a deployment's cache keys unless the operator names another.
pub const DEFAULT_CACHE_NAMESPACE: &str = "autoflow";

/// The operator's static admin token: long enough that it cannot be guessed, so an empty or short
/// value (`AUTOFLOW_ADMIN_TOKEN=`) is refused at start-up instead of opening `/admin` to anyone.
#[derive(Debug, Clone)]
pub struct AdminToken(SecretString);

impl AdminToken {
    /// Fewest characters a static admin token may have.
    pub const MIN_LEN: usize = 16;

    /// Checks an operator-given token.
    pub fn parse(token: &str) -> Result<Self, String> {
        if token.chars().count() < Self::MIN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the static admin token (--admin-token / AUTOFLOW_ADMIN_TOKEN) must be at least {} characters \
                 without spaces; leave it unset to admit only users with the `admin` permission",
                Self::MIN_LEN
            ));
        }
        Ok(Self(SecretString::from(token)))
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        bool::from(presented.as_bytes().ct_eq(self.0.expose_secret().as_bytes()))
    }
}

/// Everything `autoflow serve` needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Directory holding one sub-directory per plugin (`plugin.toml` + `plugin.wasm`).
    pub plugins_dir: PathBuf,
    /// Directory for local state: the embedded SQLite database, compiled-component cache, generated keys.
    pub data_dir: PathBuf,
    /// The database to use; `None` selects the embedded SQLite file under `data_dir`.
    pub database_url: Option<SecretString>,
    /// Redis, shared by every host on the database; `None` runs as a single process.
    pub redis_url: Option<SecretString>,
    /// Prefix of this deployment's cache keys, so deployments can share a Redis.
    pub cache_namespace: String,
    pub limits: Limits,
    /// Reload plugins when their files change.
    pub watch: bool,
    /// A static bearer token that also opens `/admin` (besides users with the `admin` permission);
    /// `None`, the default, accepts only users.
    pub admin_token: Option<AdminToken>,
    pub auth: AuthConfig,
    /// The data key sealing values (base64 of 32 bytes); `None` generates one under `<data>/keys/`.
    pub data_key: Option<SecretString>,
    /// The RSA key plugins decrypt clients' ciphertexts with (never the token-signing key);
    /// `None` generates one under `<data>/keys/`.
    pub encryption_key: Option<KeySource>,
    /// PEM files of earlier encryption keys: what was encrypted to them still decrypts.
    pub retired_encryption_keys: Vec<PathBuf>,
    /// Plugin settings overrides: every `AUTOFLOW_PLUGIN_<NAME>__<KEY>` variable, by name.
    pub plugin_overrides: BTreeMap<String, String>,
    /// The task workers this process runs (`concurrency` 0: none; another process runs them).
    pub workers: WorkerSettings,
    /// Where `/metrics` and the health endpoints are also served, unauthenticated; `None`: only
    /// on the main listener, where `/metrics` is admin-only.
    pub metrics_listen: Option<SocketAddr>,
    pub shutdown: ShutdownSettings,
}

/// How the process stops on SIGTERM or Ctrl-C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// How long connections are still accepted once readiness has turned false, so load
    /// balancers stop sending traffic before the listener closes.
    pub grace: Duration,
    /// Longest in-flight requests and running tasks get to finish once the listener closes; tasks
    /// still running then are handed back to the queue.
    pub timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { grace: Duration::ZERO, timeout: Duration::from_secs(30) }
    }
}

/// Token settings from the host's config.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens, and the only issuer accepted.
    pub issuer: String,
    /// `aud` of issued tokens, and the only audience accepted.
    pub audience: String,
    /// How long an access token is valid.
    pub lifetime: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self { issuer: "autoflow".into(), audience: "autoflow".into(), lifetime: Duration::from_secs(3600) }
    }
}

/// Authentication: the key pair, tokens, the session cookie and login rate limits.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The operator's private key; `None` generates one under `<data>/keys/` on first run.
    pub private_key: Option<KeySource>,
    /// PEM files of earlier private keys: tokens they signed are still accepted (and their public
    /// halves published in the JWKS) until those tokens expire, so the key can be rotated.
    pub retired_keys: Vec<PathBuf>,
    pub tokens: TokenSettings,
    /// Mark the session cookie `Secure` (sent over HTTPS only).
    pub secure_cookie: bool,
    pub login_limit: LoginLimit,
    /// Proxies whose `X-Forwarded-For` names the client (for the per-address login limit).
    pub trusted_proxies: TrustedProxies,
    /// Origins besides the host's own (`https://console.example.com`) whose pages may write with
    /// the session cookie.
    pub trusted_origins: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            private_key: None,
            retired_keys: Vec::new(),
            tokens: TokenSettings::default(),
            secure_cookie: true,
            login_limit: LoginLimit::default(),
            trusted_proxies: TrustedProxies::default(),
            trusted_origins: Vec::new(),
        }
    }
}

/// Login attempts allowed per window; more get `429`. An account's attempts are counted per
/// client (an address, or a browser where it signed in before), so a stranger elsewhere cannot lock
/// its owner out; only a guesser spread over many addresses meets the account-wide ceiling, and
/// even then a browser the owner signed in with before is let through.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimit {
    /// Per account, from one client address (or one trusted browser).
    pub per_email: u32,
    /// Per client address, whatever the account.
    pub per_address: u32,
    pub window: Duration,
}

impl LoginLimit {
    /// Attempts per account from browsers that never signed in to it, all addresses together.
    pub fn per_email_untrusted(&self) -> u32 {
        self.per_email.saturating_mul(10)
    }
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self { per_email: 10, per_address: 100, window: Duration::from_secs(15 * 60) }
    }
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
    /// Longest one attempt of a task may run: the default and the ceiling for `[[tasks]]`.
    pub task_timeout: Duration,
    /// Bytes of cache keys and values one plugin may hold (on Redis and in process alike).
    pub plugin_cache_bytes: u64,
    /// Client connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Longest a client may take to send a request's head, counted from when the connection is
    /// ready for it: new, or kept alive after a response (so it also bounds idle connections).
    pub request_head_timeout: Duration,
    /// How long a warm instance (of a plugin with `[limits] reuse`) waits unused before it is dropped.
    pub warm_idle: Duration,
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
            task_timeout: Duration::from_secs(5 * 60),
            plugin_cache_bytes: 32 * 1024 * 1024,
            max_connections: 4096,
            request_head_timeout: Duration::from_secs(10),
            warm_idle: Duration::from_secs(10),
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
            cache_namespace: DEFAULT_CACHE_NAMESPACE.into(),
            limits: Limits::default(),
            watch: true,
            admin_token: None,
            auth: AuthConfig::default(),
            data_key: None,
            encryption_key: None,
            retired_encryption_keys: Vec::new(),
            plugin_overrides: BTreeMap::new(),
            workers: WorkerSettings::default(),
            metrics_listen: None,
            shutdown: ShutdownSettings::default(),
        }
    }

    /// Where the data key comes from: the operator's, else generated under the data dir.
    pub fn data_key_source(&self) -> DataKeySource {
        match &self.data_key {
            Some(key) => DataKeySource::Base64(key.clone()),
            None => DataKeySource::Generated(self.data_dir.join("keys")),
        }
    }

    /// Where the encryption key comes from: the operator's, else generated under the data dir.
    pub fn encryption_key_source(&self) -> KeySource {
        self.encryption_key
            .clone()
            .unwrap_or_else(|| KeySource::GeneratedFile(self.data_dir.join("keys").join(GENERATED_ENCRYPTION_KEY_FILE)))
    }

    /// Where the host's RSA key comes from: the operator's, else generated under the data dir.
    pub fn key_source(&self) -> KeySource {
        self.auth.private_key.clone().unwrap_or_else(|| KeySource::Generated(self.data_dir.join("keys")))
    }
}

/// Every `AUTOFLOW_PLUGIN_*` variable of this process's environment: the plugin settings overrides.
pub fn plugin_overrides_from_env() -> BTreeMap<String, String> {
    std::env::vars().filter(|(name, _)| name.starts_with(crate::spec::PLUGIN_OVERRIDE_PREFIX)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_short_or_spaced_admin_tokens_are_refused() {
        for bad in ["", " ", "short", "fifteen-chars!!", "sixteen chars xx", "sixteen-chars-x\n"] {
            let error = AdminToken::parse(bad).unwrap_err();
            assert!(error.contains("AUTOFLOW_ADMIN_TOKEN"), "{error}");
        }
        let token = AdminToken::parse("sixteen-chars-xx").unwrap();
        assert!(token.matches("sixteen-chars-xx"));
        assert!(!token.matches(""));
        assert!(!token.matches("sixteen-chars-x"));
    }
}
