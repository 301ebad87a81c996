//! The users REST API (the seed's UsersService handler) over the host's identity service:
//!
//! - `GET /api/users?limit=&cursor=` → `{"items": [...], "nextCursor": …}` (limit 1-100, default 20)
//! - `GET /api/users/{id}`
//! - `POST /api/users` `{"email", "password", "displayName"?, "permissions"?}` → `201` + `Location`,
//!   and a welcome email scheduled as a `send-email` task
//! - `PATCH /api/users/{id}` `{"email"?, "displayName"?, "permissions"?, "disabled"?, "password"?}`
//! - `DELETE /api/users/{id}` → `204`
//!
//! Access comes from `plugin.toml`; validation (email format, password policy) from the host,
//! which names every bad field. Responses never carry a password hash: the host never sends one.

use autoflow_sdk::identity::{self, NewUser, UserPatch};
use autoflow_sdk::{Error, Request, Response, Result, Router, log, queue};
use serde::Deserialize;

/// Page size when the client names none.
const DEFAULT_LIMIT: u32 = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateUser {
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateUser {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

fn list(req: &Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(raw) => raw.parse().map_err(|_| Error::invalid_field("limit", "must be a whole number from 1 to 100"))?,
        None => DEFAULT_LIMIT,
    };
    Response::json(&identity::list_users(limit, req.query("cursor"))?)
}

fn get(req: &Request) -> Result<Response> {
    Response::json(&identity::get_user(req.param("id")?)?)
}

fn create(req: &Request) -> Result<Response> {
    let body: CreateUser = req.json()?;
    let user = identity::create_user(NewUser {
        email: body.email,
        display_name: body.display_name,
        password: body.password,
        permissions: body.permissions,
    })?;
    welcome(&user.email, &user.display_name);
    Response::created(format!("/api/users/{}", user.id), &user)
}

/// Schedules the welcome email; the user exists either way, so a failure is only logged.
fn welcome(email: &str, name: &str) {
    let message = serde_json::json!({
        "to": email,
        "subject": "Welcome to Autoflow",
        "body": format!("Hello {name}, your account is ready."),
    });
    if let Err(error) = queue::enqueue("send-email", &message, queue::Options::default()) {
        log::event(log::LogLevel::Warn, "welcome email not scheduled", &[("error", &error.to_string())]);
    }
}

fn update(req: &Request) -> Result<Response> {
    let id = req.param("id")?;
    let body: UpdateUser = req.json()?;
    let patch = UserPatch {
        email: body.email,
        display_name: body.display_name,
        permissions: body.permissions,
        disabled: body.disabled,
        password: body.password,
    };
    Response::json(&identity::update_user(id, patch)?)
}

fn delete(req: &Request) -> Result<Response> {
    identity::delete_user(req.param("id")?)?;
    Ok(Response::empty(204))
}

autoflow_sdk::feature!(
    Router::new()
        .get("/api/users", list)
        .post("/api/users", create)
        .get("/api/users/{id}", get)
        .patch("/api/users/{id}", update)
        .delete("/api/users/{id}", delete)
);
