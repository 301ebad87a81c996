//! Test plugins against a real host. [`TestHost::start`] runs the host in-process on port 0 with
//! the embedded backend (SQLite and the in-process cache and queue, in a temporary directory) and
//! the built plugins under test; [`TestHost::user`] creates a user and signs them in; requests go
//! over real HTTP, so a test sees exactly what a client sees.
//!
//! ```ignore
//! #[tokio::test]
//! async fn a_user_reads_back_their_note() {
//!     let host = TestHost::start(&["notes"]).await;
//!     let ada = host.user("ada@example.com", &[]).await;
//!
//!     let created = ada.post("/api/notes", json!({ "title": "Groceries" })).await;
//!     assert_eq!(created.status, 201);
//!     let read = ada.get(created.header("location").unwrap()).await;
//!     assert_eq!(read.body["title"], "Groceries");
//! }
//! ```
//!
//! Plugins are taken from `dist/plugins` (or `dist/test-plugins`), where `cargo xtask
//! build-plugins` puts them; `cargo xtask test` builds them first and runs every plugin's tests
//! (`plugins/<name>/tests/*.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use autoflow_host::config::{Config, WorkerSettings};
use autoflow_host::http::Auth;
use autoflow_host::services::identity::NewUser;
use autoflow_host::spec::manifest::{COMPONENT_FILE, MANIFEST_FILE};
use autoflow_host::spec::publish::publish;
use autoflow_host::startup::Application;
use reqwest::Method;
use serde_json::Value;
use tempfile::TempDir;

/// The password of every user a [`TestHost`] creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// A host serving plugins under test; stopped when dropped.
pub struct TestHost {
    address: String,
    client: reqwest::Client,
    auth: Auth,
    _plugins: TempDir,
    _data: TempDir,
}

impl TestHost {
    /// A host serving the built plugins `names` from this repository's `dist/`.
    pub async fn start(names: &[&str]) -> Self {
        let plugins = TempDir::new().expect("creating a plugins directory");
        for name in names {
            publish_copy(&built_plugin(name), plugins.path(), name);
        }
        Self::serve(plugins).await
    }

    /// A host serving every plugin in `dir` (laid out as `dist/plugins` is: one directory per
    /// plugin holding `plugin.toml` and `plugin.wasm`).
    pub async fn start_dir(dir: &Path) -> Self {
        let plugins = TempDir::new().expect("creating a plugins directory");
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let from = entry.unwrap().path();
            let name = from.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                publish_copy(&from, plugins.path(), &name);
            }
        }
        Self::serve(plugins).await
    }

    async fn serve(plugins: TempDir) -> Self {
        let data = TempDir::new().expect("creating a data directory");
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            plugins_dir: plugins.path().to_owned(),
            data_dir: data.path().to_owned(),
            watch: false,
            workers: WorkerSettings { poll_interval: Duration::from_millis(50), ..WorkerSettings::default() },
            // Keys are generated under the data directory, as on a fresh embedded install.
            ..Config::embedded()
        };
        let app = Application::build(config).await.unwrap_or_else(|error| panic!("the host did not start: {error}"));
        let address = format!("http://{}", app.local_addr());
        let auth = app.auth().clone();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self { address, client: reqwest::Client::new(), auth, _plugins: plugins, _data: data }
    }

    /// The host's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A new user holding `permissions`, signed in.
    pub async fn user(&self, email: &str, permissions: &[&str]) -> TestUser {
        let new = NewUser {
            email: email.into(),
            display_name: None,
            password: PASSWORD.into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        };
        let user = self.auth.identity.create(new).await.unwrap_or_else(|e| panic!("creating {email}: {e}"));
        let login =
            self.anonymous().post("/auth/login", serde_json::json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(login.status, 200, "signing in {email}: {}", login.body);
        let token = login.body["token"].as_str().expect("a token").to_owned();
        TestUser { id: user.id, client: self.caller(Some(token)) }
    }

    /// A caller without credentials.
    pub fn anonymous(&self) -> Caller {
        self.caller(None)
    }

    fn caller(&self, token: Option<String>) -> Caller {
        Caller { address: self.address.clone(), client: self.client.clone(), token }
    }
}

/// A signed-in user of a [`TestHost`]; dereferences to the [`Caller`] acting for them.
pub struct TestUser {
    /// The user's id.
    pub id: String,
    client: Caller,
}

impl std::ops::Deref for TestUser {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.client
    }
}

/// Makes requests to a [`TestHost`], with a bearer token or none.
#[derive(Clone)]
pub struct Caller {
    address: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl Caller {
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> TestResponse {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> TestResponse {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// `GET path` every 50 ms until `done` holds for the answer, for at most 10 s; the last answer
    /// either way (for what a background task changes).
    pub async fn get_until(&self, path: &str, done: impl Fn(&TestResponse) -> bool) -> TestResponse {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.get(path).await;
            if done(&answer) || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The task at `location` (as `POST /api/tasks` answered it) once it finished: completed, dead
    /// or cancelled (or as it is after 10 s).
    pub async fn finished_task(&self, location: &str) -> TestResponse {
        self.get_until(location, |task| {
            matches!(task.body["status"].as_str(), Some("completed" | "dead" | "cancelled"))
        })
        .await
    }

    /// Any request: `body` is sent as JSON, `headers` as given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.address));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        TestResponse::read(response).await
    }
}

/// A response as the client saw it: status, headers and body (JSON, or the text as a string).
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body parsed as JSON; a body that is not JSON is a JSON string of its text, and an empty
    /// body is `null`.
    pub body: Value,
}

impl TestResponse {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Self { status, headers, body }
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The platform error's `code`, for a `4xx`/`5xx` answer.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// Publishes the build in directory `from` into `plugins` as plugin `name`, by the host's own rule.
fn publish_copy(from: &Path, plugins: &Path, name: &str) {
    let read = |file: &str| {
        std::fs::read(from.join(file)).unwrap_or_else(|e| panic!("reading {}: {e}", from.join(file).display()))
    };
    publish(plugins, name, &read(MANIFEST_FILE), &read(COMPONENT_FILE))
        .unwrap_or_else(|e| panic!("publishing {name}: {e}"));
}

/// Where `cargo xtask build-plugins` put plugin `name`.
pub fn built_plugin(name: &str) -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist");
    let dir = ["plugins", "test-plugins"].iter().map(|under| dist.join(under).join(name)).find(|dir| dir.exists());
    dir.unwrap_or_else(|| panic!("plugin `{name}` is not built: run `cargo xtask build-plugins`"))
}
