//! Spawning a real host for a test: the built plugin components, a fresh database (a new schema on
//! `DATABASE_URL`'s PostgreSQL, else a new SQLite file), port 0, and captured logs.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use autoflow_host::config::{AdminToken, AuthConfig, Config, KeySource, Limits, ShutdownSettings, WorkerSettings};
use autoflow_host::db::Database;
use autoflow_host::http::Auth;
use autoflow_host::plugins::LivePlugins;
use autoflow_host::services::identity::{NewUser, User};
use autoflow_host::services::keys::RsaKeys;
use autoflow_host::spec::publish::{publish, unpublish};
use autoflow_host::startup::{Application, StartupError};
use secrecy::SecretString;
use sqlx::Connection as _;
use tempfile::TempDir;

/// The backend the suite runs on: PostgreSQL when `DATABASE_URL` is set, else SQLite.
pub fn expected_backend() -> &'static str {
    if postgres_url().is_some() { "postgres" } else { "sqlite" }
}

/// Redis, when the suite runs against the production backends.
pub fn redis_url() -> Option<String> {
    std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
}

/// Redis for a test that cannot run without it. Such a test has nothing to check in the embedded
/// pass (`AUTOFLOW_TEST_PASS=embedded`, run without services on purpose) and says it skipped;
/// anywhere else under `CI=true` a missing `REDIS_URL` fails the test instead.
pub fn needs_redis() -> Option<String> {
    redis_url().or_else(|| skip_or_fail("REDIS_URL"))
}

/// PostgreSQL for a test that cannot run on SQLite, as [`needs_redis`] does for Redis.
pub fn needs_postgres() -> Option<String> {
    postgres_url().or_else(|| skip_or_fail("DATABASE_URL"))
}

/// Whether the suite runs under CI (`CI` set to anything but empty, `false` or `0`), where a
/// missing service or tool fails a test instead of skipping it.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !ci.is_empty() && ci != "false" && ci != "0")
}

fn skip_or_fail<T>(service: &str) -> Option<T> {
    let embedded_pass = std::env::var("AUTOFLOW_TEST_PASS").is_ok_and(|pass| pass == "embedded");
    assert!(
        embedded_pass || !under_ci(),
        "{service} is not set: under CI=true a test never skips because a service is missing"
    );
    eprintln!("skipped: needs {service} (runs in the PostgreSQL + Redis pass)");
    None
}

/// The Python with the tests' tools (`xtask/test-requirements.txt`), which `cargo xtask test`
/// installs and names in `AUTOFLOW_TEST_PYTHON`. Without it a test says it skipped, but under
/// `CI=true` it fails.
pub fn needs_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("AUTOFLOW_TEST_PYTHON").filter(|path| !path.is_empty());
    if python.is_none() {
        assert!(!under_ci(), "AUTOFLOW_TEST_PYTHON is not set: under CI=true run the tests through `cargo xtask test`");
        eprintln!("skipped: needs AUTOFLOW_TEST_PYTHON (run the tests through `cargo xtask test`)");
    }
    python.map(Into::into)
}

/// The browser tools (`host/tests/console/package.json` and Debian's Chromium), which `cargo xtask
/// test` installs and names in `AUTOFLOW_TEST_NODE_MODULES` and `AUTOFLOW_TEST_CHROMIUM`.
/// Without them a test says it skipped, but under `CI=true` it fails.
pub struct BrowserTools {
    pub node_modules: PathBuf,
    pub chromium: PathBuf,
}

pub fn needs_browser() -> Option<BrowserTools> {
    let path = |name| std::env::var_os(name).filter(|path| !path.is_empty()).map(PathBuf::from);
    let tools = path("AUTOFLOW_TEST_NODE_MODULES")
        .zip(path("AUTOFLOW_TEST_CHROMIUM"))
        .map(|(node_modules, chromium)| BrowserTools { node_modules, chromium });
    if tools.is_none() {
        assert!(
            !under_ci(),
            "AUTOFLOW_TEST_NODE_MODULES and AUTOFLOW_TEST_CHROMIUM are not set: under CI=true run the tests through \
             `cargo xtask test`"
        );
        eprintln!("skipped: needs the browser tools (run the tests through `cargo xtask test`)");
    }
    tools
}

fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// The directory of a plugin built by `cargo xtask build-plugins`.
pub fn built_plugin(name: &str) -> PathBuf {
    // `cargo test` sets the variable at run time; a test binary reused from a shared target
    // directory may have been compiled in another checkout.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let dist = manifest_dir.join("../dist");
    let kind = if name.starts_with("test-") { "test-plugins" } else { "plugins" };
    let dir = dist.join(kind).join(name);
    assert!(
        dir.join("plugin.wasm").is_file(),
        "plugin `{name}` is not built at {}: run `cargo xtask build-plugins` (or `cargo xtask test`)",
        dir.display()
    );
    dir
}

/// The names of every example plugin (`dist/plugins`, not the test plugins), sorted.
pub fn example_plugins() -> Vec<String> {
    let dist = built_plugin("hello").parent().unwrap().to_owned();
    let mut names: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("plugin.wasm").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// A plugins directory being assembled for one test.
pub struct PluginsDir {
    pub dir: TempDir,
}

impl PluginsDir {
    pub fn new() -> Self {
        Self { dir: TempDir::new().unwrap() }
    }

    /// Copies built plugins in.
    pub fn with(names: &[&str]) -> Self {
        let plugins = Self::new();
        for name in names {
            plugins.copy_built(name, name);
        }
        plugins
    }

    /// Copies the built plugin `name` in under directory `as_dir`; returns that directory.
    pub fn copy_built(&self, name: &str, as_dir: &str) -> PathBuf {
        let from = built_plugin(name);
        let to = self.path().join(as_dir);
        std::fs::create_dir_all(&to).unwrap();
        for file in ["plugin.toml", "plugin.wasm"] {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
        to
    }

    /// Rewrites the manifest of the copied plugin `name` with `change`.
    pub fn edit_manifest(&self, name: &str, change: impl FnOnce(String) -> String) {
        let manifest = self.path().join(name).join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, change(text)).unwrap();
    }

    /// Publishes the built plugin `name` as plugin `as_name` (the manifest's name rewritten), the
    /// way builds are published to a running host: as one unit, swapped in atomically.
    pub fn publish_built(&self, name: &str, as_name: &str) {
        let (manifest, component) = built_files(name, as_name);
        self.publish_raw(as_name, &manifest, &component);
    }

    /// Publishes arbitrary manifest and component bytes as plugin `name`.
    pub fn publish_raw(&self, name: &str, manifest: &[u8], component: &[u8]) {
        publish(self.path(), name, manifest, component).unwrap();
    }

    /// Removes plugin `name`.
    pub fn unpublish(&self, name: &str) {
        unpublish(self.path(), name).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Manifest and component of the built plugin `name`, the manifest renamed to `as_name`.
pub fn built_files(name: &str, as_name: &str) -> (Vec<u8>, Vec<u8>) {
    let from = built_plugin(name);
    let manifest = std::fs::read_to_string(from.join("plugin.toml")).unwrap();
    let manifest = manifest.replace(&format!("name = \"{name}\""), &format!("name = \"{as_name}\""));
    (manifest.into_bytes(), std::fs::read(from.join("plugin.wasm")).unwrap())
}

/// The status of an error response and its `error` object (`code`, `message`, …).
pub async fn error_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

/// The admin token test hosts are configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh, empty database for one test; dropped with it.
pub struct TestDatabase {
    pub url: Option<SecretString>,
    schema: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let Some(base) = postgres_url() else {
            return Self { url: None, schema: None };
        };
        let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&base).await.expect("DATABASE_URL must reach PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&pool).await.unwrap();
        pool.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        Self { url: Some(SecretString::from(url)), schema: Some((base, schema)) }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else { return };
        // Drop runs outside async code; use a thread with its own runtime to clean up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let Ok(mut connection) = sqlx::PgConnection::connect(&base).await else { return };
                // The test's host is frozen while this runs (its runtime waits here), so a
                // transaction it had open would block the drop for ever: give up waiting after a
                // moment, end that host's sessions holding locks in this schema, and try again.
                let _ = sqlx::query("SET lock_timeout = '2s'").execute(&mut connection).await;
                let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                for _ in 0..3 {
                    if sqlx::query(sqlx::AssertSqlSafe(drop.clone())).execute(&mut connection).await.is_ok() {
                        break;
                    }
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                    )
                    .bind(&schema)
                    .execute(&mut connection)
                    .await;
                }
                let _ = connection.close().await;
            });
        })
        .join();
    }
}

