//! The `autoflow` binary itself: serve, migrate, and the messages it fails with.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::helpers::{ADMIN_TOKEN, PluginsDir, TestDatabase, built_files, eventually, expected_backend, redis_url};

/// The `autoflow` binary for the deployment whose state is in `data` on `database`. Its processes
/// share a cache namespace of their own, so login limits and wake-ups never mix with other tests'.
pub(crate) fn autoflow(database: &TestDatabase, data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoflow"));
    let namespace = format!("test-{}", data.file_name().unwrap_or_default().to_string_lossy());
    command.env_remove("DATABASE_URL").env("AUTOFLOW_DATA", data).env("RUST_LOG", "info");
    command.env("AUTOFLOW_CACHE_NAMESPACE", namespace);
    if let Some(url) = &database.url {
        command.env("DATABASE_URL", url.expose_secret());
    }
    command
}

/// Starts `autoflow serve` and waits for the address it reports listening on.
pub(crate) fn start_serving(command: Command) -> (Process, String) {
    let (child, address, _) = start_serving_logged(command);
    (child, address)
}

/// [`start_serving`], keeping every line the process logs.
pub(crate) fn start_serving_logged(mut command: Command) -> (Process, String, Arc<Mutex<Vec<String>>>) {
    let mut child = Process::new(command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let logged = Arc::new(Mutex::new(Vec::new()));
    let lines = logged.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("address=").nth(1) {
                let _ = tx.send(address.split_whitespace().next().unwrap_or_default().to_owned());
            }
            lines.lock().unwrap().push(line);
        }
    });
    let address = rx.recv_timeout(Duration::from_secs(60)).expect("autoflow serve did not report listening");
    (child, address, logged)
}

pub(crate) fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn serve_answers_from_the_plugin_and_stops_cleanly_on_sigterm() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    let mut command = autoflow(&database, data.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--plugins"]).arg(plugins.path());
    command.env("AUTOFLOW_PLUGIN_HELLO__GREETING", "Servus");

    let (mut child, address) = start_serving(command);
    let response = reqwest::get(format!("http://{address}/api/hello/cli")).await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let exit = child.wait().unwrap();

    assert_eq!(status, 200);
    assert_eq!(body["message"], "Servus, cli!", "the operator's setting reaches the plugin");
    assert!(exit.success(), "autoflow serve should exit 0 after SIGTERM, got {exit}");
}

/// Sends SIGTERM to `process`.
pub(crate) fn terminate(process: &Process) {
    Command::new("kill").args(["-TERM", &process.id().to_string()]).status().unwrap();
}

#[tokio::test]
async fn on_sigterm_readiness_turns_false_at_once_and_a_slow_request_finishes() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello", "test-trap"]));
    let mut command = autoflow(&database, data.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--shutdown-grace", "1s", "--plugins"]).arg(plugins.path());
    let (mut child, address) = start_serving(command);
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("http://{address}/health/ready")).send().await.unwrap().status(), 200);

    let slow = tokio::spawn({
        let (client, url) = (client.clone(), format!("http://{address}/api/trap/slow?ms=1500"));
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    terminate(&child);
    let ready = eventually(Duration::from_secs(2), "readiness to turn false", || async {
        let response = client.get(format!("http://{address}/health/ready")).send().await.ok()?;
        (response.status() == 503).then_some(response)
    })
    .await;
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["draining"]["status"], "draining", "{body}");
    assert_eq!(
        client.get(format!("http://{address}/api/hello/drain")).send().await.unwrap().status(),
        200,
        "requests are still served during the grace period"
    );

    let (status, text) = slow.await.unwrap();
    assert_eq!((status.as_u16(), text.as_str()), (200, "slow done"), "the request in flight finished");
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "autoflow serve exits 0 after draining, got {exit}");
    let refused = reqwest::Client::new().get(format!("http://{address}/health/live")).send().await;
    assert!(refused.is_err(), "no new connections once it stopped");
}

#[tokio::test]
async fn serve_with_a_broken_plugin_exits_non_zero_naming_the_file() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    std::fs::write(plugins.path().join("hello/plugin.wasm"), "not wasm").unwrap();

    let output = autoflow(&database, data.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(plugins.path())
        .output()
        .unwrap();

    let stderr = stderr_of(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("hello/plugin.wasm") && stderr.contains("not a valid wasm component"), "{stderr}");
}

