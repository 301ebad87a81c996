//! Authentication end to end: login, the token and the cookie, logout, the JWKS, every way a
//! token can be refused, rate limits, and route access from manifests.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use autoflow_host::config::KeySource;
use autoflow_host::services::identity::UserPatch;
use autoflow_host::services::keys::RsaKeys;

use autoflow_host::services::identity::NewUser;
use autoflow_host::startup::Application;

use crate::helpers::{
    PASSWORD, PluginsDir, TestApp, TestDatabase, error_of, spawn_app, spawn_app_with, spawn_configured, test_config,
    test_key,
};

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.request_as(Method::GET, "/auth/me", token).send().await.unwrap()
}

#[tokio::test]
async fn login_gives_a_token_and_a_session_cookie_that_both_authenticate() {
    let app = spawn_app().await;
    let user = app.create_user("Ada@Example.com", &["read:users"]).await;

    let response = app.login("ada@example.COM", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    assert!(!text.contains("argon2") && !text.contains("assword"), "no hash or password in {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["user"]["id"], user.id.as_str());
    assert_eq!(body["user"]["email"], "Ada@Example.com");
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let lifetime = expires_at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((3500..=3600).contains(&lifetime), "token lifetime {lifetime}s");
    for attribute in ["autoflow_session=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600", "Secure"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }

    let by_bearer: Value = me(&app, body["token"].as_str().unwrap()).await.json().await.unwrap();
    let session = cookie.split(';').next().unwrap();
    let by_cookie = app.client.get(app.url("/auth/me")).header("cookie", session).send().await.unwrap();
    assert_eq!(by_cookie.status(), 200);
    let by_cookie: Value = by_cookie.json().await.unwrap();
    assert_eq!(by_bearer, by_cookie);
    assert_eq!(by_bearer["id"], user.id.as_str());
    assert_eq!(by_bearer["permissions"], json!(["read:users"]));
}

#[tokio::test]
async fn missing_credentials_get_401_with_a_bearer_challenge() {
    let app = spawn_app().await;

    let response = app.get("/auth/me").await;
    assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="autoflow""#);
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].as_str()), (401, Some("unauthorized")));

    let basic = app.client.get(app.url("/auth/me")).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_eq!(basic.status(), 401);
    assert!(basic.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer_in_similar_time() {
    let app = spawn_app().await;
    app.create_user("known@example.com", &[]).await;

    let mut wrong_times = Vec::new();
    let mut unknown_times = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..3 {
        for (email, times) in [("known@example.com", &mut wrong_times), ("nobody@example.com", &mut unknown_times)] {
            let started = Instant::now();
            let response = app.login(email, "not the password at all").await;
            times.push(started.elapsed());
            answers.push(error_of(response).await);
        }
    }

    assert!(answers.iter().all(|answer| answer == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0].1["message"], "invalid email or password");
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[1]
    };
    let (wrong, unknown) = (median(&mut wrong_times), median(&mut unknown_times));
    // Without the dummy hash an unknown email answers in about a millisecond; with it, in about
    // the time of a real password check.
    assert!(unknown * 3 > wrong, "unknown email took {unknown:?}, wrong password {wrong:?}");
}

#[tokio::test]
async fn malformed_login_requests_are_400_with_a_json_error() {
    let app = spawn_app().await;
    let post = |body: &'static str| {
        app.client.post(app.url("/auth/login")).header("content-type", "application/json").body(body).send()
    };
    for body in ["{", r#"{"email": "a@b.co"}"#, r#"{"email": "a@b.co", "password": "x", "admin": true}"#, "[]"] {
        let (status, error) = error_of(post(body).await.unwrap()).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("bad_request")), "{body}");
    }
    let wrong_method = app.get("/auth/login").await;
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
}

