//! `GET /openapi.json`: an OpenAPI 3.1 document of the host's own endpoints and of every loaded
//! plugin's routes as their manifests declare them (method, path parameters, access as security
//! requirements, the platform's error shape), built from the live registry on each request, so it
//! changes with every reload. `GET /openapi` renders it with a page and script embedded in the
//! binary: nothing is fetched from anywhere else.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::AppState;
use super::assets::Asset;
use crate::plugins::Registry;
use crate::spec::{Access, Manifest, RouteSpec};

/// The rendered page: markup, script and style, served from the binary.
const PAGE: Asset = Asset::Html(include_str!("openapi/page.html"));
const SCRIPT: Asset = Asset::Script(include_str!("openapi/page.js"));
const STYLE: Asset = Asset::Style(include_str!("openapi/page.css"));

pub async fn document(State(state): State<AppState>) -> Json<Value> {
    Json(build(&state.plugins.registry()))
}

pub async fn page() -> Asset {
    PAGE
}

pub async fn script() -> Asset {
    SCRIPT
}

pub async fn style() -> Asset {
    STYLE
}

/// Who may call a host endpoint.
#[derive(Clone, Copy)]
enum HostAccess {
    Public,
    Signed,
    Admin,
}

/// One of the host's own operations.
struct HostOperation {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: HostAccess,
    /// The request body's schema, if the operation takes JSON.
    body: Option<fn() -> Value>,
    /// The status of a successful answer.
    success: u16,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: HostAccess,
) -> HostOperation {
    HostOperation { method, path, tag, summary, access, body: None, success: 200 }
}

const fn with_body(mut operation: HostOperation, body: fn() -> Value, success: u16) -> HostOperation {
    operation.body = Some(body);
    operation.success = success;
    operation
}

const fn answering(mut operation: HostOperation, success: u16) -> HostOperation {
    operation.success = success;
    operation
}

use HostAccess::{Admin, Public, Signed};

/// Every endpoint the host serves itself (the tests check each one is routed).
const HOST_OPERATIONS: &[HostOperation] = &[
    op("get", "/health", "health", "The host is up and its database answers", Public),
    op("get", "/health/live", "health", "The process answers (liveness)", Public),
    op(
        "get",
        "/health/ready",
        "health",
        "Ready for traffic: database, Redis, plugins, not draining (readiness)",
        Public,
    ),
    op("get", "/metrics", "health", "Prometheus metrics (text format 0.0.4)", Admin),
    op("get", "/openapi.json", "health", "This document", Public),
    op("get", "/.well-known/jwks.json", "auth", "The public keys that verify access tokens", Public),
    with_body(
        op("post", "/auth/login", "auth", "Sign in: a bearer token and a session cookie", Public),
        login_body,
        200,
    ),
    answering(op("post", "/auth/logout", "auth", "Sign out: the token is revoked", Signed), 204),
    op("get", "/auth/me", "auth", "The signed-in user", Signed),
    op("get", "/admin/plugins", "admin", "Every plugin: build, routes, status, last failed reload", Admin),
    op("get", "/admin/plugins/{name}", "admin", "One plugin", Admin),
    op("put", "/admin/plugins/{name}", "admin", "Upload a build (multipart: manifest, component) to every host", Admin),
    answering(op("delete", "/admin/plugins/{name}", "admin", "Delete an uploaded build everywhere", Admin), 204),
    op("post", "/admin/plugins/{name}/reload", "admin", "Reload a plugin from the plugins directory", Admin),
    op("get", "/admin/stats", "admin", "Records cache and degraded cache counts of this host", Admin),
    op("get", "/api/tasks", "tasks", "Tasks: yours, or everyone's for admin (filters, cursor pages)", Signed),
    with_body(op("post", "/api/tasks", "tasks", "Schedule a task (write:tasks)", Signed), task_body, 201),
    with_body(
        op("post", "/api/tasks/batch", "tasks", "Schedule up to 1000 tasks, all or none", Signed),
        batch_body,
        201,
    ),
    op("get", "/api/tasks/stats", "tasks", "Counts by status and name; queue depth per priority", Admin),
    op("get", "/api/tasks/throughput", "tasks", "Tasks completed and dead per minute, last hour", Admin),
    op("get", "/api/tasks/paused", "tasks", "Task names workers do not claim", Admin),
    op("put", "/api/tasks/paused/{name}", "tasks", "Pause a task name on every host", Admin),
    op("delete", "/api/tasks/paused/{name}", "tasks", "Resume a task name", Admin),
    op("get", "/api/tasks/{id}", "tasks", "A task with every attempt", Signed),
    op("delete", "/api/tasks/{id}", "tasks", "Cancel a waiting or running task", Signed),
    op("post", "/api/tasks/{id}/retry", "tasks", "Run a dead task again", Signed),
    op("get", "/api/schedules", "schedules", "Schedules: yours, or every one for admin", Signed),
    with_body(
        op("post", "/api/schedules", "schedules", "Create a schedule (write:schedules)", Signed),
        schedule_body,
        201,
    ),
    op("get", "/api/schedules/{name}", "schedules", "One schedule with its next run", Signed),
    answering(op("delete", "/api/schedules/{name}", "schedules", "Delete a schedule", Signed), 204),
    op("post", "/api/schedules/{name}/pause", "schedules", "Pause a schedule", Signed),
    op("post", "/api/schedules/{name}/resume", "schedules", "Resume a schedule from its next tick", Signed),
];