#[tokio::test]
async fn serve_reads_a_config_file_under_its_environment_and_flags() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    let file = data.path().join("autoflow.toml");
    let settings = format!(
        "listen = \"127.0.0.1:0\"\nplugins = \"{}\"\nmax-body-bytes = 8\nrequest-timeout-ms = 5000\n",
        plugins.path().display()
    );
    std::fs::write(&file, settings).unwrap();

    let mut command = autoflow(&database, data.path());
    command.args(["serve", "--config"]).arg(&file).env("AUTOFLOW_MAX_BODY_BYTES", "64");
    let (child, address) = start_serving(command);
    let client = reqwest::Client::new();
    let echo = |body: &'static str| client.post(format!("http://{address}/api/echo")).body(body).send();
    let fits = echo("{\"the env\": \"wins\"}").await.unwrap().status();
    let too_big =
        echo(r#"{"padding": "more than sixty-four bytes of JSON body in one request"}"#).await.unwrap().status();
    kill(child);

    assert_eq!(fits, 200, "plugins came from the file; 8 bytes from the file lost to the env's 64");
    assert_eq!(too_big, 413);

    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten-port = 1\n").unwrap();
    let output = autoflow(&database, data.path()).args(["serve", "--config"]).arg(&file).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr_of(&output).contains("unknown setting `listen-port`"), "{}", stderr_of(&output));
}

#[tokio::test]
async fn migrate_creates_the_schema_and_exits_zero() {
    let (database, data) = (TestDatabase::create().await, tempfile::TempDir::new().unwrap());

    let output = autoflow(&database, data.path()).arg("migrate").output().unwrap();

    assert!(output.status.success(), "{}", stderr_of(&output));
    let db = autoflow_host::db::Database::connect(database.url.as_ref(), data.path()).await.unwrap();
    assert_eq!(db.backend().to_string(), expected_backend());
    assert!(db.loaded_plugins().await.unwrap().is_empty(), "the plugins table exists and is empty");
    if expected_backend() == "sqlite" {
        assert!(data.path().join("autoflow.db").is_file());
    }
}

#[tokio::test]
async fn an_unsupported_database_url_is_named_in_the_error() {
    let data = tempfile::TempDir::new().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_autoflow"))
        .arg("migrate")
        .env("DATABASE_URL", "mysql://localhost/db")
        .env("AUTOFLOW_DATA", data.path())
        .output()
        .unwrap();

    let stderr = stderr_of(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("DATABASE_URL must start with") && stderr.contains("`mysql`"), "{stderr}");
}

/// A child process that is killed and reaped when dropped, so a failing test leaves none behind.
pub(crate) struct Process(Child);

impl Process {
    pub(crate) fn new(child: Child) -> Self {
        Self(child)
    }
}

