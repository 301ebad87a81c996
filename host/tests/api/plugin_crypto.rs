//! The crypto capability as plugins use it (through `test-crypto`): sealing bound to plugin,
//! context and key; RSA-OAEP with a client-side encryption; password hashing; the grant.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{PluginsDir, TestApp, encrypt_to, error_of, spawn_app_with, spawn_configured, try_spawn};

async fn operate(app: &TestApp, operation: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(&format!("/api/test-crypto/{operation}"))).json(&body).send().await.unwrap()
}

/// The decoded `data` of a successful operation.
async fn data(app: &TestApp, operation: &str, body: Value) -> Vec<u8> {
    let response = operate(app, operation, body).await;
    assert_eq!(response.status(), 200, "{operation}");
    let body: Value = response.json().await.unwrap();
    BASE64.decode(body["data"].as_str().unwrap()).unwrap()
}

fn fixed_data_key() -> SecretString {
    SecretString::from(BASE64.encode([7u8; 32]))
}

#[tokio::test]
async fn sealed_values_open_only_in_the_same_plugin_context_and_key() {
    let app = spawn_configured(&["test-crypto"], |config| config.data_key = Some(fixed_data_key())).await;
    let secret = b"database password: hunter2";

    let sealed = data(&app, "seal", json!({ "data": BASE64.encode(secret), "context": "secret/1" })).await;
    assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "no plaintext in the sealed value");
    let opened = data(&app, "open", json!({ "data": BASE64.encode(&sealed), "context": "secret/1" })).await;
    assert_eq!(opened, secret);

    let mut tampered = sealed.clone();
    tampered[20] ^= 1;
    for (what, sealed, context) in [("another context", &sealed, "secret/2"), ("tampered", &tampered, "secret/1")] {
        let (status, error) =
            error_of(operate(&app, "open", json!({ "data": BASE64.encode(sealed), "context": context })).await).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "{what}");
    }

    // The same key in another plugin, and the same plugin under another key, cannot open it.
    let renamed = PluginsDir::new();
    renamed.publish_built("test-crypto", "test-crypto-b");
    let other_plugin = try_spawn(renamed, |config| config.data_key = Some(fixed_data_key())).await.ok().unwrap();
    let other_key = spawn_app_with(&["test-crypto"]).await;
    for app in [&other_plugin, &other_key] {
        let response = operate(app, "open", json!({ "data": BASE64.encode(&sealed), "context": "secret/1" })).await;
        assert_eq!(response.status(), 400);
    }
}

#[tokio::test]
async fn a_client_encrypts_to_the_public_key_and_the_plugin_decrypts() {
    let app = spawn_app_with(&["test-crypto"]).await;
    let key: Value = app.get("/api/test-crypto/public-key").await.json().await.unwrap();
    let (pem, label) = (key["publicKey"].as_str().unwrap(), key["label"].as_str().unwrap());
    assert_eq!(label, "autoflow:plugin:test-crypto");
    let ciphertext = encrypt_to(pem, label, b"api key 123");

    let decrypted = data(&app, "rsa-decrypt", json!({ "data": BASE64.encode(&ciphertext) })).await;
    assert_eq!(decrypted, b"api key 123");
    let round_trip = data(&app, "rsa-encrypt", json!({ "data": BASE64.encode(b"x") })).await;
    assert_eq!(data(&app, "rsa-decrypt", json!({ "data": BASE64.encode(&round_trip) })).await, b"x");

    for garbage in [BASE64.encode(b"not made with the host key"), BASE64.encode(vec![1u8; 256])] {
        let (status, error) = error_of(operate(&app, "rsa-decrypt", json!({ "data": garbage })).await).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid")));
    }
    let (status, _) = error_of(operate(&app, "rsa-decrypt", json!({ "data": "%%% not base64" })).await).await;
    assert_eq!(status, 400);
    let (status, _) =
        error_of(operate(&app, "rsa-encrypt", json!({ "data": BASE64.encode(vec![0u8; 300]) })).await).await;
    assert_eq!(status, 400, "too long for RSA-OAEP");
}

