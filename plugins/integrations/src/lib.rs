//! Each user's connections to external services (the seed's IntegrationsService):
//!
//! - `GET /api/integrations?limit=&cursor=`, `GET /api/integrations/{id}`
//! - `POST /api/integrations` `{"kind", "name", "baseUrl", "settings"?, "secretId"?}` → `201`
//! - `PATCH /api/integrations/{id}`: a JSON merge patch of the same fields (`"secretId": null`
//!   drops the credential)
//! - `DELETE /api/integrations/{id}` → `204`
//! - `POST /api/integrations/{id}/test` → `{"reachable", "status", "latencyMs"}` from `GET baseUrl`,
//!   sent with the credential as a bearer token; `403` naming a host the operator does not allow,
//!   `502` when it cannot be reached, `504` when it does not answer within `test-timeout-ms`
//!
//! The credential is a reference to one of the caller's secrets, read from the `secrets` plugin
//! as the same user when needed and never stored here. Outbound requests may go only to the hosts
//! the operator lists in `AUTOFLOW_PLUGIN_INTEGRATIONS__ALLOWED_HOSTS`.

use std::time::{Duration, Instant};

use autoflow_sdk::http::{self, HttpRequest};
use autoflow_sdk::records::Collection;
use autoflow_sdk::{Error, Request, Response, Result, Router, Validation, config};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const INTEGRATIONS: Collection<Integration> = Collection::new("integrations");
const DEFAULT_LIMIT: u32 = 20;
const MAX_SETTINGS_BYTES: usize = 16 * 1024;

/// A connection as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Integration {
    kind: String,
    name: String,
    base_url: String,
    #[serde(default)]
    settings: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_id: Option<String>,
}

/// What a secret looks like from the `secrets` plugin's API.
#[derive(Deserialize)]
struct Secret {
    value: String,
}

/// Checks each field present in `fields`; `required` ones must be present. Unknown fields and
/// `null` for anything but `secretId` are refused.
fn validate(fields: &Map<String, Value>, required: bool) -> Result<()> {
    let mut problems = Validation::new();
    for name in ["kind", "name", "baseUrl"] {
        if required && !fields.contains_key(name) {
            problems.add(name, "is required");
        }
    }
    for (field, value) in fields {
        match (field.as_str(), value) {
            ("kind", Value::String(kind)) => problems.check(
                (1..=50).contains(&kind.len())
                    && kind.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "kind",
                "must be 1-50 characters of a-z, 0-9 and '-', e.g. openai",
            ),
            ("name", Value::String(name)) => {
                problems.check((1..=100).contains(&name.trim().chars().count()), "name", "must be 1-100 characters")
            }
            ("baseUrl", Value::String(url)) => problems.check(is_base_url(url), "baseUrl", "must be an http(s):// URL"),
            ("settings", Value::Object(settings)) => problems.check(
                Value::Object(settings.clone()).to_string().len() <= MAX_SETTINGS_BYTES,
                "settings",
                format!("must be at most {MAX_SETTINGS_BYTES} bytes of JSON"),
            ),
            ("secretId", Value::Null) if !required => {}
            ("secretId", Value::String(id)) => match secret(id) {
                Ok(Some(_)) => {}
                Ok(None) => problems.add("secretId", "is not one of your secrets"),
                Err(error) => return Err(error),
            },
            ("kind" | "name" | "baseUrl" | "secretId", _) => problems.add(field.as_str(), "must be a string"),
            ("settings", _) => problems.add("settings", "must be an object"),
            (other, _) => problems.add(other, "is not a field of an integration"),
        }
    }
    problems.finish("the integration is not valid")
}

fn is_base_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let authority = rest.split('/').next().unwrap_or_default();
        !authority.is_empty() && url.len() <= 2048 && !url.contains(char::is_whitespace)
    })
}

/// The caller's secret `id`, from the `secrets` plugin; `None` if it is not theirs.
fn secret(id: &str) -> Result<Option<Secret>> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Ok(None);
    }
    http::internal_get("secrets", &format!("/api/secrets/{id}"))
}

fn body(req: &Request) -> Result<Map<String, Value>> {
    req.json()
}

fn list(req: &Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(raw) => raw.parse().map_err(|_| Error::invalid_field("limit", "must be a whole number from 1 to 100"))?,
        None => DEFAULT_LIMIT,
    };
    Response::json(&INTEGRATIONS.list(limit, req.query("cursor"))?)
}

fn get(req: &Request) -> Result<Response> {
    Response::json(&INTEGRATIONS.require(req.param("id")?)?)
}

fn create(req: &Request) -> Result<Response> {
    let mut fields = body(req)?;
    validate(&fields, true)?;
    if let Some(Value::String(name)) = fields.get_mut("name") {
        *name = name.trim().to_owned();
    }
    let integration: Integration =
        serde_json::from_value(Value::Object(fields)).map_err(|e| Error::invalid(e.to_string()))?;
    let created = INTEGRATIONS.create(&integration)?;
    Response::created(format!("/api/integrations/{}", created.id), &created)
}

fn update(req: &Request) -> Result<Response> {
    let id = req.param("id")?;
    let mut patch = body(req)?;
    validate(&patch, false)?;
    if let Some(Value::String(name)) = patch.get_mut("name") {
        *name = name.trim().to_owned();
    }
    Response::json(&INTEGRATIONS.update(id, &patch, None)?)
}

fn delete(req: &Request) -> Result<Response> {
    INTEGRATIONS.delete(req.param("id")?)?;
    Ok(Response::empty(204))
}

/// Calls the service once and reports how it answered.
fn test(req: &Request) -> Result<Response> {
    let integration = INTEGRATIONS.require(req.param("id")?)?.data;
    let timeout = Duration::from_millis(config::parse("test-timeout-ms")?);
    let mut request = HttpRequest::get(&integration.base_url).timeout(timeout);
    if let Some(secret_id) = &integration.secret_id {
        let secret = secret(secret_id)?.ok_or_else(|| Error::conflict("the integration's secret no longer exists"))?;
        request = request.header("authorization", &format!("Bearer {}", secret.value));
    }
    let started = Instant::now();
    let outcome = request.send();
    let latency_ms = started.elapsed().as_millis() as u64;
    Ok(match outcome {
        Ok(response) => Response::json(&json!({
            "reachable": true,
            "status": response.status,
            "latencyMs": latency_ms,
        }))?,
        Err(error) => error.gateway_response(),
    })
}

autoflow_sdk::feature!(
    Router::new()
        .collection(&INTEGRATIONS)
        .get("/api/integrations", list)
        .post("/api/integrations", create)
        .get("/api/integrations/{id}", get)
        .patch("/api/integrations/{id}", update)
        .delete("/api/integrations/{id}", delete)
        .post("/api/integrations/{id}/test", test)
);
