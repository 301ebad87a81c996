//! What a plugin declares, as plain data: its name, kind, routes, tasks, schedules, limits and
//! capabilities; [`manifest`] fills these from `plugin.toml`, and [`publish`] lays a build out
//! where a host loads it.
//!
//! The host's loader and `cargo xtask build-plugins` both depend on this crate, so a manifest the
//! build accepts is one the host accepts. Nothing here knows the host's settings: the host's
//! ceilings are applied to a manifest in one place, when a plugin loads.

pub mod description;
pub mod grants;
pub mod hosts;
pub mod manifest;
pub mod publish;
mod schedules;
mod tasks;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

pub use schedules::{Missed, ScheduleSpec, Timing, TimingField, is_schedule_name};
pub use tasks::{Backoff, DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS, Priority, RateLimit, TaskSpec, is_task_name};

/// A plugin's validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: PluginName,
    pub version: String,
    pub kind: PluginKind,
    pub description: Option<String>,
    pub routes: Vec<RouteSpec>,
    /// The tasks a task plugin handles.
    pub tasks: Vec<TaskSpec>,
    /// The schedules a task plugin declares for its tasks.
    pub schedules: Vec<ScheduleSpec>,
    pub limits: ManifestLimits,
    pub capabilities: Capabilities,
    /// The `[config]` table: setting name → default value, in key order.
    pub config: BTreeMap<String, String>,
}

/// What a plugin may use beyond handling its requests. Anything not granted here is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// Hosts outbound HTTP may reach: `host` (any port) or `host:port`, or `{{ key }}` for the
    /// comma-separated hosts in the `[config]` setting `key`, which the operator may override.
    /// Empty: no outbound HTTP.
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    /// Manage users through `autoflow:platform/identity` (for trusted plugins such as `users`).
    #[serde(default)]
    pub identity: bool,
    /// Use the host cache through `autoflow:platform/cache` (keys namespaced by plugin and user).
    #[serde(default)]
    pub cache: bool,
    /// Encrypt with the host's keys through `autoflow:platform/crypto` (keys never reach the plugin).
    #[serde(default)]
    pub crypto: bool,
    /// Collections of JSON documents through `autoflow:platform/records`, by name, with their scope.
    #[serde(default)]
    pub records: BTreeMap<String, CollectionScope>,
    /// Task names it may schedule through `autoflow:platform/queue`.
    #[serde(default)]
    pub queue: Vec<String>,
}

/// Whose documents a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CollectionScope {
    /// One set for every user (the seed's "shared" data).
    Shared,
    /// One set per user, the caller's (the seed's "standard" data).
    User,
}

/// Limits a plugin asks for; each defaults to, and may not exceed, the host's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManifestLimits {
    /// Linear memory per instance, in MiB.
    pub memory_mb: Option<usize>,
    /// Longest one call may run, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Instances of this plugin running at once.
    pub max_concurrency: Option<u32>,
    /// Requests one instance may serve in sequence, for one caller at a time (1: a fresh instance
    /// for every request). Opting in promises the plugin keeps no per-request state in globals.
    pub reuse: Option<u32>,
}

/// Most requests one warm instance may serve.
pub const MAX_REUSE: u32 = 10_000;

/// A plugin name: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginName(String);

impl PluginName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = (1..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!("plugin name `{name}` must be 1-63 characters of a-z, 0-9 and '-', starting with a letter"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a plugin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Serves HTTP routes through the `handler` export; may also run tasks of its own (declared
    /// under `[[tasks]]`) through `task-handler`, which then reach its records directly.
    Feature,
    /// Runs background tasks through the `task-handler` export, and serves no routes.
    Task,
}

/// Who may call a route, in the seed's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a valid token still reaches the plugin as the principal.
    Public,
    /// Any authenticated user.
    #[default]
    Authenticated,
    /// An authenticated user holding at least one of these permissions.
    AnyOf(Vec<String>),
    /// Only other plugins (and the plugin's own tasks), through `{plugin}.autoflow.internal`, for
    /// whichever user the calling request or task acts for; from outside the route does not exist.
    Internal,
}

impl Access {
    /// The manifest's word for it (`access = "…"`): `public`, `authenticated`, `permissions` (the
    /// `[access]` table's) or `internal`.
    pub fn keyword(&self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Authenticated => "authenticated",
            Access::AnyOf(_) => "permissions",
            Access::Internal => "internal",
        }
    }
}

impl Manifest {
    /// Whether the plugin handles tasks (a task plugin, or a feature declaring `[[tasks]]`).
    pub fn handles_tasks(&self) -> bool {
        !self.tasks.is_empty()
    }
}

/// One route a feature serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path pattern with `{param}` segments (and optionally a trailing `{*rest}`).
    pub path: String,
    pub access: Access,
    /// JSON Schema of the request body, for the API document.
    pub request_schema: Option<serde_json::Value>,
    /// JSON Schema of a successful response's body, for the API document.
    pub response_schema: Option<serde_json::Value>,
}

/// The limits one plugin's calls run under: its manifest's, within the host's ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Longest one call may run.
    pub timeout: Duration,
    /// Instances of the plugin running at once.
    pub max_concurrency: u32,
    /// Requests one instance serves before it is dropped (1: a fresh instance per request).
    pub reuse: u32,
}

/// The prefix of every plugin settings override variable (`AUTOFLOW_PLUGIN_<NAME>__<KEY>`).
pub const PLUGIN_OVERRIDE_PREFIX: &str = "AUTOFLOW_PLUGIN_";

/// The environment variable overriding setting `key` of plugin `plugin`.
pub fn override_variable(plugin: &str, key: &str) -> String {
    let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
    format!("{PLUGIN_OVERRIDE_PREFIX}{}__{}", upper(plugin), upper(key))
}

/// The setting an outbound-hosts entry `{{ key }}` refers to, if it is such a reference.
pub fn config_reference(entry: &str) -> Option<&str> {
    entry.trim().strip_prefix("{{")?.strip_suffix("}}").map(str::trim)
}