/// The declared path of the host endpoint `path` reaches (`/api/tasks/{id}`), if it is one.
pub fn host_route(path: &str) -> Option<&'static str> {
    static ROUTES: OnceLock<matchit::Router<&'static str>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let mut routes = matchit::Router::new();
        for operation in HOST_OPERATIONS {
            // The same path under several methods is inserted once.
            let _ = routes.insert(operation.path, operation.path);
        }
        routes
    });
    routes.at(path).ok().map(|found| *found.value)
}

/// The document for the plugins in `registry`.
pub fn build(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for operation in HOST_OPERATIONS {
        let item = host_operation(operation);
        insert(&mut paths, operation.path, operation.method, item);
    }
    let mut tags = vec![
        json!({ "name": "health", "description": "Health, metrics and this document" }),
        json!({ "name": "auth", "description": "Signing in and out" }),
        json!({ "name": "admin", "description": "Operating the plugin set" }),
        json!({ "name": "tasks", "description": "Background tasks" }),
        json!({ "name": "schedules", "description": "Repeatable tasks" }),
    ];
    for plugin in registry.plugins() {
        let manifest = &plugin.manifest;
        let description = manifest.description.clone().unwrap_or_default();
        let version = &manifest.version;
        tags.push(json!({ "name": tag_of(manifest), "description": format!("{description} (plugin {} {version})", manifest.name) }));
        // Internal routes are not part of the API: only other plugins reach them.
        for route in manifest.routes.iter().filter(|route| route.access != Access::Internal) {
            let (path, item) = plugin_operation(manifest, route);
            insert(&mut paths, &path, &route.method.to_ascii_lowercase(), item);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Autoflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The host's endpoints and the routes of every plugin loaded now. Errors always have the \
                shape {\"error\": {\"code\", \"message\", \"fields\"?}}.",
        },
        "tags": tags,
        "paths": paths,
        "components": components(),
    })
}

fn insert(paths: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    let item = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
    item[method] = operation;
}

