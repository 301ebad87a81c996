//! A broken plugin set refuses to start, naming the file and the problem.

use std::fs;

use crate::helpers::{PluginsDir, startup_error, try_spawn};

#[tokio::test]
async fn a_malformed_manifest_is_refused_naming_the_file() {
    let plugins = PluginsDir::with(&["hello"]);
    let manifest = plugins.path().join("hello/plugin.toml");
    fs::write(&manifest, "name = \"hello\"\nversion = ").unwrap();

    let error = startup_error(plugins).await;

    assert!(error.contains(&manifest.display().to_string()), "{error}");
    assert!(error.contains("invalid manifest"), "{error}");
}

#[tokio::test]
async fn a_manifest_with_an_unknown_field_is_refused_naming_the_field() {
    let plugins = PluginsDir::with(&["hello"]);
    plugins.edit_manifest("hello", |text| text.replace("kind = \"feature\"", "kind = \"feature\"\ncolour = \"blue\""));

    let error = startup_error(plugins).await;

    assert!(error.contains("colour"), "{error}");
}

#[tokio::test]
async fn a_missing_component_file_is_refused() {
    let plugins = PluginsDir::with(&["hello"]);
    let component = plugins.path().join("hello/plugin.wasm");
    fs::remove_file(&component).unwrap();

    let error = startup_error(plugins).await;

    assert!(error.contains(&component.display().to_string()), "{error}");
    assert!(error.contains("component file not found"), "{error}");
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_refused() {
    for (what, bytes) in
        [("garbage", b"this is not wasm at all".to_vec()), ("a core module", b"\0asm\x01\0\0\0".to_vec())]
    {
        let plugins = PluginsDir::with(&["hello"]);
        let component = plugins.path().join("hello/plugin.wasm");
        fs::write(&component, bytes).unwrap();

        let error = startup_error(plugins).await;

        assert!(error.contains(&component.display().to_string()), "{what}: {error}");
        assert!(error.contains("not a valid wasm component"), "{what}: {error}");
    }
}

#[tokio::test]
async fn two_plugins_claiming_the_same_route_are_refused_naming_both() {
    let plugins = PluginsDir::with(&["hello"]);
    plugins.copy_built("hello", "hello-twin");
    plugins.edit_manifest("hello-twin", |text| text.replace("name = \"hello\"", "name = \"hello-twin\""));

    let error = startup_error(plugins).await;

    assert!(
        error.contains("route GET /api/hello/{name} is claimed by both plugin 'hello' and plugin 'hello-twin'"),
        "{error}"
    );
}

#[tokio::test]
async fn a_directory_not_named_after_its_plugin_is_refused() {
    let plugins = PluginsDir::new();
    plugins.copy_built("hello", "greeter");

    let error = startup_error(plugins).await;

    assert!(error.contains("names plugin 'hello' but its directory is 'greeter'"), "{error}");
}

#[tokio::test]
async fn every_broken_plugin_is_reported_at_once() {
    let plugins = PluginsDir::with(&["hello", "test-trap"]);
    fs::write(plugins.path().join("hello/plugin.toml"), "nonsense").unwrap();
    fs::write(plugins.path().join("test-trap/plugin.wasm"), "nonsense").unwrap();

    let error = startup_error(plugins).await;

    assert!(error.starts_with("2 plugin problems:"), "{error}");
    assert!(error.contains("hello/plugin.toml") && error.contains("test-trap/plugin.wasm"), "{error}");
}

#[tokio::test]
async fn a_missing_plugins_directory_says_how_to_build_the_plugins() {
    let result = try_spawn(PluginsDir::new(), |config| config.plugins_dir.push("does-not-exist")).await;

    let error = result.err().expect("the host started without a plugins directory").0.to_string();
    assert!(error.contains("does-not-exist") && error.contains("cargo xtask build-plugins"), "{error}");
}

#[tokio::test]
async fn hidden_staging_directories_are_ignored() {
    let plugins = PluginsDir::with(&["hello"]);
    fs::create_dir_all(plugins.path().join(".hello.staging")).unwrap();

    let app = try_spawn(plugins, |_| {}).await.unwrap_or_else(|(e, _)| panic!("{e}"));

    assert_eq!(app.get("/api/hello/world").await.status(), 200);
}

#[tokio::test]
async fn a_plugin_importing_a_capability_its_manifest_does_not_grant_is_refused_at_load() {
    for (plugin, capability) in [("users", "identity"), ("test-cache", "cache"), ("test-crypto", "crypto")] {
        let plugins = PluginsDir::with(&[plugin]);
        plugins.edit_manifest(plugin, |text| {
            text.replace(&format!("{capability} = true"), &format!("{capability} = false"))
        });

        let error = startup_error(plugins).await;

        assert!(error.contains(&format!("plugin '{plugin}'")), "{error}");
        assert!(error.contains(&format!("autoflow:platform/{capability}")), "{error}");
        assert!(error.contains(&format!("[capabilities] {capability} = true")), "{error}");
    }

    let plugins = PluginsDir::with(&["test-records"]);
    plugins.edit_manifest("test-records", |text| {
        text.replace("[capabilities.records]\nitems = \"user\"\nsettings = \"shared\"\n", "")
    });
    let error = startup_error(plugins).await;
    assert!(error.contains("autoflow:platform/records") && error.contains("[capabilities.records]"), "{error}");

    let plugins = PluginsDir::with(&["test-trap"]);
    plugins.edit_manifest("test-trap", |text| text.replace("queue = [\"echo\", \"fetch\"]", ""));
    let error = startup_error(plugins).await;
    assert!(error.contains("autoflow:platform/queue") && error.contains("[capabilities] queue"), "{error}");
}

/// The disagreement `edit` makes between notes' code and its manifest is refused at load, with
/// the message naming the manifest and containing `expected`.
async fn refused_when_code_and_manifest_disagree(plugin: &str, edit: impl FnOnce(String) -> String, expected: &str) {
    let plugins = PluginsDir::with(&[plugin]);
    let manifest = plugins.path().join(plugin).join("plugin.toml");
    plugins.edit_manifest(plugin, edit);

    let error = startup_error(plugins).await;

    assert!(
        error.contains(&format!("{}: plugin '{plugin}' code and manifest disagree", manifest.display())),
        "{error}"
    );
    assert!(error.contains(expected), "{error}");
}

#[tokio::test]
async fn a_handler_whose_route_the_manifest_does_not_declare_is_refused_at_load() {
    let undeclared = |text: String| {
        text.replacen(
            "method = \"DELETE\"\npath = \"/api/notes/{id}\"",
            "method = \"DELETE\"\npath = \"/api/notes/{id}/x\"",
            1,
        )
    };
    refused_when_code_and_manifest_disagree(
        "notes",
        undeclared,
        "route DELETE /api/notes/{id} has a handler in its code but plugin.toml does not declare it",
    )
    .await;
}

#[tokio::test]
async fn a_declared_route_without_a_handler_is_refused_at_load() {
    let extra = |text: String| format!("{text}\n[[routes]]\nmethod = \"GET\"\npath = \"/api/notes/export\"\n");
    refused_when_code_and_manifest_disagree(
        "notes",
        extra,
        "route GET /api/notes/export is declared in plugin.toml but its code registers no handler for it",
    )
    .await;
}

#[tokio::test]
async fn a_misnamed_records_collection_is_refused_at_load() {
    refused_when_code_and_manifest_disagree(
        "notes",
        |text| text.replace("notes = \"user\"", "note = \"user\""),
        "records collection `notes` is used by its code but plugin.toml does not grant it",
    )
    .await;
}

#[tokio::test]
async fn a_declared_task_without_a_handler_is_refused_at_load() {
    let renamed = |text: String| text.replace("name = \"send-email\"\n", "name = \"send-mail\"\n");
    let plugins = PluginsDir::with(&["send-email"]);
    plugins.edit_manifest("send-email", |text| {
        // The plugin's own name stays; only the [[tasks]] entry is renamed.
        let (head, tasks) = text.split_once("[[tasks]]").unwrap();
        format!("{head}[[tasks]]{}", renamed(tasks.to_owned()))
    });
    let error = startup_error(plugins).await;
    assert!(
        error.contains("task `send-email` has a handler in its code but plugin.toml does not declare it"),
        "{error}"
    );
    assert!(
        error.contains("task `send-mail` is declared in plugin.toml but its code has no handler for it"),
        "{error}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn local_state_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::TempDir::new().unwrap();
    let data = root.path().join("state");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let app = crate::helpers::spawn_configured(&["hello"], |config| {
        config.data_dir = data.clone();
        config.auth.private_key = None;
        config.encryption_key = None;
    })
    .await;
    assert_eq!(app.greeting("x").await.unwrap(), "Hello, x!");

    let mut seen = Vec::new();
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}: readable by group or others", path.display());
        if path.is_dir() {
            pending.extend(fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        seen.push(path.strip_prefix(&data).unwrap().display().to_string());
    }
    for expected in ["keys", "keys/rsa-private.pem", "keys/rsa-encryption.pem", "cache/components"] {
        assert!(seen.iter().any(|p| p == expected), "{expected} in {seen:?}");
    }
    if crate::helpers::expected_backend() == "sqlite" {
        for expected in ["autoflow.db", "autoflow.db-wal", "autoflow.db-shm"] {
            assert!(seen.iter().any(|p| p == expected), "{expected} in {seen:?}");
        }
    }
}