#[tokio::test]
async fn logout_revokes_the_token_and_clears_the_cookie() {
    let app = spawn_app().await;
    let (_, first) = app.user_with_token("leaving@example.com", &[]).await;
    let (_, second) = app.user_with_token("staying@example.com", &[]).await;

    let response = app.request_as(Method::POST, "/auth/logout", &first).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("autoflow_session=;") && cleared.contains("Max-Age=0"), "{cleared}");

    let (status, error) = error_of(me(&app, &first).await).await;
    assert_eq!(status, 401);
    assert!(error["message"].as_str().unwrap().contains("revoked"), "{error}");
    assert_eq!(me(&app, &second).await.status(), 200, "other sessions stay valid");
    assert_eq!(app.client.post(app.url("/auth/logout")).send().await.unwrap().status(), 401);
}

async fn token_of(app_url: &str, email: &str) -> String {
    let body = json!({ "email": email, "password": PASSWORD });
    let response = reqwest::Client::new().post(format!("{app_url}/auth/login")).json(&body).send().await.unwrap();
    response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn me_at(app_url: &str, token: &str) -> u16 {
    let response = reqwest::Client::new().get(format!("{app_url}/auth/me")).bearer_auth(token).send().await.unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn a_logout_reaches_every_host_of_the_deployment_and_a_host_whose_cache_never_saw_it() {
    let (database, data, plugins) =
        (TestDatabase::create().await, tempfile::TempDir::new().unwrap(), PluginsDir::with(&["hello"]));
    let deployment = format!("test-{}", uuid::Uuid::new_v4().simple());
    let config = |namespace: &str| {
        let mut config = test_config(plugins.path(), data.path(), &database);
        config.cache_namespace = namespace.to_owned();
        config
    };
    let start = |config| async {
        let app = Application::build(config).await?;
        let (url, auth) = (format!("http://{}", app.local_addr()), app.auth().clone());
        Ok::<_, autoflow_host::startup::StartupError>((
            url,
            auth,
            tokio::spawn(app.run_until_stopped(std::future::pending())),
        ))
    };
    let (first, auth, first_host) = start(config(&deployment)).await.unwrap();
    let new = NewUser {
        email: "leaver@example.com".into(),
        display_name: None,
        password: PASSWORD.into(),
        permissions: vec![],
    };
    auth.identity.create(new).await.unwrap();
    let (kept, revoked) = (token_of(&first, "leaver@example.com").await, token_of(&first, "leaver@example.com").await);
    let logout = || reqwest::Client::new().post(format!("{first}/auth/logout")).bearer_auth(&revoked).send();

    if crate::helpers::redis_url().is_some() {
        // A second host of the deployment, running before the logout and already serving the token.
        let (second, _, second_host) = start(config(&deployment)).await.unwrap();
        assert_eq!(me_at(&second, &revoked).await, 200);
        assert_eq!(logout().await.unwrap().status(), 204);
        assert_eq!(me_at(&second, &revoked).await, 401, "the other host learns of the logout at once");
        assert_eq!(me_at(&second, &kept).await, 200);
        second_host.abort();
        let _ = second_host.await;
    } else {
        // Without Redis a host could not learn of another's logouts, so a second one is refused.
        let refused = Application::build(config(&deployment)).await.err().expect("a second host without Redis started");
        assert!(refused.to_string().contains("set REDIS_URL"), "{refused}");
        assert_eq!(logout().await.unwrap().status(), 204);
    }
    assert_eq!(me_at(&first, &revoked).await, 401);
    first_host.abort();
    let _ = first_host.await;

    // A host whose cache is as empty as one that restarted (a fresh namespace) still refuses it.
    let fresh = format!("test-{}", uuid::Uuid::new_v4().simple());
    let (third, _, third_host) = start(config(&fresh)).await.unwrap();
    assert_eq!(me_at(&third, &revoked).await, 401, "the revocation is not only in a cache");
    assert_eq!(me_at(&third, &kept).await, 200);
    third_host.abort();
}

#[tokio::test]
async fn while_redis_is_down_a_revoked_token_is_still_refused() {
    let Some(url) = crate::helpers::needs_redis() else { return };
    let (proxy, redis) = crate::proxy::FaultProxy::for_redis(&url).await;
    let app = spawn_configured(&["hello"], move |config| config.redis_url = Some(redis.into())).await;
    let (_, kept) = app.user_with_token("leaver@example.com", &[]).await;
    let revoked = app.login("leaver@example.com", PASSWORD).await.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.request_as(Method::POST, "/auth/logout", &revoked).send().await.unwrap().status(), 204);

    proxy.cut().await;
    assert_eq!(me(&app, &revoked).await.status(), 401, "the database answers while Redis cannot");
    assert_eq!(me(&app, &kept).await.status(), 200);
}

#[tokio::test]
async fn a_disabled_user_loses_access_at_once_and_cannot_log_in() {
    let app = spawn_app().await;
    let (user, token) = app.user_with_token("suspended@example.com", &[]).await;
    assert_eq!(me(&app, &token).await.status(), 200);

    let disable = UserPatch { disabled: Some(true), ..UserPatch::default() };
    app.auth.identity.update(&user.id, disable).await.unwrap();

    let (status, error) = error_of(me(&app, &token).await).await;
    assert_eq!(status, 401);
    assert!(error["message"].as_str().unwrap().contains("disabled"), "{error}");
    let (status, error) = error_of(app.login("suspended@example.com", PASSWORD).await).await;
    assert_eq!((status, error["message"].as_str()), (401, Some("invalid email or password")));
}

#[tokio::test]
async fn a_password_change_ends_every_session_issued_before_it() {
    let app = spawn_app_with(&["users"]).await;
    let (_, admin) = app.user_with_token("admin@example.com", &["admin"]).await;
    let (user, first) = app.user_with_token("walker@example.com", &[]).await;
    let second = app.login("walker@example.com", PASSWORD).await.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/users/{}", user.id);
    let patch = |body: Value| app.request_as(Method::PATCH, &path, &admin).json(&body).send();

    assert_eq!(patch(json!({ "displayName": "Walker" })).await.unwrap().status(), 200);
    assert_eq!(me(&app, &first).await.status(), 200, "other changes leave sessions alone");

    assert_eq!(patch(json!({ "password": "a brand new password" })).await.unwrap().status(), 200);
    for token in [&first, &second] {
        let (status, error) = error_of(me(&app, token).await).await;
        assert_eq!(status, 401);
        assert!(error["message"].as_str().unwrap().contains("password changed"), "{error}");
    }
    assert_eq!(me(&app, &admin).await.status(), 200, "other users keep their sessions");
    let fresh = app.login("walker@example.com", "a brand new password").await;
    assert_eq!(fresh.status(), 200);
    let fresh = fresh.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &fresh).await.status(), 200, "a sign-in after the change works at once");
}