#[tokio::test]
async fn passwords_hash_and_verify_and_an_empty_one_is_refused() {
    let app = spawn_app_with(&["test-crypto"]).await;

    let hash =
        String::from_utf8(data(&app, "hash-password", json!({ "data": BASE64.encode("s3cret pass") })).await).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    for (password, expected) in [("s3cret pass", true), ("wrong", false)] {
        let body = json!({ "data": BASE64.encode(password), "hash": hash });
        let result: Value = operate(&app, "verify-password", body).await.json().await.unwrap();
        assert_eq!(result["matches"], expected, "{password}");
    }
    let (status, error) = error_of(operate(&app, "hash-password", json!({ "data": "" })).await).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")));
}

#[tokio::test]
async fn values_sealed_into_records_hold_no_plaintext_in_the_database() {
    let app = spawn_app_with(&["test-crypto"]).await;
    let (_, token) = app.user_with_token("vault@example.com", &[]).await;

    let put = app.request_as(reqwest::Method::PUT, "/api/test-crypto/vault/api-key", &token);
    assert_eq!(put.body("sk-live-plaintext-42").send().await.unwrap().status(), 204);
    let read = app.request_as(reqwest::Method::GET, "/api/test-crypto/vault/api-key", &token).send().await.unwrap();
    assert_eq!(read.text().await.unwrap(), "sk-live-plaintext-42");

    let stored = app.column("SELECT CAST(data AS TEXT) FROM records").await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("sealed") && !stored[0].contains("plaintext"), "{stored:?}");
}

#[tokio::test]
async fn the_key_lent_to_plugins_is_not_the_token_signing_key_and_a_ciphertext_opens_only_where_it_was_meant() {
    let app = spawn_app_with(&["test-crypto", "secrets"]).await;
    let key: Value = app.get("/api/test-crypto/public-key").await.json().await.unwrap();
    let pem = key["publicKey"].as_str().unwrap();
    let signing = autoflow_host::services::keys::RsaKeys::from_pem(crate::helpers::test_key().clone(), "test").unwrap();
    assert_ne!(pem, signing.public_pem(), "plugins get an encryption key of their own");
    let secrets_key: Value = app.get("/api/crypto/public-key").await.json().await.unwrap();
    assert_eq!(secrets_key["publicKey"], pem, "one encryption key, told apart by label");

    // What a client encrypted for the secrets plugin does not open in another plugin granted crypto.
    let for_secrets = encrypt_to(pem, secrets_key["label"].as_str().unwrap(), b"meant for secrets");
    let (status, error) =
        error_of(operate(&app, "rsa-decrypt", json!({ "data": BASE64.encode(&for_secrets) })).await).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")), "{error}");
    let unlabelled = encrypt_to(pem, "", b"no label");
    let (status, _) = error_of(operate(&app, "rsa-decrypt", json!({ "data": BASE64.encode(&unlabelled) })).await).await;
    assert_eq!(status, 400, "a ciphertext without this plugin's label does not open either");
    // Nor does a ciphertext made with the token-signing key, the key plugins used to be lent.
    let to_signing_key = encrypt_to(signing.public_pem(), key["label"].as_str().unwrap(), b"old key");
    let (status, _) =
        error_of(operate(&app, "rsa-decrypt", json!({ "data": BASE64.encode(&to_signing_key) })).await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_host_whose_encryption_key_is_its_signing_key_refuses_to_start() {
    let result = try_spawn(PluginsDir::with(&["test-crypto"]), |config| {
        config.encryption_key = Some(autoflow_host::config::KeySource::Pem(crate::helpers::test_key().clone()));
    })
    .await;
    let error = result.err().map(|(error, _)| error.to_string()).expect("the host started");
    assert!(error.contains("also a token-signing key"), "{error}");
}
