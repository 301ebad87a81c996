//! The host's own authentication endpoints:
//!
//! - `POST /auth/login` — `{"email", "password"}` → `{"token", "tokenType", "expiresAt", "user"}`
//!   and the session cookie. Rate-limited per email and per client address (`429`).
//! - `POST /auth/logout` — revokes the presented token until it expires and clears the cookie.
//! - `GET /auth/me` — the caller's own user record.
//! - `GET /.well-known/jwks.json` — the public key tokens are verified with.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::authn::SESSION_COOKIE;
use super::json::JsonBody;
use super::{ApiError, AppState};
use crate::services::identity::User;

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
    let JsonBody(request) = body?;
    let auth = &state.auth;
    let client = auth.config.trusted_proxies.client_address(peer.ip(), &headers);
    let limit = auth.config.login_limit;
    // Counted before the password is checked, so guessing costs the guesser, not the host.
    let email_key = format!("auth/login/email/{}", hex::encode(Sha256::digest(request.email.trim().to_lowercase())));
    let address_key = format!("auth/login/address/{client}");
    let by_email = auth.cache.increment(&email_key, 1, Some(limit.window)).await.unwrap_or(0);
    let by_address = auth.cache.increment(&address_key, 1, Some(limit.window)).await.unwrap_or(0);
    if by_email > i64::from(limit.per_email) || by_address > i64::from(limit.per_address) {
        tracing::warn!(address = %client, "login rate limit reached");
        return Err(ApiError::TooManyRequests { retry_after: limit.window });
    }

    let password = SecretString::from(request.password);
    let user = auth.identity.verify_credentials(&request.email, &password).await?;
    auth.cache.delete(&email_key).await;
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
    let body =
        LoginResponse { token: issued.token, token_type: "Bearer", expires_at: issued.claims.expires_at(), user };
    Ok((set_cookie(&cookie)?, Json(body)).into_response())
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = state.auth.require(&headers).await?;
    state.auth.tokens.revoke(&caller.claims).await.map_err(ApiError::DatabaseUnavailable)?;
    tracing::info!(user = %caller.user.id, "logged out");
    let mut removal = Cookie::build((SESSION_COOKIE, "")).path("/").http_only(true).build();
    removal.make_removal();
    Ok((StatusCode::NO_CONTENT, set_cookie(&removal)?).into_response())
}

pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<User>, ApiError> {
    Ok(Json(state.auth.require(&headers).await?.user))
}

fn set_cookie(cookie: &Cookie<'_>) -> Result<[(axum::http::HeaderName, HeaderValue); 1], ApiError> {
    let value = HeaderValue::from_str(&cookie.to_string())
        .map_err(|_| ApiError::Internal("a session cookie is not a valid header value".into()))?;
    Ok([(SET_COOKIE, value)])
}