/// Claims for hand-made tokens: valid unless a test changes them.
fn claims(sub: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": sub, "permissions": ["admin"], "iat": now, "exp": now + 600,
        "iss": "autoflow", "aud": "autoflow", "jti": uuid::Uuid::now_v7().to_string(),
    })
}

fn sign(claims: &Value, kid: &str, pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()).unwrap()
}

fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", part(header), part(claims))
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused() {
    let app = spawn_app().await;
    let user = app.create_user("target@example.com", &["admin"]).await;
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let ours = test_key().expose_secret().to_owned();
    let foreign_dir = tempfile::TempDir::new().unwrap();
    let foreign = RsaKeys::load(&KeySource::Generated(foreign_dir.path().to_owned())).unwrap();
    let foreign = foreign.private_pem().expose_secret().to_owned();
    let public_pem = RsaKeys::from_pem(test_key().clone(), "test").unwrap().public_pem().to_owned();
    let now = chrono::Utc::now().timestamp();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims(&user.id);
        change(&mut claims);
        claims
    };

    // The control: a token made the same way with nothing wrong is accepted.
    let valid = sign(&claims(&user.id), &kid, &ours);
    assert_eq!(me(&app, &valid).await.status(), 200, "the hand-made control token must work");

    let mut tampered: Vec<&str> = valid.split('.').collect();
    let elevated = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(&|c| c["sub"] = json!("someone-else"))).unwrap());
    tampered[1] = &elevated;
    let hs256 = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims(&user.id), &EncodingKey::from_secret(public_pem.as_bytes())).unwrap()
    };
    let attacks = [
        ("expired", sign(&with(&|c| c["exp"] = json!(now - 120)), &kid, &ours), "expired"),
        ("not yet valid", sign(&with(&|c| c["nbf"] = json!(now + 600)), &kid, &ours), "not valid yet"),
        ("issued in the future", sign(&with(&|c| c["iat"] = json!(now + 600)), &kid, &ours), "not valid yet"),
        ("wrong issuer", sign(&with(&|c| c["iss"] = json!("evil")), &kid, &ours), "issuer"),
        ("wrong audience", sign(&with(&|c| c["aud"] = json!("other-app")), &kid, &ours), "audience"),
        ("missing expiry", sign(&with(&|c| c.as_object_mut().unwrap().clear()), &kid, &ours), "claims"),
        ("tampered payload", tampered.join("."), "signature"),
        ("foreign key with our kid", sign(&claims(&user.id), &kid, &foreign), "signature"),
        ("alg none", unsigned(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &claims(&user.id)), "RS256"),
        ("HS256 keyed with the public key", hs256, "RS256"),
        ("garbage", "not.a.jwt".to_owned(), "invalid"),
    ];
    for (attack, token, reason) in attacks {
        let response = me(&app, &token).await;
        let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let (status, error) = error_of(response).await;
        assert_eq!(status, 401, "{attack} must be refused");
        assert!(error["message"].as_str().unwrap().contains(reason), "{attack}: {error}");
        assert!(challenge.unwrap_or_default().contains("invalid_token"), "{attack}");
    }
}

