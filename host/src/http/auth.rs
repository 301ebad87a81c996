//! The host's own authentication endpoints:
//!
//! - `POST /auth/login` — `{"email", "password"}` → `{"token", "tokenType", "expiresAt", "user"}`,
//!   the session cookie and a device cookie. Rate-limited (`429`) per client address, per account
//!   from each address (or from each browser that signed in to it before), and per account from
//!   browsers that never did: a stranger's failures lock out only the stranger.
//! - `POST /auth/logout` — revokes the presented token until it expires and clears the cookie.
//! - `GET /auth/me` — the caller's own user record.
//! - `GET /.well-known/jwks.json` — the public key tokens are verified with.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::authn::{Auth, Caller, SESSION_COOKIE};
use super::json::JsonBody;
use super::{ApiError, AppState};
use crate::services::identity::User;
use crate::telemetry::metrics::LoginOutcome;

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    ([(CACHE_CONTROL, "public, max-age=300")], Json(state.auth.tokens.jwks().clone()))
}

/// The body of `POST /auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginResponse {
    token: String,
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    user: User,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<JsonBody<LoginRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result = attempt_login(&state, peer, &headers, body).await;
    let outcome = match &result {
        Ok(_) => Some(LoginOutcome::Success),
        Err(ApiError::Unauthorized(_)) => Some(LoginOutcome::Failure),
        Err(ApiError::TooManyRequests { .. }) => Some(LoginOutcome::RateLimited),
        // Malformed requests and backend faults say nothing about credentials.
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        state.runtime.metrics().login(outcome);
    }
    result
}

async fn attempt_login(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<JsonBody<LoginRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(request) = body?;
    let auth = &state.auth;
    let client = auth.config.trusted_proxies.client_address(peer.ip(), headers);
    let limit = auth.config.login_limit;
    let account = hex::encode(Sha256::digest(request.email.trim().to_lowercase()));
    // Counted before the password is checked, so guessing costs the guesser, not the host. An
    // account's attempts count per client, so a stranger cannot lock its owner out.
    let device = trusted_device(auth, headers, &account);
    let own_counter = match &device {
        Some(device) => format!("auth/login/device/{device}"),
        None => format!("auth/login/account/{account}/address/{client}"),
    };
    // Narrowest first, and a client already over its own limits adds nothing to the account's
    // ceiling: one stranger, however persistent, spends at most their own share of it.
    let mut counters =
        vec![(format!("auth/login/address/{client}"), limit.per_address), (own_counter.clone(), limit.per_email)];
    if device.is_none() {
        counters.push((format!("auth/login/account/{account}/untrusted"), limit.per_email_untrusted()));
    }
    let mut limited = false;
    for (key, allowed) in &counters {
        let count = auth.cache.increment(key, 1, Some(limit.window)).await.unwrap_or(0);
        limited |= count > i64::from(*allowed);
        if limited {
            break;
        }
    }
    if limited {
        tracing::warn!(address = %client, trusted_device = device.is_some(), "login rate limit reached");
        return Err(ApiError::TooManyRequests { retry_after: limit.window });
    }

    let password = SecretString::from(request.password);
    let user = auth.identity.verify_credentials(&request.email, &password).await?;
    auth.cache.delete(&own_counter).await;
    let issued = auth
        .tokens
        .issue(&user.id, &user.permissions, user.credential_generation)
        .map_err(|e| ApiError::Internal(format!("signing a token failed: {e}")))?;
    tracing::info!(user = %user.id, "logged in");
    let cookie = Cookie::build((SESSION_COOKIE, issued.token.clone()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(auth.config.secure_cookie)
        .path("/")
        .max_age(cookie::time::Duration::seconds(auth.tokens.lifetime().as_secs() as i64))
        .build();
    let device_cookie = device_cookie(auth, &account)?;
    let body =
        LoginResponse { token: issued.token, token_type: "Bearer", expires_at: issued.claims.expires_at(), user };
    let mut response = (set_cookie(&cookie)?, Json(body)).into_response();
    response.headers_mut().append(SET_COOKIE, cookie_value(&device_cookie)?);
    Ok(response)
}

pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    state.auth.tokens.revoke(&caller.claims).await.map_err(ApiError::DatabaseUnavailable)?;
    tracing::info!(user = %caller.user.id, "logged out");
    let mut removal = Cookie::build((SESSION_COOKIE, "")).path("/").http_only(true).build();
    removal.make_removal();
    Ok((StatusCode::NO_CONTENT, set_cookie(&removal)?).into_response())
}

pub async fn me(caller: Caller) -> Json<User> {
    Json(caller.user)
}

/// The cookie marking a browser that signed in to an account: sent to `/auth/login` only, it lets
/// that browser through when the account's attempts from strangers reach their ceiling.
const DEVICE_COOKIE: &str = "autoflow_device";
/// How long a browser stays trusted after signing in.
const DEVICE_LIFETIME_DAYS: i64 = 180;
/// What a device cookie is sealed for.
const DEVICE_CONTEXT: &str = "auth/login-device";

/// A fresh device cookie for `account` (the hash of its email): the account sealed under the data
/// key with a random id, so it cannot be forged or moved to another account.
fn device_cookie(auth: &Auth, account: &str) -> Result<Cookie<'static>, ApiError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sealed = auth
        .crypto
        .seal(format!("{account}:{id}").as_bytes(), DEVICE_CONTEXT)
        .map_err(|e| ApiError::Internal(format!("sealing a device cookie failed: {e}")))?;
    Ok(Cookie::build((DEVICE_COOKIE, URL_SAFE_NO_PAD.encode(sealed)))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(auth.config.secure_cookie)
        .path("/auth/login")
        .max_age(cookie::time::Duration::days(DEVICE_LIFETIME_DAYS))
        .build())
}

/// The id of the device cookie presented, if it was issued for `account`.
fn trusted_device(auth: &Auth, headers: &HeaderMap, account: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == DEVICE_COOKIE)
        .find_map(|cookie| {
            let sealed = URL_SAFE_NO_PAD.decode(cookie.value()).ok()?;
            let opened = String::from_utf8(auth.crypto.open(&sealed, DEVICE_CONTEXT).ok()?).ok()?;
            let (sealed_account, id) = opened.split_once(':')?;
            (sealed_account == account).then(|| id.to_owned())
        })
}

fn set_cookie(cookie: &Cookie<'_>) -> Result<[(axum::http::HeaderName, HeaderValue); 1], ApiError> {
    Ok([(SET_COOKIE, cookie_value(cookie)?)])
}

fn cookie_value(cookie: &Cookie<'_>) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&cookie.to_string())
        .map_err(|_| ApiError::Internal(format!("cookie {} is not a valid header value", cookie.name())))
}
