//! `plugin.toml` parsed and validated into the plain [`Manifest`]: the one implementation both the
//! host's loader and `cargo xtask build-plugins` run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::{
    Access, Backoff, Capabilities, DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS, MAX_REUSE, Manifest, ManifestLimits, Missed,
    PluginKind, PluginName, Priority, RateLimit, RouteSpec, ScheduleSpec, TaskSpec, Timing, TimingField,
    config_reference, is_schedule_name, is_task_name,
};

/// The file name of a plugin's manifest inside its directory.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// The file name of a plugin's component inside its directory.
pub const COMPONENT_FILE: &str = "plugin.wasm";

/// Path prefixes the host serves itself; no plugin route may start with one.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/health",
    "/admin",
    "/auth",
    "/.well-known",
    "/metrics",
    "/openapi",
    "/openapi.json",
    "/api/tasks",
    "/api/schedules",
    "/console",
];

/// Methods a route may declare.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A route's `access` as written in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AccessLevel {
    Public,
    Authenticated,
    /// The `[access]` table's read permissions (GET, HEAD, OPTIONS) or write permissions (others).
    Permissions,
    /// Only through `{plugin}.autoflow.internal`, from other plugins and the plugin's own tasks.
    Internal,
}

/// The `[access]` table: the seed's read and write permissions, any-of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PermissionTable {
    #[serde(default)]
    read_permissions: Vec<String>,
    #[serde(default)]
    write_permissions: Vec<String>,
}

/// A route's body schema: a JSON object given as JSON text. A file name is what a source
/// manifest holds before `cargo xtask build-plugins` puts the file's JSON in its place.
fn schema(route: &str, key: &str, text: &str) -> Result<serde_json::Value, String> {
    if !text.trim_start().starts_with('{') {
        return Err(format!(
            "route {route}: {key} `{text}` names a file; `cargo xtask build-plugins` puts its JSON into the \
             published manifest (or write the schema here as a JSON object)"
        ));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(schema @ serde_json::Value::Object(_)) => Ok(schema),
        Ok(_) => Err(format!("route {route}: {key} must be a JSON object (a JSON Schema)")),
        Err(error) => Err(format!("route {route}: {key} is not valid JSON: {error}")),
    }
}

/// Methods that only read, guarded by read permissions.
const READ_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRoute {
    method: String,
    path: String,
    #[serde(default)]
    access: Option<AccessLevel>,
    /// A JSON Schema as JSON text (`cargo xtask build-plugins` puts a referenced file's here).
    #[serde(default)]
    request_schema: Option<String>,
    #[serde(default)]
    response_schema: Option<String>,
}

impl RawRoute {
    /// The route with its access resolved: `access` if given, else the `[access]` table's
    /// permissions if there is one, else `authenticated`.
    fn resolve(self, table: Option<&PermissionTable>) -> Result<RouteSpec, String> {
        let method = self.method.to_ascii_uppercase();
        let access = match (self.access, table) {
            (Some(AccessLevel::Public), _) => Access::Public,
            (Some(AccessLevel::Internal), _) => Access::Internal,
            (Some(AccessLevel::Authenticated), _) | (None, None) => Access::Authenticated,
            (Some(AccessLevel::Permissions), None) => {
                return Err(format!(
                    "route {method} {} has access = \"permissions\" but the manifest has no [access] table",
                    self.path
                ));
            }
            (Some(AccessLevel::Permissions) | None, Some(table)) => {
                let (list, key) = if READ_METHODS.contains(&method.as_str()) {
                    (&table.read_permissions, "read-permissions")
                } else {
                    (&table.write_permissions, "write-permissions")
                };
                if list.is_empty() {
                    return Err(format!("route {method} {} needs [access] {key} (or its own access)", self.path));
                }
                Access::AnyOf(list.clone())
            }
        };
        let route = format!("{method} {}", self.path);
        let request_schema =
            self.request_schema.as_deref().map(|text| schema(&route, "request-schema", text)).transpose()?;
        let response_schema =
            self.response_schema.as_deref().map(|text| schema(&route, "response-schema", text)).transpose()?;
        Ok(RouteSpec { method, path: self.path, access, request_schema, response_schema })
    }
}

