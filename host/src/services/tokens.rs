//! Access tokens: JWTs signed RS256 with the host's key pair, carrying `sub`, `permissions`,
//! `iat`, `exp`, `iss`, `aud`, `jti` and a `kid` header. Only RS256 under the host's own key is
//! accepted: `none`, HS256 (with the public key as the secret) and foreign keys all fail
//! verification. Logging out revokes a token's `jti` in the cache until the token expires.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::keys::RsaKeys;
use super::revocations::Revocations;
use crate::config::TokenSettings;
use crate::db::DbError;

/// Clock skew tolerated between hosts when checking `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's permissions when the token was issued (informational: the host checks the
    /// user's current permissions on every request).
    pub permissions: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    pub aud: String,
    /// The token's unique id, the key of its revocation.
    pub jti: String,
    /// The user's credential generation when the token was issued; a password change bumps the
    /// user's, which ends every token issued before it.
    #[serde(default)]
    pub generation: i64,
}

impl Claims {
    /// When the token stops being valid.
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0).single().unwrap_or_else(Utc::now)
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

/// Why a presented token was refused. Each becomes a `401`, but for [`TokenError::Unchecked`].
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token has been revoked")]
    Revoked,
    #[error("the access token is invalid: {0}")]
    Invalid(&'static str),
    /// Whether the token was revoked could not be found out (the database is unreachable).
    #[error(transparent)]
    Unchecked(#[from] DbError),
}

/// Issues, verifies and revokes access tokens. Cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    inner: std::sync::Arc<TokensInner>,
}

struct TokensInner {
    encoding: EncodingKey,
    /// Verification keys by key id: the signing key's, then retired keys' (tokens they signed stay
    /// valid until they expire, so the key can be rotated without signing everyone out).
    decoding: Vec<(String, DecodingKey)>,
    kid: String,
    jwks: serde_json::Value,
    validation: Validation,
    settings: TokenSettings,
    revocations: Revocations,
}

impl Tokens {
    /// A token service signing with `keys`, also accepting tokens signed with `retired` keys, and
    /// keeping track of revoked tokens in `revocations`.
    pub fn new(
        keys: &RsaKeys,
        retired: &[RsaKeys],
        settings: TokenSettings,
        revocations: Revocations,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let encoding = EncodingKey::from_rsa_pem(keys.private_pem().expose_secret().as_bytes())?;
        let verifying = std::iter::once(keys).chain(retired.iter().filter(|old| old.kid() != keys.kid()));
        let mut decoding = Vec::new();
        let mut jwks = Vec::new();
        for key in verifying {
            let (n, e) = key.public_components();
            decoding.push((key.kid().to_owned(), DecodingKey::from_rsa_components(n, e)?));
            jwks.push(key.public_jwk());
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        let inner = TokensInner {
            encoding,
            decoding,
            kid: keys.kid().to_owned(),
            jwks: serde_json::json!({ "keys": jwks }),
            validation,
            settings,
            revocations,
        };
        Ok(Self { inner: std::sync::Arc::new(inner) })
    }

    /// The JSON Web Key Set publishing the verification key.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.inner.jwks
    }

    /// The configured token lifetime.
    pub fn lifetime(&self) -> Duration {
        self.inner.settings.lifetime
    }

    /// Signs a token for `user_id` (at credential generation `generation`) valid for the
    /// configured lifetime.
    pub fn issue(
        &self,
        user_id: &str,
        permissions: &[String],
        generation: i64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let lifetime = i64::try_from(self.inner.settings.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id.to_owned(),
            permissions: permissions.to_vec(),
            iat: now,
            exp: now.saturating_add(lifetime),
            nbf: None,
            iss: self.inner.settings.issuer.clone(),
            aud: self.inner.settings.audience.clone(),
            jti: uuid::Uuid::now_v7().to_string(),
            generation,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.inner.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.inner.encoding)?;
        Ok(IssuedToken { token, claims })
    }