#[tokio::test]
async fn after_a_key_rotation_tokens_signed_with_the_retired_key_still_work() {
    let keys = tempfile::TempDir::new().unwrap();
    let old_file = keys.path().join("old.pem");
    std::fs::write(&old_file, test_key().expose_secret()).unwrap();
    let old = RsaKeys::from_pem(test_key().clone(), "test").unwrap();
    let new = RsaKeys::load(&KeySource::Generated(keys.path().join("new"))).unwrap();
    let new_pem = new.private_pem().clone();
    let app = spawn_configured(&["hello"], move |config| {
        config.auth.private_key = Some(KeySource::Pem(new_pem));
        config.auth.retired_keys = vec![old_file];
    })
    .await;
    let (user, fresh) = app.user_with_token("rotated@example.com", &[]).await;

    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new.kid(), old.kid()], "the signing key, then the retired one");
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new.kid()),
        "new tokens use the new key"
    );

    let from_before = sign(&claims(&user.id), old.kid(), test_key().expose_secret());
    assert_eq!(me(&app, &from_before).await.status(), 200, "a token from before the rotation");
    let unrelated_dir = tempfile::TempDir::new().unwrap();
    let unrelated = RsaKeys::load(&KeySource::Generated(unrelated_dir.path().to_owned())).unwrap();
    let forged = sign(&claims(&user.id), unrelated.kid(), unrelated.private_pem().expose_secret());
    assert_eq!(me(&app, &forged).await.status(), 401, "a key that was never the host's");
}

#[tokio::test]
async fn the_jwks_verifies_issued_tokens() {
    let app = spawn_app().await;
    let (user, token) = app.user_with_token("jwks@example.com", &[]).await;

    let response = app.get("/.well-known/jwks.json").await;
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let jwks: Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&["autoflow"]);
    let verified = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
    assert_eq!(verified.claims["sub"], user.id.as_str());
    for claim in ["iat", "exp", "iss", "aud", "jti", "permissions"] {
        assert!(verified.claims.get(claim).is_some(), "claim {claim} missing");
    }
}

