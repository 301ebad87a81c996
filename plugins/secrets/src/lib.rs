//! Each user's secrets (the seed's SecretsService): values are sealed with the host's data key
//! before they are stored and opened only to show them to their owner.
//!
//! - `GET /api/secrets?limit=&cursor=` → names and metadata, never values
//! - `POST /api/secrets` `{"name", "description"?, "value" | "encryptedValue"}` → `201` + `Location`
//! - `GET /api/secrets/{id}` → the secret with its `value`
//! - `PATCH /api/secrets/{id}` `{"name"?, "description"?, "value"? | "encryptedValue"?}`
//! - `DELETE /api/secrets/{id}` → `204`
//! - `GET /api/crypto/public-key` → the PEM a client encrypts `encryptedValue` to (RSA-OAEP with
//!   SHA-256, then base64), so the plain value never crosses the network
//!
//! The `secrets` collection is per user, so another user's id is not found. Values are sealed
//! with the owner's id as context: a sealed value copied to another user's record does not open.

use autoflow_sdk::records::{Collection, Record};
use autoflow_sdk::{Error, Request, Response, Result, Router, Validation, config, crypto};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::json;

const SECRETS: Collection<StoredSecret> = Collection::new("secrets");
const DEFAULT_LIMIT: u32 = 20;
const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A secret as stored: its value sealed, base64.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSecret {
    name: String,
    description: String,
    sealed: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewSecret {
    name: String,
    #[serde(default)]
    description: String,
    value: Option<String>,
    encrypted_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretPatch {
    name: Option<String>,
    description: Option<String>,
    value: Option<String>,
    encrypted_value: Option<String>,
}

/// The merge patch sent to the store.
#[derive(Serialize)]
struct StoredPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
}

fn check_name(problems: &mut Validation, name: &str) {
    let chars = name.trim().chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        problems.add("name", format!("must be 1-{MAX_NAME_CHARS} characters"));
    }
}

fn check_description(problems: &mut Validation, description: &str) {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        problems.add("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
}

/// The plain value from `value` or `encryptedValue` (exactly one when `required`).
fn plain_value(
    problems: &mut Validation,
    value: Option<String>,
    encrypted: Option<String>,
    required: bool,
) -> Result<Option<String>> {
    let max: usize = config::parse("max-value-bytes")?;
    let value = match (value, encrypted) {
        (Some(_), Some(_)) => {
            problems.add("value", "give either value or encryptedValue, not both");
            return Ok(None);
        }
        (None, None) if required => {
            problems.add("value", "is required (or encryptedValue)");
            return Ok(None);
        }
        (None, None) => return Ok(None),
        (Some(value), None) => value,
        (None, Some(encrypted)) => match decrypt(&encrypted) {
            Ok(value) => value,
            Err(message) => {
                problems.add("encryptedValue", message);
                return Ok(None);
            }
        },
    };
    if value.is_empty() || value.len() > max {
        problems.add("value", format!("must be 1-{max} bytes"));
        return Ok(None);
    }
    Ok(Some(value))
}

/// Opens a client's RSA-OAEP ciphertext; the message says what is wrong with it.
fn decrypt(encrypted: &str) -> std::result::Result<String, String> {
    let ciphertext = BASE64.decode(encrypted.trim()).map_err(|_| "is not base64".to_owned())?;
    let plain = crypto::rsa_decrypt(&ciphertext).map_err(|_| {
        "cannot be decrypted: encrypt to GET /api/crypto/public-key (its publicKey and label) with RSA-OAEP and SHA-256"
            .to_owned()
    })?;
    String::from_utf8(plain).map_err(|_| "does not decrypt to UTF-8 text".to_owned())
}

/// The seal context: the owner, so a sealed value opens for them only.
fn context(req: &Request) -> Result<String> {
    let principal = req.principal().ok_or_else(|| Error::unauthorized("sign in to use secrets"))?;
    Ok(format!("secret/{}", principal.user_id))
}

fn seal(req: &Request, value: &str) -> Result<String> {
    Ok(BASE64.encode(crypto::seal(value.as_bytes(), &context(req)?)?))
}

fn open(req: &Request, secret: &Record<StoredSecret>) -> Result<String> {
    let sealed = BASE64.decode(&secret.data.sealed).map_err(|_| Error::internal("a stored secret is not base64"))?;
    let plain = crypto::open(&sealed, &context(req)?).map_err(|_| Error::internal("a stored secret does not open"))?;
    String::from_utf8(plain).map_err(|_| Error::internal("a stored secret is not UTF-8"))
}

/// A secret as the API shows it; the value only when asked for one secret.
fn view(secret: &Record<StoredSecret>, value: Option<String>) -> serde_json::Value {
    let mut view = json!({
        "id": secret.id,
        "name": secret.data.name,
        "description": secret.data.description,
        "version": secret.version,
        "createdAt": secret.created_at,
        "updatedAt": secret.updated_at,
    });
    if let Some(value) = value {
        view["value"] = value.into();
    }
    view
}

fn list(req: &Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(raw) => raw.parse().map_err(|_| Error::invalid_field("limit", "must be a whole number from 1 to 100"))?,
        None => DEFAULT_LIMIT,
    };
    let page = SECRETS.list(limit, req.query("cursor"))?;
    let items: Vec<_> = page.items.iter().map(|secret| view(secret, None)).collect();
    Response::json(&json!({ "items": items, "nextCursor": page.next_cursor }))
}