/// A config for a test host: port 0, a temporary data dir, the test database.
pub fn test_config(plugins_dir: &Path, data_dir: &Path, database: &TestDatabase) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        plugins_dir: plugins_dir.to_owned(),
        data_dir: data_dir.to_owned(),
        database_url: database.url.clone(),
        redis_url: redis_url().map(Into::into),
        // Each test host has its own keys in the shared Redis.
        cache_namespace: format!("test-{}", uuid::Uuid::new_v4().simple()),
        limits: Limits { max_instances: 50, ..Limits::default() },
        watch: false,
        admin_token: Some(AdminToken::parse(ADMIN_TOKEN).unwrap()),
        auth: AuthConfig { private_key: Some(KeySource::Pem(test_key().clone())), ..AuthConfig::default() },
        data_key: None,
        encryption_key: Some(KeySource::Pem(test_encryption_key().clone())),
        retired_encryption_keys: Vec::new(),
        plugin_overrides: Default::default(),
        workers: WorkerSettings { poll_interval: Duration::from_millis(100), ..WorkerSettings::default() },
        metrics_listen: None,
        shutdown: ShutdownSettings::default(),
    }
}

/// The RSA private key (PEM) every test host signs with, generated once per test run.
pub fn test_key() -> &'static SecretString {
    static KEY: OnceLock<SecretString> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = TempDir::new().unwrap();
        RsaKeys::load(&KeySource::Generated(dir.path().to_owned())).unwrap().private_pem().clone()
    })
}

/// The RSA private key (PEM) every test host lends plugins to decrypt with, generated once per run.
pub fn test_encryption_key() -> &'static SecretString {
    static KEY: OnceLock<SecretString> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = TempDir::new().unwrap();
        RsaKeys::load(&KeySource::Generated(dir.path().to_owned())).unwrap().private_pem().clone()
    })
}

/// `plaintext` encrypted the way a client does it: RSA-OAEP with SHA-256 to the public key `pem`
/// (SPKI, as the host hands it out), under the OAEP `label` of the plugin it is for.
pub fn encrypt_to(pem: &str, label: &str, plaintext: &[u8]) -> Vec<u8> {
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let spki = pem::parse(pem.as_bytes()).unwrap();
    assert_eq!(spki.tag(), "PUBLIC KEY");
    let public = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(spki.contents()).unwrap()).unwrap();
    let mut ciphertext = vec![0; public.ciphertext_size()];
    public.encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut ciphertext, Some(label.as_bytes())).unwrap().to_vec()
}

/// The password of users made by [`TestApp::create_user`].
pub const PASSWORD: &str = "correct horse battery staple";

