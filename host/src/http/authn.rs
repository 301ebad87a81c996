//! Who is calling: the access token from `Authorization: Bearer` or the session cookie, checked
//! and turned into a [`Caller`] (the user as stored now, so disabling a user or changing their
//! permissions takes effect on their next request), and route access decided from the manifest.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

use super::ApiError;
use crate::config::AuthConfig;
use crate::contract::Principal;
use crate::services::cache::Cache;
use crate::services::crypto::Crypto;
use crate::services::identity::{Identity, IdentityError, User};
use crate::services::tokens::{Claims, TokenError, Tokens};
use crate::spec::Access;

/// The cookie carrying the access token for browsers.
pub const SESSION_COOKIE: &str = "autoflow_session";

/// The services authentication needs. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pub identity: Identity,
    pub tokens: Tokens,
    /// Login rate-limit counters live here.
    pub cache: Cache,
    /// Seals the device cookie that marks a browser its owner signed in with.
    pub crypto: Crypto,
    pub config: Arc<AuthConfig>,
}

/// An authenticated caller: the user behind a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub claims: Claims,
}

/// A handler taking a `Caller` answers `401` to a request without valid credentials.
impl axum::extract::FromRequestParts<super::AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &super::AppState) -> Result<Self, ApiError> {
        state.auth.require(&parts.headers).await
    }
}

impl Caller {
    /// The caller as plugins see it.
    pub fn principal(&self) -> Principal {
        Principal { user_id: self.user.id.clone(), permissions: self.user.permissions.clone() }
    }

    /// Whether the caller holds `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.user.permissions.iter().any(|p| p == permission)
    }

    /// Whether the caller holds at least one of `permissions`.
    pub fn has_any(&self, permissions: &[String]) -> bool {
        permissions.iter().any(|p| self.has(p))
    }

    /// `403` unless the caller holds one of `permissions` or `admin`; the message says that
    /// `what` needs them.
    pub fn require(&self, permissions: &[&str], what: &str) -> Result<(), ApiError> {
        if self.has(super::admin::ADMIN_PERMISSION) || permissions.iter().any(|p| self.has(p)) {
            return Ok(());
        }
        let named: Vec<&str> = permissions.iter().copied().chain([super::admin::ADMIN_PERMISSION]).collect();
        Err(ApiError::Forbidden(format!("{what} needs the `{}` permission", named.join("` or `"))))
    }
}

impl Auth {
    /// The caller, `None` when no credentials are presented; presented credentials that do not
    /// authenticate anyone are an error.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        let Some(token) = presented_token(headers)? else { return Ok(None) };
        let claims = self.tokens.verify(&token).await.map_err(|error| match error {
            TokenError::Unchecked(error) => ApiError::DatabaseUnavailable(error),
            refused => ApiError::InvalidToken(refused.to_string()),
        })?;
        let user = match self.identity.get(&claims.sub).await {
            Ok(user) => user,
            Err(IdentityError::NotFound) => {
                return Err(ApiError::InvalidToken("the access token's user no longer exists".into()));
            }
            Err(error) => return Err(error.into()),
        };
        if user.disabled {
            return Err(ApiError::InvalidToken("the account is disabled".into()));
        }
        if claims.generation != user.credential_generation {
            return Err(ApiError::InvalidToken(
                "the password changed or the account was disabled since this token was issued; sign in again".into(),
            ));
        }
        Ok(Some(Caller { user, claims }))
    }

    /// The caller, or `401` without credentials.
    pub async fn require(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        self.authenticate(headers).await?.ok_or_else(needs_authentication)
    }

    /// Decides a route's `access` for a request: `401` without valid credentials where they are
    /// needed, `403` without a needed permission. A public route ignores credentials it cannot verify.
    pub async fn authorize(&self, access: &Access, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        match access {
            Access::Public => Ok(self.authenticate(headers).await.unwrap_or(None)),
            Access::Authenticated => self.require(headers).await.map(Some),
            Access::AnyOf(permissions) => {
                let caller = self.require(headers).await?;
                if caller.has_any(permissions) { Ok(Some(caller)) } else { Err(needs_permission(permissions)) }
            }
            // The dispatcher answers `404` for these before asking.
            Access::Internal => Err(ApiError::Forbidden("this route is only for other plugins".into())),
        }
    }
}

/// Decides a route's `access` for a principal authenticated upstream (an internal request acts
/// for the user of the request that made it).
pub fn authorize_principal(access: &Access, principal: Option<&Principal>) -> Result<(), ApiError> {
    match (access, principal) {
        (Access::Public | Access::Internal, _) | (Access::Authenticated, Some(_)) => Ok(()),
        (_, None) => Err(needs_authentication()),
        (Access::AnyOf(permissions), Some(principal)) => {
            if permissions.iter().any(|p| principal.permissions.contains(p)) {
                Ok(())
            } else {
                Err(needs_permission(permissions))
            }
        }
    }
}

fn needs_authentication() -> ApiError {
    ApiError::Unauthorized("this route needs authentication: send `Authorization: Bearer <token>`".into())
}

fn needs_permission(permissions: &[String]) -> ApiError {
    ApiError::Forbidden(format!("this route needs one of the permissions: {}", permissions.join(", ")))
}

/// The bearer token, else the session cookie's value.
fn presented_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(authorization) = headers.get(AUTHORIZATION) {
        let bearer = authorization
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .map(|(_, token)| token.trim().to_owned());
        return bearer
            .map(Some)
            .ok_or_else(|| ApiError::InvalidToken("the Authorization header must be `Bearer <token>`".into()));
    }
    Ok(session_cookie(headers))
}

/// The session cookie's value, if the request carries it.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A header map of `pairs`, for the HTTP layer's unit tests.
    pub(in crate::http) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (axum::http::HeaderName::from_static(name), value.parse().unwrap())).collect()
    }

    #[test]
    fn the_bearer_token_wins_over_the_cookie() {
        let both = headers(&[("authorization", "Bearer abc"), ("cookie", "autoflow_session=def")]);
        assert_eq!(presented_token(&both).unwrap().as_deref(), Some("abc"));
        let cookie = headers(&[("cookie", "theme=dark; autoflow_session=def; x=1")]);
        assert_eq!(presented_token(&cookie).unwrap().as_deref(), Some("def"));
        assert_eq!(presented_token(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn other_authorization_schemes_are_refused() {
        for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token"] {
            assert!(presented_token(&headers(&[("authorization", value)])).is_err(), "{value}");
        }
    }
}
