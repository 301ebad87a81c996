//! Password hashing with Argon2id (OWASP's parameters: 19 MiB, 2 passes, 1 lane), stored as PHC
//! strings. Hashing is CPU- and memory-heavy, so it runs on the blocking pool and at most
//! [`CONCURRENT_HASHES`] at once; a flood of logins queues instead of exhausting memory.

use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Hashes computed at once, host-wide.
pub const CONCURRENT_HASHES: usize = 4;

/// A hash of a random password, verified against when a login names an unknown user, so that
/// answer takes as long as a wrong password for a real one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random = uuid::Uuid::new_v4().to_string();
    Argon2::default().hash_password(random.as_bytes()).map(|hash| hash.to_string()).unwrap_or_default()
});

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords off the async threads. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self { permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)) }
    }
}

impl Passwords {
    /// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh random salt.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let password = password.clone();
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
        .unwrap_or_else(|join| Err(HashError(join.to_string())))
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored hash (unknown user) a
    /// dummy hash is verified anyway and the answer is `false`, in about the same time.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> bool {
        let password = password.clone();
        self.blocking(move || {
            let known = stored.is_some();
            let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
            let matches = PasswordHash::new(&stored)
                .map(|hash| Argon2::default().verify_password(password.expose_secret().as_bytes(), &hash).is_ok())
                .unwrap_or(false);
            known && matches
        })
        .await
        .unwrap_or(false)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await;
        tokio::task::spawn_blocking(work).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::default();
        let secret = SecretString::from("correct horse battery");
        let hash = passwords.hash(&secret).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(passwords.verify(&secret, Some(hash.clone())).await);
        assert!(!passwords.verify(&SecretString::from("wrong"), Some(hash)).await);
        assert!(!passwords.verify(&secret, None).await);
        assert!(!passwords.verify(&secret, Some("not a phc string".into())).await);
    }
}