/// A running host.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Database,
    pub live: Arc<LivePlugins>,
    pub plugins: PluginsDir,
    /// The host's own identity and token services (same database and cache).
    pub auth: Auth,
    /// The `--metrics-listen` address, if the test configured one.
    pub metrics: Option<String>,
    _data: TempDir,
    _database: TestDatabase,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }

    /// The first column of every row `sql` returns, as text; the SQL must suit both databases.
    pub async fn column(&self, sql: &'static str) -> Vec<String> {
        match &self.db {
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// A request to the admin API with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }

    /// The admin API's view of plugin `name` (JSON null if it has none).
    pub async fn admin_plugin(&self, name: &str) -> serde_json::Value {
        let list: serde_json::Value =
            self.admin(reqwest::Method::GET, "/admin/plugins").send().await.unwrap().json().await.unwrap();
        list["items"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_default()
    }

    /// Uploads a build through `PUT /admin/plugins/{name}`.
    pub async fn upload(&self, name: &str, manifest: Vec<u8>, component: Vec<u8>) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .part("manifest", reqwest::multipart::Part::bytes(manifest).file_name("plugin.toml"))
            .part("component", reqwest::multipart::Part::bytes(component).file_name("plugin.wasm"));
        self.admin(reqwest::Method::PUT, &format!("/admin/plugins/{name}")).multipart(form).send().await.unwrap()
    }

    /// Uploads the built plugin `built` as plugin `name` (the manifest's name rewritten).
    pub async fn upload_built(&self, built: &str, name: &str) -> reqwest::Response {
        let (manifest, component) = built_files(built, name);
        self.upload(name, manifest, component).await
    }

    /// Creates a user with [`PASSWORD`] through the host's identity service.
    pub async fn create_user(&self, email: &str, permissions: &[&str]) -> User {
        let new = NewUser {
            email: email.into(),
            display_name: None,
            password: PASSWORD.into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        };
        self.auth.identity.create(new).await.expect("creating a test user")
    }

    /// `POST /auth/login` with these credentials.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let body = serde_json::json!({ "email": email, "password": password });
        self.client.post(self.url("/auth/login")).json(&body).send().await.expect("request failed")
    }

    /// A new user with `permissions` and an access token for them.
    pub async fn user_with_token(&self, email: &str, permissions: &[&str]) -> (User, String) {
        let user = self.create_user(email, permissions).await;
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200, "logging in {email}");
        let body: serde_json::Value = response.json().await.unwrap();
        (user, body["token"].as_str().unwrap().to_owned())
    }

    /// `GET path`, with `token` as bearer token if given.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let request = self.client.get(self.url(path));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.expect("request failed")
    }

    /// A request with a bearer token.
    pub fn request_as(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// The `message` field `GET /api/hello/{name}` answers with, or the status if not 200.
    pub async fn greeting(&self, name: &str) -> Result<String, u16> {
        let response = self.get(&format!("/api/hello/{name}")).await;
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        let body: serde_json::Value = response.json().await.unwrap();
        Ok(body["message"].as_str().unwrap_or_default().to_owned())
    }
}

/// Builds a host from `plugins` with a config adjusted by `configure`, returning the startup result.
pub async fn try_spawn(
    plugins: PluginsDir,
    configure: impl FnOnce(&mut Config),
) -> Result<TestApp, (StartupError, PluginsDir)> {
    capture_logs();
    let data = TempDir::new().unwrap();
    let database = TestDatabase::create().await;
    let mut config = test_config(plugins.path(), data.path(), &database);
    configure(&mut config);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(error) => return Err((error, plugins)),
    };
    let address = format!("http://{}", app.local_addr());
    let db = app.database().clone();
    let live = app.plugins().clone();
    let auth = app.auth().clone();
    let metrics = app.metrics_addr().map(|addr| addr.to_string());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    Ok(TestApp { address, client, db, live, plugins, auth, metrics, _data: data, _database: database })
}

/// A host serving the given built plugins with default limits.
pub async fn spawn_app_with(plugins: &[&str]) -> TestApp {
    spawn_configured(plugins, |_| {}).await
}

/// A host serving the given built plugins with a config adjusted by `configure`.
pub async fn spawn_configured(plugins: &[&str], configure: impl FnOnce(&mut Config)) -> TestApp {
    match try_spawn(PluginsDir::with(plugins), configure).await {
        Ok(app) => app,
        Err((error, _)) => panic!("the host failed to start: {error}"),
    }
}

/// A host serving the `hello` example plugin.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&["hello"]).await
}

/// The startup error for a plugins directory that should be refused.
pub async fn startup_error(plugins: PluginsDir) -> String {
    match try_spawn(plugins, |_| {}).await {
        Ok(_) => panic!("the host started although its plugins directory is broken"),
        Err((error, _)) => error.to_string(),
    }
}

/// Everything logged by any test in this binary, for tests that look for their own lines.
pub fn captured_logs() -> String {
    let buffer = LOGS.get().expect("capture_logs was called").lock().unwrap();
    String::from_utf8_lossy(&buffer).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = CaptureWriter(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends `method path` as `token`'s user, with `body` as JSON if given.
pub async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let request = app.request_as(method, path, token);
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
    .send()
    .await
    .unwrap()
}
