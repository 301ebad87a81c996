//! Encryption with host-held keys (the seed's RSAEncryptionService and the sealing its secrets need):
//!
//! - `seal`/`open`: AES-256-GCM under the host's data key, a random nonce per message, and the
//!   caller's context bound as associated data. Output: `version (1) ‖ key id (8) ‖ nonce (12) ‖
//!   ciphertext+tag`, so keys can rotate (the id says which key sealed a value).
//! - RSA-OAEP (SHA-256) with the host's encryption key pair (never the token-signing key), through
//!   aws-lc-rs (constant time). Each ciphertext carries an OAEP label naming whom it is for, so it
//!   opens only with that label; retired encryption keys still decrypt what was made for them.
//!
//! The data key comes from `AUTOFLOW_DATA_KEY` (base64 of 32 bytes) or is generated on first run
//! into `<data>/keys/data.key` (0600). No key ever leaves this module.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::DataKeySource;

use super::keys::{KeyError, RsaKeys, store_new_private_file};

/// The file a generated data key is kept in, under the keys directory.
pub const DATA_KEY_FILE: &str = "data.key";
/// The format version of sealed values.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why a crypto operation failed. Each is the caller's problem (`invalid`), never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the sealed value is malformed, was sealed with another key or context, or was tampered with")]
    CannotOpen,
    #[error("the ciphertext cannot be decrypted: it was not made with the host's encryption key and this label")]
    CannotDecrypt,
    #[error("the plaintext is too long for RSA-OAEP with this key (at most {0} bytes)")]
    TooLong(usize),
    #[error("encryption failed")]
    Failed,
}

/// The host's encryption service. Cheap to clone.
#[derive(Clone)]
pub struct Crypto {
    inner: Arc<CryptoInner>,
}

struct CryptoInner {
    data_key: RandomizedNonceKey,
    key_id: [u8; KEY_ID_LEN],
    /// The current encryption key first, then retired ones (decryption only).
    rsa_private: Vec<OaepPrivateDecryptingKey>,
    rsa_public: OaepPublicEncryptingKey,
    public_pem: String,
}

