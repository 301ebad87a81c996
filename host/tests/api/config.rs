//! Plugin settings: the manifest's `[config]` values, overridden by the operator.

use crate::helpers::{PluginsDir, spawn_configured, startup_error};

#[tokio::test]
async fn a_plugin_reads_its_manifest_setting_unless_the_operator_overrides_it() {
    let default = spawn_configured(&["hello"], |_| {}).await;
    let overridden = spawn_configured(&["hello"], |config| {
        config.plugin_overrides.insert("AUTOFLOW_PLUGIN_HELLO__GREETING".into(), "Servus".into());
        config.plugin_overrides.insert("AUTOFLOW_PLUGIN_OTHER__GREETING".into(), "Not mine".into());
    })
    .await;

    assert_eq!(default.greeting("x").await.as_deref(), Ok("Hello, x!"));
    assert_eq!(overridden.greeting("x").await.as_deref(), Ok("Servus, x!"));
}

#[tokio::test]
async fn a_malformed_config_table_is_refused_at_load() {
    let plugins = PluginsDir::with(&["hello"]);
    plugins.edit_manifest("hello", |text| text.replace("greeting = \"Hello\"", "Greeting = [\"Hello\"]"));

    let error = startup_error(plugins).await;

    assert!(error.contains("hello/plugin.toml") && error.contains("[config] key `Greeting`"), "{error}");
}