/// A `[[tasks]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTask {
    name: String,
    #[serde(default)]
    priority: Priority,
    max_attempts: Option<u32>,
    backoff_base_ms: Option<u64>,
    backoff_cap_ms: Option<u64>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    unique: bool,
    concurrency: Option<u32>,
    rate_limit: Option<u32>,
    rate_interval_ms: Option<u64>,
}

impl RawTask {
    fn resolve(self) -> Result<TaskSpec, String> {
        if !is_task_name(&self.name) {
            return Err(format!(
                "task name `{}` must be 1-64 characters of a-z, 0-9 and '-', starting with a letter",
                self.name
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(format!("task {}: max-attempts must be 1-{MAX_ATTEMPTS}", self.name));
        }
        let defaults = Backoff::default();
        let backoff = Backoff {
            base: self.backoff_base_ms.map_or(defaults.base, Duration::from_millis),
            cap: self.backoff_cap_ms.map_or(defaults.cap, Duration::from_millis),
        };
        if backoff.base.is_zero() || backoff.cap < backoff.base {
            return Err(format!("task {}: backoff-base-ms must be above 0 and at most backoff-cap-ms", self.name));
        }
        if self.timeout_ms == Some(0) {
            return Err(format!("task {}: timeout-ms must be greater than zero", self.name));
        }
        if self.concurrency == Some(0) {
            return Err(format!("task {}: concurrency must be at least 1", self.name));
        }
        let rate = match (self.rate_limit, self.rate_interval_ms) {
            (None, None) => None,
            (Some(starts), Some(ms)) if starts > 0 && ms > 0 => {
                Some(RateLimit { starts, per: Duration::from_millis(ms) })
            }
            _ => {
                return Err(format!(
                    "task {}: rate-limit and rate-interval-ms go together, both above 0 (at most rate-limit starts \
                     per rate-interval-ms)",
                    self.name
                ));
            }
        };
        Ok(TaskSpec {
            name: self.name,
            priority: self.priority,
            max_attempts,
            backoff,
            timeout: self.timeout_ms.map(Duration::from_millis),
            unique: self.unique,
            concurrency: self.concurrency,
            rate,
        })
    }
}

/// A `[[schedules]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSchedule {
    name: String,
    task: String,
    cron: Option<String>,
    timezone: Option<String>,
    every_ms: Option<u64>,
    #[serde(default)]
    payload: Option<toml::Value>,
    #[serde(default)]
    missed: Missed,
}

impl RawSchedule {
    /// The schedule, which must start one of `tasks`.
    fn resolve(self, tasks: &[TaskSpec]) -> Result<ScheduleSpec, String> {
        if !is_schedule_name(&self.name) {
            return Err(format!(
                "schedule name `{}` must be 1-64 characters of a-z, 0-9 and '-', starting with a letter",
                self.name
            ));
        }
        if !tasks.iter().any(|task| task.name == self.task) {
            return Err(format!("schedule {}: task `{}` is not one of this plugin's [[tasks]]", self.name, self.task));
        }
        let timing = Timing::parse(self.cron.as_deref(), self.timezone.as_deref(), self.every_ms).map_err(|error| {
            let key = match error.field {
                TimingField::Cron => "cron",
                TimingField::TimeZone => "timezone",
                TimingField::Every => "every-ms",
            };
            format!("schedule {}: {key} {}", self.name, error.message)
        })?;
        let payload = match self.payload {
            None => "null".to_owned(),
            Some(value) => serde_json::to_string(&value)
                .map_err(|error| format!("schedule {}: payload cannot be JSON: {error}", self.name))?,
        };
        Ok(ScheduleSpec { name: self.name, task: self.task, timing, payload, missed: self.missed })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    kind: PluginKind,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    access: Option<PermissionTable>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    tasks: Vec<RawTask>,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
    #[serde(default)]
    limits: ManifestLimits,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

impl Manifest {
    /// Parses and validates a manifest's text; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let name = PluginName::parse(&raw.name)?;
        if raw.version.trim().is_empty() {
            return Err("`version` must not be empty".into());
        }
        match raw.kind {
            PluginKind::Feature if raw.routes.is_empty() => {
                return Err("a feature plugin must declare at least one [[routes]] entry".into());
            }
            PluginKind::Task if raw.tasks.is_empty() => {
                return Err("a task plugin must declare at least one [[tasks]] entry".into());
            }
            PluginKind::Task if !raw.routes.is_empty() => {
                return Err("a task plugin serves no [[routes]]; a feature plugin does".into());
            }
            _ => {}
        }
        let mut tasks: Vec<TaskSpec> = Vec::with_capacity(raw.tasks.len());
        for task in raw.tasks {
            let task = task.resolve()?;
            if tasks.iter().any(|t| t.name == task.name) {
                return Err(format!("task {} is declared twice", task.name));
            }
            tasks.push(task);
        }
        let mut schedules: Vec<ScheduleSpec> = Vec::with_capacity(raw.schedules.len());
        for schedule in raw.schedules {
            let schedule = schedule.resolve(&tasks)?;
            if schedules.iter().any(|s| s.name == schedule.name) {
                return Err(format!("schedule {} is declared twice", schedule.name));
            }
            schedules.push(schedule);
        }
        if let Some(bad) = raw.capabilities.queue.iter().find(|name| !is_task_name(name)) {
            return Err(format!("[capabilities] queue: `{bad}` is not a task name"));
        }
        let mut routes: Vec<RouteSpec> = Vec::with_capacity(raw.routes.len());
        for route in raw.routes {
            let route = route.resolve(raw.access.as_ref())?;
            validate_route(&route)?;
            if routes.iter().any(|r| r.method == route.method && r.path == route.path) {
                return Err(format!("route {} {} is declared twice", route.method, route.path));
            }
            routes.push(route);
        }
        for entry in &raw.capabilities.outbound_hosts {
            if let Some(key) = config_reference(entry).filter(|key| !raw.config.contains_key(*key)) {
                return Err(format!("outbound-hosts entry `{entry}` names `{key}`, which [config] does not declare"));
            }
        }
        if let Some(bad) = raw.capabilities.records.keys().find(|name| !is_plain_key(name)) {
            return Err(format!(
                "[capabilities.records] collection `{bad}` must be 1-64 characters of a-z, 0-9, '_' and '-'"
            ));
        }
        if let Some(reuse) = raw.limits.reuse.filter(|reuse| !(1..=MAX_REUSE).contains(reuse)) {
            return Err(format!("[limits] reuse = {reuse} must be between 1 and {MAX_REUSE}"));
        }
        if raw.limits.reuse.is_some_and(|reuse| reuse > 1) && raw.kind != PluginKind::Feature {
            return Err(
                "[limits] reuse applies to a feature's requests; a task plugin's calls always get a fresh instance"
                    .into(),
            );
        }
        let manifest = Self {
            name,
            version: raw.version,
            kind: raw.kind,
            description: raw.description,
            routes,
            tasks,
            schedules,
            limits: raw.limits,
            capabilities: raw.capabilities,
            config: parse_config(raw.config)?,
        };
        // With the defaults here; the loader checks again with the operator's overrides.
        crate::hosts::outbound_hosts(&manifest, &manifest.config)?;
        Ok(manifest)
    }
}

/// The `[config]` table as strings: keys of `a-z`, `0-9`, `_` and `-`; values strings, numbers or
/// booleans.
fn parse_config(table: BTreeMap<String, toml::Value>) -> Result<BTreeMap<String, String>, String> {
    table
        .into_iter()
        .map(|(key, value)| {
            if !is_plain_key(&key) {
                return Err(format!("[config] key `{key}` must be 1-64 characters of a-z, 0-9, '_' and '-'"));
            }
            let value = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => value.to_string(),
                other => {
                    return Err(format!(
                        "[config] {key} must be a string, number or boolean, not {}",
                        other.type_str()
                    ));
                }
            };
            Ok((key, value))
        })
        .collect()
}

/// Whether `name` is 1-64 characters of `a-z`, `0-9`, `_` and `-` (config keys, collection names).
fn is_plain_key(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn validate_route(route: &RouteSpec) -> Result<(), String> {
    if !METHODS.contains(&route.method.as_str()) {
        return Err(format!("route {}: method `{}` is not one of {}", route.path, route.method, METHODS.join(", ")));
    }
    if !route.path.starts_with('/') {
        return Err(format!("route path `{}` must start with '/'", route.path));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| is_under(&route.path, p)) {
        return Err(format!("route path `{}` is under `{prefix}`, which the host reserves", route.path));
    }
    Ok(())
}

/// Whether `path` is `prefix` itself or below it.
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CollectionScope;

    const VALID: &str = r#"
        name = "hello"
        version = "0.1.0"
        kind = "feature"

        [[routes]]
        method = "get"
        path = "/api/hello/{name}"
        access = "public"
    "#;

    #[test]
    fn parses_a_valid_manifest_and_normalises_methods() {
        let manifest = Manifest::parse(VALID).unwrap();
        assert_eq!(manifest.name.as_str(), "hello");
        assert_eq!(manifest.routes[0].method, "GET");
        assert_eq!(manifest.routes[0].access, Access::Public);
    }

    #[test]
    fn a_feature_may_handle_tasks_and_keep_routes_internal() {
        let text = format!(
            "{VALID}\n[[routes]]\nmethod = \"POST\"\npath = \"/api/hello/refresh\"\naccess = \"internal\"\n\
             [[tasks]]\nname = \"refresh\"\n[[schedules]]\nname = \"nightly\"\ntask = \"refresh\"\ncron = \"0 3 * * *\"\n"
        );
        let manifest = Manifest::parse(&text).unwrap();
        assert_eq!(manifest.kind, PluginKind::Feature);
        assert!(manifest.handles_tasks());
        assert_eq!(manifest.routes[1].access, Access::Internal);
        assert_eq!(manifest.schedules[0].task, "refresh");
    }

    #[test]
    fn instance_reuse_is_a_bounded_opt_in_of_features() {
        assert_eq!(Manifest::parse(VALID).unwrap().limits.reuse, None);
        let warm = Manifest::parse(&format!("{VALID}\n[limits]\nreuse = 128")).unwrap();
        assert_eq!(warm.limits.reuse, Some(128));
        for reuse in [0, MAX_REUSE + 1] {
            let err = Manifest::parse(&format!("{VALID}\n[limits]\nreuse = {reuse}")).unwrap_err();
            assert!(err.contains(&format!("reuse = {reuse}")) && err.contains("between 1 and 10000"), "{err}");
        }
        let task = "name = \"jobs\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"a\"\n[limits]\nreuse = 2";
        assert!(Manifest::parse(task).unwrap_err().contains("fresh instance"));
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = Manifest::parse(&format!("{VALID}\nflavour = \"x\"")).unwrap_err();
        assert!(err.contains("flavour"), "{err}");
    }

    #[test]
    fn body_schemas_are_json_objects_written_inline() {
        let base = "name = \"a\"\nversion = \"1\"\nkind = \"feature\"\n[[routes]]\nmethod = \"POST\"\npath = \"/a\"\n";
        let inline = format!("{base}request-schema = '{{\"type\": \"object\"}}'\n");
        let manifest = Manifest::parse(&inline).unwrap();
        assert_eq!(manifest.routes[0].request_schema, Some(serde_json::json!({ "type": "object" })));
        assert_eq!(manifest.routes[0].response_schema, None);

        let file = Manifest::parse(&format!("{base}response-schema = \"schemas/a.json\"\n")).unwrap_err();
        assert!(file.contains("POST /a: response-schema `schemas/a.json` names a file"), "{file}");
        assert!(file.contains("cargo xtask build-plugins"), "{file}");
        let broken = Manifest::parse(&format!("{base}request-schema = '{{oops'\n")).unwrap_err();
        assert!(broken.contains("request-schema is not valid JSON"), "{broken}");
    }

    #[test]
    fn access_defaults_to_authenticated_or_to_the_access_table() {
        let base = "name = \"a\"\nversion = \"1\"\nkind = \"feature\"\n";
        let routes = "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\n[[routes]]\nmethod = \"DELETE\"\npath = \"/a\"\n";
        let plain = Manifest::parse(&format!("{base}{routes}")).unwrap();
        assert!(plain.routes.iter().all(|r| r.access == Access::Authenticated));

        let table = "[access]\nread-permissions = [\"admin\", \"read:a\"]\nwrite-permissions = [\"admin\"]\n";
        let guarded = Manifest::parse(&format!("{base}{table}{routes}")).unwrap();
        assert_eq!(guarded.routes[0].access, Access::AnyOf(vec!["admin".into(), "read:a".into()]));
        assert_eq!(guarded.routes[1].access, Access::AnyOf(vec!["admin".into()]));

        let read_only = "[access]\nread-permissions = [\"admin\"]\n";
        let err = Manifest::parse(&format!("{base}{read_only}{routes}")).unwrap_err();
        assert!(err.contains("DELETE /a needs [access] write-permissions"), "{err}");
        let err = Manifest::parse(&format!(
            "{base}{}",
            routes.replace("path = \"/a\"\n[[", "path = \"/a\"\naccess = \"permissions\"\n[[")
        ))
        .unwrap_err();
        assert!(err.contains("no [access] table"), "{err}");
        let err = Manifest::parse(&VALID.replace("\"public\"", "\"everyone\"")).unwrap_err();
        assert!(err.contains("everyone"), "{err}");
    }

    #[test]
    fn rejects_bad_names_methods_paths_and_duplicates() {
        for (from, to, expected) in [
            ("\"hello\"", "\"Hello\"", "plugin name"),
            ("\"get\"", "\"FETCH\"", "method `FETCH`"),
            ("\"/api/hello/{name}\"", "\"api\"", "must start with '/'"),
            ("\"/api/hello/{name}\"", "\"/admin/x\"", "reserves"),
            ("\"0.1.0\"", "\" \"", "version"),
        ] {
            let err = Manifest::parse(&VALID.replace(from, to)).unwrap_err();
            assert!(err.contains(expected), "{to}: {err}");
        }
        let twice = format!("{VALID}\n[[routes]]\nmethod = \"GET\"\npath = \"/api/hello/{{name}}\"");
        assert!(Manifest::parse(&twice).unwrap_err().contains("declared twice"));
    }

    #[test]
    fn config_values_become_strings_and_keys_are_checked() {
        let manifest =
            Manifest::parse(&format!("{VALID}\n[config]\ngreeting = \"Hi\"\nretries = 3\nloud = true")).unwrap();
        let config: Vec<(&str, &str)> = manifest.config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(config, [("greeting", "Hi"), ("loud", "true"), ("retries", "3")]);
        let err = Manifest::parse(&format!("{VALID}\n[config]\nGreeting = \"Hi\"")).unwrap_err();
        assert!(err.contains("`Greeting`"), "{err}");
        let err = Manifest::parse(&format!("{VALID}\n[config]\nlist = [1]")).unwrap_err();
        assert!(err.contains("list must be a string"), "{err}");
    }

    #[test]
    fn collections_declare_a_scope_and_a_plain_name() {
        let manifest =
            Manifest::parse(&format!("{VALID}\n[capabilities.records]\nnotes = \"user\"\ntags = \"shared\"")).unwrap();
        let scopes: Vec<_> = manifest.capabilities.records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(scopes, [("notes", CollectionScope::User), ("tags", CollectionScope::Shared)]);
        let err = Manifest::parse(&format!("{VALID}\n[capabilities.records]\nnotes = \"global\"")).unwrap_err();
        assert!(err.contains("global"), "{err}");
        let err = Manifest::parse(&format!("{VALID}\n[capabilities.records]\n\"a/b\" = \"user\"")).unwrap_err();
        assert!(err.contains("collection `a/b`"), "{err}");
    }

    #[test]
    fn literal_outbound_hosts_written_as_urls_are_refused_with_the_fix() {
        let text = format!("{VALID}\n[capabilities]\noutbound-hosts = [\"api.test\", \"http://127.0.0.1:8765/\"]");
        let error = Manifest::parse(&text).unwrap_err();
        assert_eq!(
            error,
            "outbound-hosts entry `http://127.0.0.1:8765/` is not `host` or `host:port`: write `127.0.0.1:8765`"
        );
        let default = format!(
            "{VALID}\n[capabilities]\noutbound-hosts = [\"{{{{ api }}}}\"]\n[config]\napi = \"https://api.test\""
        );
        let error = Manifest::parse(&default).unwrap_err();
        assert!(error.contains("(from setting `api`, AUTOFLOW_PLUGIN_HELLO__API)"), "{error}");
    }

    #[test]
    fn outbound_hosts_may_name_a_declared_setting() {
        let ok = Manifest::parse(&format!(
            "{VALID}\n[capabilities]\noutbound-hosts = [\"a.test\", \"{{{{ hosts }}}}\"]\n[config]\nhosts = \"\""
        ));
        assert!(ok.is_ok(), "{ok:?}");
        let err =
            Manifest::parse(&format!("{VALID}\n[capabilities]\noutbound-hosts = [\"{{{{ hosts }}}}\"]")).unwrap_err();
        assert!(err.contains("`hosts`, which [config] does not declare"), "{err}");
    }

    #[test]
    fn task_plugins_declare_tasks_with_defaults_and_no_routes() {
        let base = "name = \"mailer\"\nversion = \"1\"\nkind = \"task\"\n";
        let task = "[[tasks]]\nname = \"send-email\"\npriority = \"high\"\nmax-attempts = 5\nbackoff-base-ms = 10\n";
        let manifest = Manifest::parse(&format!("{base}{task}")).unwrap();
        let spec = &manifest.tasks[0];
        assert_eq!((spec.name.as_str(), spec.priority, spec.max_attempts), ("send-email", Priority::High, 5));
        assert_eq!(spec.backoff.base, Duration::from_millis(10));

        let limited =
            "[[tasks]]\nname = \"x\"\nconcurrency = 2\nrate-limit = 10\nrate-interval-ms = 1000\nunique = true\n";
        let limited = &Manifest::parse(&format!("{base}{limited}")).unwrap().tasks[0];
        assert_eq!((limited.concurrency, limited.unique), (Some(2), true));
        assert_eq!(limited.rate, Some(RateLimit { starts: 10, per: Duration::from_secs(1) }));

        let plain = Manifest::parse(&format!("{base}[[tasks]]\nname = \"x\"\n")).unwrap();
        assert_eq!((plain.tasks[0].priority, plain.tasks[0].max_attempts), (Priority::Normal, DEFAULT_MAX_ATTEMPTS));
        for (text, expected) in [
            (base.to_owned(), "at least one [[tasks]]"),
            (format!("{base}{task}[[tasks]]\nname = \"send-email\"\n"), "declared twice"),
            (format!("{base}[[tasks]]\nname = \"Bad\"\n"), "task name `Bad`"),
            (format!("{base}[[tasks]]\nname = \"x\"\nmax-attempts = 0\n"), "max-attempts"),
            (format!("{base}[[tasks]]\nname = \"x\"\npriority = \"urgent\"\n"), "urgent"),
            (format!("{base}[[tasks]]\nname = \"x\"\nconcurrency = 0\n"), "concurrency must be at least 1"),
            (format!("{base}[[tasks]]\nname = \"x\"\nrate-limit = 5\n"), "rate-limit and rate-interval-ms go together"),
            (format!("{base}[[tasks]]\nname = \"x\"\nrate-limit = 0\nrate-interval-ms = 10\n"), "both above 0"),
            (format!("{base}{task}[[routes]]\nmethod = \"GET\"\npath = \"/x\"\n"), "no [[routes]]"),
            (format!("{VALID}\n[capabilities]\nqueue = [\"Nope\"]"), "`Nope` is not a task name"),
        ] {
            let err = Manifest::parse(&text).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn task_plugins_declare_schedules_for_their_own_tasks() {
        let base = "name = \"reports\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"daily-report\"\n";
        let daily = "[[schedules]]\nname = \"daily\"\ntask = \"daily-report\"\ncron = \"0 9 * * *\"\n\
                     timezone = \"Europe/Paris\"\npayload = { kind = \"summary\" }\nmissed = \"skip\"\n";
        let manifest = Manifest::parse(&format!("{base}{daily}")).unwrap();
        let schedule = &manifest.schedules[0];
        assert_eq!((schedule.name.as_str(), schedule.task.as_str()), ("daily", "daily-report"));
        assert_eq!((schedule.timing.zone(), schedule.missed), (Some("Europe/Paris"), Missed::Skip));
        assert_eq!(schedule.payload, r#"{"kind":"summary"}"#);
        let every =
            Manifest::parse(&format!("{base}[[schedules]]\nname = \"s\"\ntask = \"daily-report\"\nevery-ms = 5000\n"));
        assert_eq!(every.unwrap().schedules[0].timing, Timing::Every(Duration::from_secs(5)));

        let entry = |body: &str| format!("{base}[[schedules]]\nname = \"s\"\ntask = \"daily-report\"\n{body}");
        for (text, expected) in [
            (entry("cron = \"every day\"\n"), "schedule s: cron `every day` is not a cron expression"),
            (entry("cron = \"* * * * *\"\ntimezone = \"Mars/Base\"\n"), "schedule s: timezone `Mars/Base`"),
            (entry("every-ms = 0\n"), "schedule s: every-ms must be"),
            (entry(""), "give a cron expression or an interval"),
            (
                format!("{base}[[schedules]]\nname = \"s\"\ntask = \"other\"\nevery-ms = 1000\n"),
                "not one of this plugin's",
            ),
            (format!("{base}{daily}{daily}"), "schedule daily is declared twice"),
        ] {
            let err = Manifest::parse(&text).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn a_feature_needs_routes() {
        let err = Manifest::parse("name = \"a\"\nversion = \"1\"\nkind = \"feature\"").unwrap_err();
        assert!(err.contains("at least one"), "{err}");
    }

    #[test]
    fn publishing_uses_the_file_names_the_loader_reads() {
        let dir = tempfile::TempDir::new().unwrap();
        crate::publish::publish(dir.path(), "hello", b"m", b"c").unwrap();
        assert_eq!(std::fs::read(dir.path().join("hello").join(MANIFEST_FILE)).unwrap(), b"m");
        assert_eq!(std::fs::read(dir.path().join("hello").join(COMPONENT_FILE)).unwrap(), b"c");
    }

    #[test]
    fn reserved_prefixes_match_whole_segments() {
        assert!(is_under("/health", "/health"));
        assert!(is_under("/admin/plugins", "/admin"));
        assert!(!is_under("/healthy", "/health"));
    }
}