impl Crypto {
    /// Loads (or generates) the data key and takes the RSA encryption key pair and the retired
    /// ones. Blocking (file I/O).
    pub fn load(source: &DataKeySource, rsa: &RsaKeys, retired: &[RsaKeys]) -> Result<Self, KeyError> {
        let key_bytes = match source {
            DataKeySource::Base64(text) => decode_key(text.expose_secret(), "AUTOFLOW_DATA_KEY")?,
            DataKeySource::Generated(dir) => load_or_generate(dir)?,
        };
        let data_key = RandomizedNonceKey::new(&AES_256_GCM, &key_bytes).map_err(|_| KeyError::Generate)?;
        let mut key_id = [0; KEY_ID_LEN];
        key_id.copy_from_slice(&Sha256::digest(&key_bytes)[..KEY_ID_LEN]);
        let inner = CryptoInner {
            data_key,
            key_id,
            rsa_private: std::iter::once(rsa)
                .chain(retired)
                .map(RsaKeys::oaep_decrypting_key)
                .collect::<Result<_, _>>()?,
            rsa_public: rsa.oaep_encrypting_key()?,
            public_pem: rsa.public_pem().to_owned(),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the plugin and what the value is).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .inner
            .data_key
            .seal_in_place_append_tag(Aad::from(aad(&self.inner.key_id, context)), &mut in_out)
            .map_err(|_| CryptoError::Failed)?;
        let mut sealed = Vec::with_capacity(HEADER_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&self.inner.key_id);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts what [`Crypto::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION || sealed[1..1 + KEY_ID_LEN] != self.inner.key_id {
            return Err(CryptoError::CannotOpen);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1 + KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| CryptoError::CannotOpen)?;
        let mut in_out = sealed[HEADER_LEN..].to_vec();
        let plaintext = self
            .inner
            .data_key
            .open_in_place(nonce, Aad::from(aad(&self.inner.key_id, context)), &mut in_out)
            .map_err(|_| CryptoError::CannotOpen)?;
        Ok(plaintext.to_vec())
    }

    /// RSA-OAEP (SHA-256) encryption to the host's encryption key, under `label`.
    pub fn rsa_encrypt(&self, plaintext: &[u8], label: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = &self.inner.rsa_public;
        let max = key.max_plaintext_size(&OAEP_SHA256_MGF1SHA256);
        if plaintext.len() > max {
            return Err(CryptoError::TooLong(max));
        }
        let mut out = vec![0; key.ciphertext_size()];
        let written = key
            .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, Some(label))
            .map_err(|_| CryptoError::Failed)?
            .len();
        out.truncate(written);
        Ok(out)
    }

    /// RSA-OAEP (SHA-256) decryption of a ciphertext made for `label`, with the current encryption
    /// key or a retired one.
    pub fn rsa_decrypt(&self, ciphertext: &[u8], label: &[u8]) -> Result<Vec<u8>, CryptoError> {
        for key in &self.inner.rsa_private {
            let mut out = vec![0; key.min_output_size()];
            if let Ok(plaintext) = key.decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, Some(label)) {
                return Ok(plaintext.to_vec());
            }
        }
        Err(CryptoError::CannotDecrypt)
    }

    /// The public half of the host's encryption key, as PEM.
    pub fn public_key_pem(&self) -> &str {
        &self.inner.public_pem
    }
}

fn aad(key_id: &[u8; KEY_ID_LEN], context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + context.len());
    aad.extend_from_slice(b"autoflow-seal-v1");
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(context.as_bytes());
    aad
}

fn decode_key(text: &str, origin: &str) -> Result<Vec<u8>, KeyError> {
    let invalid = || KeyError::Invalid { origin: origin.into(), reason: "must be the base64 of 32 bytes".into() };
    let bytes = STANDARD.decode(text.trim()).map_err(|_| invalid())?;
    if bytes.len() == 32 { Ok(bytes) } else { Err(invalid()) }
}

fn load_or_generate(dir: &Path) -> Result<Vec<u8>, KeyError> {
    let path = dir.join(DATA_KEY_FILE);
    if !path.exists() {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| KeyError::Generate)?;
        let stored = store_new_private_file(dir, &path, STANDARD.encode(key).as_bytes())
            .map_err(|source| KeyError::Write { path: path.clone(), source })?;
        if stored {
            tracing::info!(path = %path.display(), "generated the host's data key");
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Read { path: path.clone(), source })?;
    decode_key(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    use crate::config::KeySource;

    fn service(dir: &Path) -> Crypto {
        let rsa = RsaKeys::load(&KeySource::Generated(dir.join("keys"))).unwrap();
        Crypto::load(&DataKeySource::Generated(dir.join("keys")), &rsa, &[]).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_their_context_and_key() {
        let dir = tempfile::TempDir::new().unwrap();
        let crypto = service(dir.path());
        let sealed = crypto.seal(b"top secret", "secrets/alice").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        assert_eq!(crypto.open(&sealed, "secrets/alice").unwrap(), b"top secret");
        assert_ne!(crypto.seal(b"top secret", "secrets/alice").unwrap(), sealed, "a fresh nonce each time");
        assert_eq!(crypto.open(&sealed, "secrets/bob"), Err(CryptoError::CannotOpen));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(crypto.open(&tampered, "secrets/alice"), Err(CryptoError::CannotOpen));
        assert_eq!(crypto.open(&sealed[..5], "secrets/alice"), Err(CryptoError::CannotOpen));
        let other = tempfile::TempDir::new().unwrap();
        assert_eq!(service(other.path()).open(&sealed, "secrets/alice"), Err(CryptoError::CannotOpen));
        // The same directory gives the same key back.
        assert_eq!(service(dir.path()).open(&sealed, "secrets/alice").unwrap(), b"top secret");
    }

    #[test]
    fn rsa_oaep_round_trips_and_refuses_garbage() {
        let dir = tempfile::TempDir::new().unwrap();
        let crypto = service(dir.path());
        let ciphertext = crypto.rsa_encrypt(b"from the client", b"for-a").unwrap();
        assert_eq!(crypto.rsa_decrypt(&ciphertext, b"for-a").unwrap(), b"from the client");
        assert_eq!(crypto.rsa_decrypt(&ciphertext, b"for-b"), Err(CryptoError::CannotDecrypt), "bound to its label");
        assert_eq!(crypto.rsa_decrypt(b"garbage", b"for-a"), Err(CryptoError::CannotDecrypt));
        assert!(matches!(crypto.rsa_encrypt(&[0; 300], b"for-a"), Err(CryptoError::TooLong(190))));
    }

    #[test]
    fn a_retired_encryption_key_still_decrypts_what_was_made_for_it() {
        let (old_dir, new_dir) = (tempfile::TempDir::new().unwrap(), tempfile::TempDir::new().unwrap());
        let old = service(old_dir.path());
        let made_before = old.rsa_encrypt(b"before the rotation", b"for-a").unwrap();
        let retired = RsaKeys::load(&KeySource::Generated(old_dir.path().join("keys"))).unwrap();
        let current = RsaKeys::load(&KeySource::Generated(new_dir.path().join("keys"))).unwrap();
        let data = DataKeySource::Generated(new_dir.path().join("keys"));
        let rotated = Crypto::load(&data, &current, &[retired]).unwrap();
        assert_eq!(rotated.rsa_decrypt(&made_before, b"for-a").unwrap(), b"before the rotation");
        assert_ne!(rotated.public_key_pem(), old.public_key_pem(), "clients now encrypt to the new key");
        let made_after = rotated.rsa_encrypt(b"after", b"for-a").unwrap();
        assert_eq!(old.rsa_decrypt(&made_after, b"for-a"), Err(CryptoError::CannotDecrypt));
    }

    #[test]
    fn a_data_key_of_the_wrong_size_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let rsa = RsaKeys::load(&KeySource::Generated(dir.path().to_owned())).unwrap();
        let short = DataKeySource::Base64(SecretString::from(STANDARD.encode([1u8; 16])));
        let err = Crypto::load(&short, &rsa, &[]).err().unwrap().to_string();
        assert!(err.contains("AUTOFLOW_DATA_KEY") && err.contains("32 bytes"), "{err}");
    }
}