fn host_operation(operation: &HostOperation) -> Value {
    let mut responses = Map::new();
    let success = operation.success.to_string();
    let described = if operation.success == 204 {
        json!({ "description": "Done" })
    } else {
        json!({ "description": "Success", "content": { "application/json": { "schema": { "type": "object" } } } })
    };
    responses.insert(success, described);
    let security = match operation.access {
        HostAccess::Public => json!([]),
        HostAccess::Signed => signed_in(),
        HostAccess::Admin => json!([{ "bearer": [] }, { "cookie": [] }]),
    };
    if !matches!(operation.access, HostAccess::Public) {
        responses.insert("401".into(), error_ref("Unauthorized"));
        responses.insert("403".into(), error_ref("Forbidden"));
    }
    if operation.body.is_some() {
        responses.insert("400".into(), error_ref("Invalid"));
    }
    let mut value = json!({
        "tags": [operation.tag],
        "summary": operation.summary,
        "operationId": operation_id(operation.method, operation.path),
        "security": security,
        "responses": responses,
    });
    let parameters = path_parameters(operation.path);
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = operation.body {
        value["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body() } } });
    }
    if matches!(operation.access, HostAccess::Admin) {
        value["description"] = json!("Needs the `admin` permission (or the operator's admin token).");
    }
    value
}

/// A plugin route: its OpenAPI path (a trailing `{*rest}` becomes `{rest}`) and operation.
fn plugin_operation(manifest: &Manifest, route: &RouteSpec) -> (String, Value) {
    let path = route.path.replace("{*", "{");
    let mut responses = Map::new();
    let mut answered = json!({ "description": format!("Answered by plugin '{}'", manifest.name) });
    if let Some(schema) = &route.response_schema {
        answered["content"] = json!({ "application/json": { "schema": schema } });
    }
    responses.insert("2XX".into(), answered);
    let security = match &route.access {
        Access::Public | Access::Internal => json!([]),
        Access::Authenticated | Access::AnyOf(_) => {
            responses.insert("401".into(), error_ref("Unauthorized"));
            signed_in()
        }
    };
    let mut description = String::new();
    if let Access::AnyOf(permissions) = &route.access {
        responses.insert("403".into(), error_ref("Forbidden"));
        description = format!("Needs one of the permissions: {}.", permissions.join(", "));
    }
    for (status, name) in [
        ("404", "NotFound"),
        ("500", "PluginFailed"),
        ("502", "BadPluginResponse"),
        ("503", "PluginBusy"),
        ("504", "PluginTimeout"),
    ] {
        responses.insert(status.into(), error_ref(name));
    }
    responses.insert("4XX".into(), error_ref("Error"));
    let mut value = json!({
        "tags": [tag_of(manifest)],
        "summary": format!("{} {}", route.method, route.path),
        "operationId": format!("{}_{}", manifest.name, operation_id(&route.method, &path)),
        "security": security,
        "responses": responses,
        "x-autoflow-plugin": manifest.name.as_str(),
        "x-autoflow-access": route.access.keyword(),
    });
    if !description.is_empty() {
        value["description"] = json!(description);
    }
    if let Access::AnyOf(permissions) = &route.access {
        value["x-autoflow-permissions"] = json!(permissions);
    }
    let parameters = path_parameters(&path);
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(schema) = &route.request_schema {
        value["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    } else if !matches!(route.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        value["requestBody"] = json!({ "content": { "application/json": { "schema": {} } } });
    }
    (path, value)
}

fn tag_of(manifest: &Manifest) -> String {
    format!("plugin:{}", manifest.name)
}

/// A signed-in caller: a bearer token or the session cookie.
fn signed_in() -> Value {
    json!([{ "bearer": [] }, { "cookie": [] }])
}

/// The `{param}` segments of `path` as required string path parameters.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

/// An operation id from method and path: `get_api_notes_id`.
fn operation_id(method: &str, path: &str) -> String {
    let words = path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|word| !word.is_empty());
    std::iter::once(method.to_ascii_lowercase()).chain(words.map(str::to_owned)).collect::<Vec<_>>().join("_")
}

fn error_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// The platform's error responses and the security schemes.
fn components() -> Value {
    let error = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    json!({
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "description": "snake_case, e.g. not_found, invalid, plugin_timeout" },
                            "message": { "type": "string" },
                            "fields": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Why each field at fault was refused" },
                        },
                    },
                },
            },
        },
        "responses": {
            "Error": error("An error the route or its plugin answered"),
            "Invalid": error("invalid: input failing validation, with the reason per field"),
            "Unauthorized": error("unauthorized: no credentials, or credentials refused (with WWW-Authenticate)"),
            "Forbidden": error("forbidden: signed in, but lacking the permission"),
            "NotFound": error("not_found"),
            "PluginFailed": error("plugin_failed (trapped) or plugin_memory_exceeded"),
            "BadPluginResponse": error("bad_plugin_response: the plugin answered something HTTP cannot carry"),
            "PluginBusy": error("plugin_busy: every instance slot stayed taken (with Retry-After)"),
            "PluginTimeout": error("plugin_timeout: the plugin ran past its deadline"),
        },
        "securitySchemes": {
            "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            "cookie": { "type": "apiKey", "in": "cookie", "name": super::SESSION_COOKIE },
        },
    })
}

fn login_body() -> Value {
    json!({
        "type": "object",
        "required": ["email", "password"],
        "properties": { "email": { "type": "string" }, "password": { "type": "string" } },
        "additionalProperties": false,
    })
}

fn task_body() -> Value {
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": { "type": "string" },
            "payload": {},
            "priority": { "enum": ["critical", "high", "normal", "low"] },
            "delayMs": { "type": "integer", "minimum": 0 },
            "maxAttempts": { "type": "integer", "minimum": 1 },
            "correlationId": { "type": "string" },
            "uniqueKey": { "type": "string" },
        },
        "additionalProperties": false,
    })
}

fn batch_body() -> Value {
    json!({
        "type": "object",
        "required": ["tasks"],
        "properties": { "tasks": { "type": "array", "minItems": 1, "maxItems": 1000, "items": task_body() } },
        "additionalProperties": false,
    })
}

fn schedule_body() -> Value {
    json!({
        "type": "object",
        "required": ["name", "task"],
        "properties": {
            "name": { "type": "string" },
            "task": { "type": "string" },
            "cron": { "type": "string" },
            "timezone": { "type": "string" },
            "everyMs": { "type": "integer", "minimum": 1000 },
            "payload": {},
            "missed": { "enum": ["run-once", "skip"] },
        },
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_and_parameters_come_from_the_path() {
        assert_eq!(operation_id("GET", "/api/notes/{id}"), "get_api_notes_id");
        let parameters = path_parameters("/api/notes/{id}/tags/{tag}");
        let names: Vec<_> = parameters.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["id", "tag"]);
    }

    #[test]
    fn every_host_operation_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for operation in HOST_OPERATIONS {
            assert!(seen.insert((operation.method, operation.path)), "{} {}", operation.method, operation.path);
        }
    }
}