fn get(req: &Request) -> Result<Response> {
    let secret = SECRETS.require(req.param("id")?)?;
    let value = open(req, &secret)?;
    Response::json(&view(&secret, Some(value)))
}

fn create(req: &Request) -> Result<Response> {
    let new: NewSecret = req.json()?;
    let mut problems = Validation::new();
    check_name(&mut problems, &new.name);
    check_description(&mut problems, &new.description);
    let value = plain_value(&mut problems, new.value, new.encrypted_value, true)?;
    problems.finish("the secret is not valid")?;
    let value = value.unwrap_or_default();
    let stored =
        StoredSecret { name: new.name.trim().to_owned(), description: new.description, sealed: seal(req, &value)? };
    let secret = SECRETS.create(&stored)?;
    Response::created(format!("/api/secrets/{}", secret.id), &view(&secret, None))
}

fn update(req: &Request) -> Result<Response> {
    let id = req.param("id")?;
    let patch: SecretPatch = req.json()?;
    let mut problems = Validation::new();
    if let Some(name) = &patch.name {
        check_name(&mut problems, name);
    }
    if let Some(description) = &patch.description {
        check_description(&mut problems, description);
    }
    let value = plain_value(&mut problems, patch.value, patch.encrypted_value, false)?;
    problems.finish("the secret is not valid")?;
    let stored = StoredPatch {
        name: patch.name.map(|name| name.trim().to_owned()),
        description: patch.description,
        sealed: value.map(|value| seal(req, &value)).transpose()?,
    };
    let secret = SECRETS.update(id, &stored, None)?;
    Response::json(&view(&secret, None))
}

fn delete(req: &Request) -> Result<Response> {
    SECRETS.delete(req.param("id")?)?;
    Ok(Response::empty(204))
}

fn public_key(_: &Request) -> Result<Response> {
    Response::json(&json!({
        "publicKey": crypto::public_key(),
        "algorithm": "RSA-OAEP-256",
        "label": crypto::rsa_label(),
        "encoding": "base64",
    }))
}

autoflow_sdk::feature!(
    Router::new()
        .collection(&SECRETS)
        .get("/api/secrets", list)
        .post("/api/secrets", create)
        .get("/api/secrets/{id}", get)
        .patch("/api/secrets/{id}", update)
        .delete("/api/secrets/{id}", delete)
        .get("/api/crypto/public-key", public_key)
);