#[tokio::test]
async fn login_brute_force_hits_the_rate_limit_per_email_and_per_address() {
    let app = spawn_configured(&["hello"], |config| {
        config.auth.login_limit.per_email = 3;
        config.auth.login_limit.per_address = 6;
    })
    .await;
    app.create_user("victim@example.com", &[]).await;

    for _ in 0..3 {
        assert_eq!(app.login("victim@example.com", "guess-guess-guess").await.status(), 401);
    }
    let limited = app.login("Victim@example.com", PASSWORD).await;
    assert_eq!(limited.status(), 429, "even the right password is refused once the limit is reached");
    assert_eq!(limited.headers()["retry-after"], "900");
    let (_, error) = error_of(limited).await;
    assert_eq!(error["code"], "rate_limited");

    // The address has made 4 attempts; 2 more are allowed for other emails, then none.
    assert_eq!(app.login("other1@example.com", "guess-guess-guess").await.status(), 401);
    assert_eq!(app.login("other2@example.com", "guess-guess-guess").await.status(), 401);
    assert_eq!(app.login("other3@example.com", "guess-guess-guess").await.status(), 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_address_limit_counts_the_forwarded_client() {
    async fn login_via(app: &TestApp, forwarded_for: &str) -> u16 {
        let body = json!({ "email": "nobody@example.com", "password": "guess-guess-guess" });
        let request = app.client.post(app.url("/auth/login")).header("x-forwarded-for", forwarded_for).json(&body);
        request.send().await.unwrap().status().as_u16()
    }
    let limit_of_two = |config: &mut autoflow_host::config::Config| {
        config.auth.login_limit.per_email = 100;
        config.auth.login_limit.per_address = 2;
    };

    let behind_proxy = spawn_configured(&["hello"], |config| {
        limit_of_two(config);
        config.auth.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    // The left entry is the client's own claim; the proxy (the peer) vouches for the right one.
    for _ in 0..2 {
        assert_eq!(login_via(&behind_proxy, "198.51.100.1, 203.0.113.1").await, 401);
    }
    assert_eq!(login_via(&behind_proxy, "198.51.100.2, 203.0.113.1").await, 429, "the same client");
    assert_eq!(login_via(&behind_proxy, "198.51.100.1, 203.0.113.2").await, 401, "another client, same proxy");

    let direct = spawn_configured(&["hello"], limit_of_two).await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(login_via(&direct, client).await, 401);
    }
    assert_eq!(login_via(&direct, "203.0.113.3").await, 429, "without trusted proxies the header is ignored");
}

#[tokio::test]
async fn a_public_route_sees_the_caller_when_a_valid_token_comes_along() {
    let app = spawn_app().await;
    let (user, token) = app.user_with_token("echo@example.com", &[]).await;
    let echo = |token: Option<&str>| {
        let request = app.client.post(app.url("/api/echo")).json(&json!({}));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };

    let as_user: Value = echo(Some(&token)).await.unwrap().json().await.unwrap();
    assert_eq!(as_user["userId"], user.id.as_str());
    let anonymous: Value = echo(None).await.unwrap().json().await.unwrap();
    assert_eq!(anonymous["userId"], Value::Null);
    let bad = echo(Some("garbage")).await.unwrap();
    assert_eq!(bad.status(), 200, "a public route ignores credentials it cannot verify");
}

#[tokio::test]
async fn route_access_follows_the_manifest_read_and_write_permissions() {
    let app = spawn_app_with(&["users"]).await;
    let (_, nobody) = app.user_with_token("nobody@example.com", &[]).await;
    let (_, reader) = app.user_with_token("reader@example.com", &["read:users"]).await;
    let (_, admin) = app.user_with_token("admin@example.com", &["admin"]).await;
    let create = json!({ "email": "new@example.com", "password": "long enough password" });

    assert_eq!(app.get("/api/users").await.status(), 401);
    let (status, error) = error_of(app.request_as(Method::GET, "/api/users", &nobody).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    assert!(error["message"].as_str().unwrap().contains("admin, read:users"), "{error}");
    assert_eq!(app.request_as(Method::GET, "/api/users", &reader).send().await.unwrap().status(), 200);
    let write = app.request_as(Method::POST, "/api/users", &reader).json(&create).send().await.unwrap();
    assert_eq!(write.status(), 403, "read:users may not write");
    let write = app.request_as(Method::POST, "/api/users", &admin).json(&create).send().await.unwrap();
    assert_eq!(write.status(), 201);
}

#[tokio::test]
async fn the_admin_api_is_open_to_admins_only() {
    let app = spawn_configured(&["hello"], |config| config.admin_token = None).await;
    let (_, user) = app.user_with_token("user@example.com", &["read:users"]).await;
    let (_, admin) = app.user_with_token("root@example.com", &["admin"]).await;

    assert_eq!(app.get("/admin/plugins").await.status(), 401);
    let static_token = app.admin(Method::GET, "/admin/plugins").send().await.unwrap();
    assert_eq!(static_token.status(), 401, "the static token only works when the operator opts in");
    let (status, error) = error_of(app.request_as(Method::GET, "/admin/plugins", &user).send().await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    let listed: Value =
        app.request_as(Method::GET, "/admin/plugins", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"][0]["name"], "hello");
}

#[tokio::test]
async fn plugins_never_receive_the_callers_bearer_token_or_session_cookie() {
    let app = spawn_app().await;
    let (user, token) = app.user_with_token("creds@example.com", &[]).await;
    let echoed = |request: reqwest::RequestBuilder| async move {
        let response = request.json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };

    let by_bearer = echoed(app.client.post(app.url("/api/echo")).bearer_auth(&token)).await;
    assert_eq!(by_bearer["userId"], user.id.as_str(), "the principal still arrives");
    assert_eq!(by_bearer["headers"]["authorization"], Value::Null, "{by_bearer}");

    let cookies = format!("theme=dark; autoflow_session={token}; lang=en");
    let by_cookie = echoed(app.client.post(app.url("/api/echo")).header("cookie", &cookies)).await;
    assert_eq!(by_cookie["userId"], user.id.as_str());
    assert_eq!(by_cookie["headers"]["cookie"], "theme=dark; lang=en", "other cookies stay: {by_cookie}");

    let only_session =
        echoed(app.client.post(app.url("/api/echo")).header("cookie", format!("autoflow_session={token}")));
    assert_eq!(only_session.await["headers"]["cookie"], Value::Null);
    let refused = echoed(app.client.post(app.url("/api/echo")).header("authorization", "Basic dXNlcjpwYXNz")).await;
    assert_eq!(refused["headers"]["authorization"], Value::Null, "no Authorization header reaches a plugin");
    let body = serde_json::to_string(&by_cookie).unwrap() + &serde_json::to_string(&by_bearer).unwrap();
    assert!(!body.contains(&token), "the token appears nowhere in what the plugin saw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permission_change_or_disable_holds_against_readers_racing_the_update() {
    let app = spawn_app().await;
    let (user, token) = app.user_with_token("raced@example.com", &["read:users"]).await;
    let identity = app.auth.identity.clone();
    let key = format!("identity/users/{}", user.id);
    let readers = |reads: usize| -> Vec<_> {
        (0..12)
            .map(|_| {
                let (identity, id) = (identity.clone(), user.id.clone());
                tokio::spawn(async move {
                    for _ in 0..reads {
                        identity.get(&id).await.unwrap();
                    }
                })
            })
            .collect()
    };

    for round in 0..100 {
        let granted = round % 2 == 1;
        let permissions: Vec<String> = if granted { vec!["read:users".into()] } else { Vec::new() };
        // The entry has just expired: every reader below loads the user from the database, racing
        // the update; one that loaded the old row must not put it back after the update's copy.
        app.auth.cache.delete(&key).await;
        let racing = readers(4);
        let patch = UserPatch { permissions: Some(permissions.clone()), ..UserPatch::default() };
        identity.update(&user.id, patch).await.unwrap();
        for reader in racing {
            reader.await.unwrap();
        }
        assert_eq!(identity.get(&user.id).await.unwrap().permissions, permissions, "round {round}");
    }

    let racing = readers(20);
    app.auth.cache.delete(&key).await;
    identity.update(&user.id, UserPatch { disabled: Some(true), ..UserPatch::default() }).await.unwrap();
    for reader in racing {
        reader.await.unwrap();
    }
    assert_eq!(me(&app, &token).await.status(), 401, "the disable holds on the next request");
}

#[tokio::test]
async fn re_enabling_a_user_does_not_revive_the_tokens_issued_before_the_disable() {
    let app = spawn_app().await;
    let (user, old_token) = app.user_with_token("revived@example.com", &[]).await;
    let set_disabled = |disabled: bool| {
        let identity = app.auth.identity.clone();
        let id = user.id.clone();
        async move { identity.update(&id, UserPatch { disabled: Some(disabled), ..UserPatch::default() }).await }
    };

    set_disabled(true).await.unwrap();
    assert_eq!(me(&app, &old_token).await.status(), 401);
    set_disabled(false).await.unwrap();

    let (status, error) = error_of(me(&app, &old_token).await).await;
    assert_eq!(status, 401, "the token from before the disable stays dead: {error}");
    assert!(error["message"].as_str().unwrap().contains("disabled"), "{error}");
    let fresh = app.login("revived@example.com", PASSWORD).await.json::<Value>().await.unwrap();
    assert_eq!(me(&app, fresh["token"].as_str().unwrap()).await.status(), 200, "signing in again works");
}

#[tokio::test]
async fn a_stranger_failing_elsewhere_cannot_lock_the_owner_out() {
    let app = spawn_configured(&["hello"], |config| {
        config.auth.login_limit.per_email = 3;
        config.auth.login_limit.per_address = 1000;
        config.auth.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    app.create_user("owner@example.com", &[]).await;
    let login_from = |address: String, password: &'static str, device: Option<String>| {
        let body = json!({ "email": "owner@example.com", "password": password });
        let mut request = app.client.post(app.url("/auth/login")).header("x-forwarded-for", address).json(&body);
        if let Some(device) = device {
            request = request.header("cookie", device);
        }
        async move { request.send().await.unwrap() }
    };

    // The owner signs in from home once; their browser keeps a device cookie.
    let home = login_from("198.51.100.7".into(), PASSWORD, None).await;
    assert_eq!(home.status(), 200);
    let device = home
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("autoflow_device="))
        .expect("a device cookie");
    assert!(device.contains("HttpOnly") && device.contains("Path=/auth/login"), "{device}");
    let device = device.split(';').next().unwrap().to_owned();

    // A stranger guesses from elsewhere until refused, even with the right password, and keeps
    // trying far past the account's ceiling for unknown browsers.
    for _ in 0..3 {
        assert_eq!(login_from("203.0.113.9".into(), "wrong-guess-1", None).await.status(), 401);
    }
    assert_eq!(login_from("203.0.113.9".into(), PASSWORD, None).await.status(), 429, "the stranger is limited");
    for _ in 0..40 {
        assert_eq!(login_from("203.0.113.9".into(), "wrong-guess-1", None).await.status(), 429);
    }
    // ... which does not lock the owner out: not at home, not from a new address.
    assert_eq!(login_from("198.51.100.7".into(), PASSWORD, None).await.status(), 200);
    assert_eq!(login_from("192.0.2.50".into(), PASSWORD, None).await.status(), 200);

    // A guesser spread over many addresses meets the account's ceiling for unknown browsers...
    for n in 0..40 {
        login_from(format!("203.0.113.{}", 100 + n), "wrong-guess-2", None).await;
    }
    assert_eq!(login_from("192.0.2.51".into(), PASSWORD, None).await.status(), 429, "brute force stays bounded");
    // ... while the browser the owner signed in with is let through.
    assert_eq!(login_from("192.0.2.52".into(), PASSWORD, Some(device.clone())).await.status(), 200);
    let forged = device.replace("autoflow_device=", "autoflow_device=AAAA");
    assert_eq!(
        login_from("192.0.2.53".into(), PASSWORD, Some(forged)).await.status(),
        429,
        "a forged cookie is no device"
    );
}
