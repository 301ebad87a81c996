//! The crypto capability over HTTP, for the host's tests. `POST /api/test-crypto/{operation}` with
//! `{"data": base64, "context"?: string, "hash"?: string}` → `{"data": base64}` or `{"matches": bool}`;
//! operations: seal, open, rsa-encrypt, rsa-decrypt, hash-password, verify-password.
//! `GET /api/test-crypto/public-key` → the PEM.
//! `PUT|GET /api/test-crypto/vault/{id}`: the caller's value, sealed in a `user` collection.

use autoflow_sdk::records::Collection;
use autoflow_sdk::{Error, Request, Response, Result, Router, crypto};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
struct Input {
    data: String,
    #[serde(default)]
    context: String,
    #[serde(default)]
    hash: String,
}

fn operate(req: &Request) -> Result<Response> {
    let input: Input = req.json()?;
    let data = BASE64.decode(&input.data).map_err(|_| Error::invalid_field("data", "is not base64"))?;
    let text = || String::from_utf8(data.clone()).map_err(|_| Error::invalid_field("data", "is not UTF-8"));
    let output = match req.param("operation")? {
        "seal" => crypto::seal(&data, &input.context)?,
        "open" => crypto::open(&data, &input.context)?,
        "rsa-encrypt" => crypto::rsa_encrypt(&data)?,
        "rsa-decrypt" => crypto::rsa_decrypt(&data)?,
        "hash-password" => crypto::hash_password(&text()?)?.into_bytes(),
        "verify-password" => {
            return Response::json(&json!({ "matches": crypto::verify_password(&text()?, &input.hash)? }));
        }
        other => return Err(Error::not_found(format!("no operation `{other}`"))),
    };
    Response::json(&json!({ "data": BASE64.encode(&output) }))
}

/// A value as stored: sealed, base64.
#[derive(Serialize, Deserialize)]
struct Sealed {
    sealed: String,
}

const VAULT: Collection<Sealed> = Collection::new("vault");
const VAULT_CONTEXT: &str = "vault";

fn put_sealed(req: &Request) -> Result<Response> {
    let sealed = Sealed { sealed: BASE64.encode(crypto::seal(req.body(), VAULT_CONTEXT)?) };
    let id = req.param("id")?;
    match VAULT.get(id)? {
        Some(_) => VAULT.update(id, &sealed, None)?,
        None => VAULT.create_with_id(id, &sealed)?,
    };
    Ok(Response::empty(204))
}

fn get_sealed(req: &Request) -> Result<Response> {
    let stored = VAULT.require(req.param("id")?)?;
    let sealed = BASE64.decode(&stored.data.sealed).map_err(|e| Error::internal(format!("stored value: {e}")))?;
    Ok(Response::new(200, crypto::open(&sealed, VAULT_CONTEXT)?))
}

fn public_key(_: &Request) -> Result<Response> {
    Response::json(&serde_json::json!({ "publicKey": crypto::public_key(), "label": crypto::rsa_label() }))
}

autoflow_sdk::feature!(
    Router::new()
        .collection(&VAULT)
        .post("/api/test-crypto/{operation}", operate)
        .get("/api/test-crypto/public-key", public_key)
        .put("/api/test-crypto/vault/{id}", put_sealed)
        .get("/api/test-crypto/vault/{id}", get_sealed)
);