    /// Checks a token's signature, algorithm, key id, issuer, audience and times, then whether it
    /// was revoked.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.decode(token)?;
        if self.inner.revocations.is_revoked(&claims.jti).await? {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        // An `alg` jsonwebtoken does not know (such as `none`) already fails here.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("its header is malformed or names an algorithm other than RS256"))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid("only RS256 tokens are accepted"));
        }
        let key = self.inner.decoding.iter().find(|(kid, _)| header.kid.as_deref() == Some(kid.as_str()));
        let Some((_, key)) = key else {
            return Err(TokenError::Invalid("it was not signed with this host's key"));
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation).map_err(|e| classify(e.kind()))?;
        let leeway = LEEWAY_SECS as i64;
        if data.claims.iat > Utc::now().timestamp() + leeway {
            return Err(TokenError::NotYetValid);
        }
        Ok(data.claims)
    }

    /// Revokes the token with `claims` until it expires (the clock leeway included).
    pub async fn revoke(&self, claims: &Claims) -> Result<(), DbError> {
        let until = claims.expires_at() + chrono::Duration::seconds(LEEWAY_SECS as i64);
        self.inner.revocations.revoke(&claims.jti, until).await
    }
}

fn classify(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::Invalid("its signature does not verify"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            TokenError::Invalid("only RS256 tokens are accepted")
        }
        ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer"),
        ErrorKind::InvalidAudience => TokenError::Invalid("wrong audience"),
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            TokenError::Invalid("its claims are missing or malformed")
        }
        _ => TokenError::Invalid("it is not a well-formed JWT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySource;
    use crate::db::Database;
    use crate::services::cache::Cache;

    /// Revocations in a fresh SQLite database under `dir`.
    async fn revocations(dir: &std::path::Path) -> Revocations {
        let db = Database::connect(None, dir).await.unwrap();
        db.migrate().await.unwrap();
        Revocations::new(db, Cache::memory())
    }

    async fn tokens() -> (Tokens, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let keys = RsaKeys::load(&KeySource::Generated(dir.path().to_owned())).unwrap();
        (Tokens::new(&keys, &[], TokenSettings::default(), revocations(dir.path()).await).unwrap(), dir)
    }

    #[tokio::test]
    async fn an_issued_token_verifies_until_revoked() {
        let (tokens, _dir) = tokens().await;
        let issued = tokens.issue("u1", &["admin".into()], 0).unwrap();
        let claims = tokens.verify(&issued.token).await.unwrap();
        assert_eq!((claims.sub.as_str(), claims.permissions.as_slice()), ("u1", ["admin".to_owned()].as_slice()));
        assert_eq!(claims.exp - claims.iat, 3600);
        tokens.revoke(&claims).await.unwrap();
        assert!(matches!(tokens.verify(&issued.token).await, Err(TokenError::Revoked)));
    }

    #[tokio::test]
    async fn after_a_key_rotation_tokens_of_the_retired_key_still_verify() {
        let (old_dir, new_dir) = (tempfile::TempDir::new().unwrap(), tempfile::TempDir::new().unwrap());
        let old = RsaKeys::load(&KeySource::Generated(old_dir.path().to_owned())).unwrap();
        let new = RsaKeys::load(&KeySource::Generated(new_dir.path().to_owned())).unwrap();
        let revoked = revocations(old_dir.path()).await;
        let before = Tokens::new(&old, &[], TokenSettings::default(), revoked.clone()).unwrap();
        let issued_before = before.issue("u1", &[], 0).unwrap();

        let after = Tokens::new(&new, std::slice::from_ref(&old), TokenSettings::default(), revoked.clone()).unwrap();
        assert_eq!(after.verify(&issued_before.token).await.unwrap().sub, "u1");
        let issued_after = after.issue("u2", &[], 0).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&issued_after.token).unwrap().kid.as_deref(), Some(new.kid()));
        let kids: Vec<&str> =
            after.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, [new.kid(), old.kid()], "the signing key first, then the retired one");

        let without = Tokens::new(&new, &[], TokenSettings::default(), revoked).unwrap();
        assert!(matches!(without.verify(&issued_before.token).await, Err(TokenError::Invalid(_))));
    }

    #[tokio::test]
    async fn a_token_from_another_host_key_is_refused() {
        let (ours, _a) = tokens().await;
        let (theirs, _b) = tokens().await;
        let foreign = theirs.issue("u1", &[], 0).unwrap();
        assert!(matches!(ours.verify(&foreign.token).await, Err(TokenError::Invalid(_))));
    }
}