impl std::ops::Deref for Process {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills `process` and waits for it to end.
pub(crate) fn kill(process: Process) {
    drop(process);
}

#[tokio::test]
async fn plugins_push_deploys_to_every_serve_process_and_plugins_list_shows_it() {
    let (database, data) = (TestDatabase::create().await, tempfile::TempDir::new().unwrap());
    let serve = |plugins: &PluginsDir| {
        let mut command = autoflow(&database, data.path());
        command.args(["serve", "--listen", "127.0.0.1:0", "--plugins"]).arg(plugins.path());
        command.env("AUTOFLOW_ADMIN_TOKEN", ADMIN_TOKEN);
        start_serving(command)
    };
    let (first_plugins, second_plugins) = (PluginsDir::with(&["hello"]), PluginsDir::with(&["hello"]));
    let (first, first_address) = serve(&first_plugins);
    // Two processes only meet through Redis; without it (the embedded pass) one process is checked.
    let second = redis_url().map(|_| serve(&second_plugins));
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_autoflow"))
            .args(args)
            .env("AUTOFLOW_URL", format!("http://{first_address}"))
            .env("AUTOFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    let build = tempfile::TempDir::new().unwrap();
    let (manifest, component) = built_files("test-hello-v2", "hello");
    std::fs::write(build.path().join("plugin.toml"), manifest).unwrap();
    std::fs::write(build.path().join("plugin.wasm"), component).unwrap();

    let pushed = cli(&["plugins", "push", build.path().to_str().unwrap()]);
    let listed = cli(&["plugins", "list"]);
    std::fs::write(build.path().join("plugin.wasm"), "broken").unwrap();
    let refused = cli(&["plugins", "push", build.path().to_str().unwrap()]);
    let greeting_on = |address: String| async move {
        let body: serde_json::Value =
            reqwest::get(format!("http://{address}/api/hello/x")).await.ok()?.json().await.ok()?;
        (body["message"] == "Howdy, x!").then_some(())
    };
    eventually(Duration::from_secs(10), "the pushing host to serve the build", || greeting_on(first_address.clone()))
        .await;
    if let Some((_, second_address)) = &second {
        eventually(Duration::from_secs(10), "the other host to serve the build", || {
            greeting_on(second_address.clone())
        })
        .await;
    }
    kill(first);
    if let Some((child, _)) = second {
        kill(child);
    }

    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(pushed.status.success(), "{}", stderr_of(&pushed));
    assert!(stdout(&pushed).starts_with("hello 2.0.0 is serving"), "{}", stdout(&pushed));
    assert!(listed.status.success(), "{}", stderr_of(&listed));
    let line = stdout(&listed).lines().find(|l| l.starts_with("hello ")).unwrap_or_default().to_owned();
    assert!(line.contains("2.0.0") && line.contains("serving"), "{}", stdout(&listed));
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("400") && stderr_of(&refused).contains("not a valid wasm component"),
        "{}",
        stderr_of(&refused)
    );
}

/// Runs `autoflow users create` with `args`, the password given on stdin.
pub(crate) fn create_user(database: &TestDatabase, data: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = autoflow(database, data)
        .args(["users", "create"])
        .args(args)
        .env_remove("AUTOFLOW_USER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn users_create_makes_the_first_admin_of_a_fresh_install() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["users"]));

    let created = create_user(
        &database,
        data.path(),
        &["--email", "root@example.com", "--permissions", "admin"],
        "first admin password\n",
    );
    let short = create_user(&database, data.path(), &["--email", "nope", "--permissions", "admin"], "short\n");
    let empty = create_user(&database, data.path(), &["--email", "x@example.com"], "");
    let mut command = autoflow(&database, data.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--plugins"]).arg(plugins.path());
    let (serve, address) = start_serving(command);
    let client = reqwest::Client::new();
    let login = client
        .post(format!("http://{address}/auth/login"))
        .json(&serde_json::json!({ "email": "root@example.com", "password": "first admin password" }))
        .send()
        .await
        .unwrap();
    let login_status = login.status();
    let token = login.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap_or_default().to_owned();
    let users = client.get(format!("http://{address}/api/users")).bearer_auth(&token).send().await.unwrap();
    let users_status = users.status();
    let users: serde_json::Value = users.json().await.unwrap();
    kill(serve);

    assert!(created.status.success(), "{}", stderr_of(&created));
    let printed: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(
        (printed["email"].as_str(), printed["permissions"].clone()),
        (Some("root@example.com"), serde_json::json!(["admin"]))
    );
    assert!(!String::from_utf8_lossy(&created.stdout).contains("argon2"));
    assert!(!short.status.success());
    assert!(
        stderr_of(&short).contains("email must be an email address")
            && stderr_of(&short).contains("password must be at least 10"),
        "{}",
        stderr_of(&short)
    );
    assert!(!empty.status.success());
    assert!(stderr_of(&empty).contains("AUTOFLOW_USER_PASSWORD"), "{}", stderr_of(&empty));
    assert_eq!(login_status, 200);
    assert_eq!(users_status, 200);
    assert_eq!(users["items"][0]["email"], "root@example.com");
}

#[tokio::test]
async fn an_empty_or_short_admin_token_is_refused_at_start_up_from_flag_env_and_file() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    let file = data.path().join("autoflow.toml");
    std::fs::write(&file, "admin-token = \"\"\n").unwrap();
    let serve = || {
        let mut command = autoflow(&database, data.path());
        command.args(["serve", "--listen", "127.0.0.1:0", "--plugins"]).arg(plugins.path());
        command.env_remove("AUTOFLOW_ADMIN_TOKEN");
        command
    };
    let file = file.to_str().unwrap();
    let cases: [(&str, &[&str], Option<&str>); 4] = [
        ("an empty flag", &["--admin-token", ""], None),
        ("a short flag", &["--admin-token", "letmein"], None),
        ("an empty variable", &[], Some("")),
        ("an empty file setting", &["--config", file], None),
    ];
    for (case, args, variable) in cases {
        let mut command = serve();
        command.args(args);
        if let Some(value) = variable {
            command.env("AUTOFLOW_ADMIN_TOKEN", value);
        }
        let output = command.output().unwrap();
        let stderr = stderr_of(&output);
        assert!(!output.status.success(), "{case}: the host started");
        assert!(stderr.contains("AUTOFLOW_ADMIN_TOKEN") && stderr.contains("at least 16"), "{case}: {stderr}");
    }
}
