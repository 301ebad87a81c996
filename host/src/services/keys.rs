//! The host's RSA key pairs: one signs access tokens; another, never the same, is the encryption
//! key lent to plugins (clients encrypt to it). The operator gives each as a PEM file or in the
//! environment; otherwise each is generated on first run under `<data>/keys/` with owner-only
//! permissions and reused afterwards.
//!
//! Private-key operations go through aws-lc-rs (constant time). The key never leaves this module
//! except as the PEM the token signer parses.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::{GENERATED_KEY_FILE, KeySource};

/// Why the key pair could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the RSA private key {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot store the generated RSA private key under {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the RSA private key from {origin} is not usable: {reason}")]
    Invalid { origin: String, reason: String },
    #[error("generating an RSA key pair failed")]
    Generate,
}

/// The host's RSA key pair and what is derived from its public half.
pub struct RsaKeys {
    /// The private key as PEM, for the token signer.
    private_pem: SecretString,
    key_pair: KeyPair,
    /// The public key's JSON Web Key (RFC 7517) members `n` and `e`, base64url.
    jwk_n: String,
    jwk_e: String,
    /// The key id: the JWK thumbprint (RFC 7638).
    kid: String,
    /// The public key as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo).
    public_pem: String,
}

impl std::fmt::Debug for RsaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKeys").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl RsaKeys {
    /// Loads the key from `source`, generating and storing it first when the source says so.
    /// Blocking (file I/O, and seconds of CPU when a key is generated).
    pub fn load(source: &KeySource) -> Result<Self, KeyError> {
        match source {
            KeySource::File(path) => {
                let pem =
                    std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.clone(), source })?;
                Self::from_pem(SecretString::from(pem), &path.display().to_string())
            }
            KeySource::Pem(pem) => Self::from_pem(pem.clone(), "AUTOFLOW_RSA_PRIVATE_KEY"),
            KeySource::Generated(dir) => Self::load(&KeySource::GeneratedFile(dir.join(GENERATED_KEY_FILE))),
            KeySource::GeneratedFile(path) => {
                if !path.exists() {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    generate_into(dir, path)?;
                }
                Self::load(&KeySource::File(path.clone()))
            }
        }
    }

    /// Parses a PEM private key; `origin` names it in errors.
    pub fn from_pem(pem: SecretString, origin: &str) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::Invalid { origin: origin.to_owned(), reason };
        let parsed = pem::parse(pem.expose_secret().as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let key_pair = match parsed.tag() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(parsed.contents()),
            "RSA PRIVATE KEY" => KeyPair::from_der(parsed.contents()),
            other => {
                return Err(invalid(format!("expected a `PRIVATE KEY` or `RSA PRIVATE KEY` PEM block, got `{other}`")));
            }
        }
        .map_err(|e| invalid(format!("{e} (an RSA key of 2048 to 8192 bits is required)")))?;
        let public = key_pair.public_key();
        let jwk_n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let jwk_e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        // RFC 7638: the members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"e":"{jwk_e}","kty":"RSA","n":"{jwk_n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let spki: PublicKeyX509Der = public.as_der().map_err(|_| invalid("its public key cannot be encoded".into()))?;
        let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
        Ok(Self { private_pem: pem, key_pair, jwk_n, jwk_e, kid, public_pem })
    }

    /// The private key as PEM.
    pub fn private_pem(&self) -> &SecretString {
        &self.private_pem
    }

    /// The key id tokens carry in their `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `use`, `alg`, `kid`, `n`, `e`).
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.jwk_n,
            "e": self.jwk_e,
        })
    }

    /// The public key's modulus and exponent, base64url (the JWK's `n` and `e`).
    pub fn public_components(&self) -> (&str, &str) {
        (&self.jwk_n, &self.jwk_e)
    }

    /// The public key as PEM.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The private key for RSA-OAEP decryption (constant-time, aws-lc).
    pub fn oaep_decrypting_key(&self) -> Result<OaepPrivateDecryptingKey, KeyError> {
        let unusable = || KeyError::Invalid { origin: "the host key".into(), reason: "not usable for RSA-OAEP".into() };
        let der: Pkcs8V1Der = self.key_pair.as_der().map_err(|_| unusable())?;
        let private = PrivateDecryptingKey::from_pkcs8(der.as_ref()).map_err(|_| unusable())?;
        OaepPrivateDecryptingKey::new(private).map_err(|_| unusable())
    }

    /// The public key for RSA-OAEP encryption.
    pub fn oaep_encrypting_key(&self) -> Result<OaepPublicEncryptingKey, KeyError> {
        let unusable = || KeyError::Invalid { origin: "the host key".into(), reason: "not usable for RSA-OAEP".into() };
        let spki: PublicKeyX509Der = self.key_pair.public_key().as_der().map_err(|_| unusable())?;
        let public = PublicEncryptingKey::from_der(spki.as_ref()).map_err(|_| unusable())?;
        OaepPublicEncryptingKey::new(public).map_err(|_| unusable())
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key_pair.public_modulus_len() * 8
    }
}

/// Generates a 2048-bit key and stores it at `path`.
fn generate_into(dir: &Path, path: &Path) -> Result<(), KeyError> {
    let key_pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
    let der: Pkcs8V1Der = key_pair.as_der().map_err(|_| KeyError::Generate)?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let stored = store_new_private_file(dir, path, pem.as_bytes())
        .map_err(|source| KeyError::Write { path: path.to_owned(), source })?;
    if stored {
        tracing::info!(path = %path.display(), "generated the host's RSA key pair");
    }
    Ok(())
}

/// Stores `contents` at `path` in `dir` (file 0600, directory 0700) unless a file is already
/// there; `false` if another process stored its own first (use that one). Written to a temporary
/// file and linked into place, so nobody ever reads half a key.
pub(crate) fn store_new_private_file(dir: &Path, path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    crate::private_fs::create_dir(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let mut file = crate::private_fs::file_options().open(&temporary)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_stored_owner_only_and_reused() {
        let dir = tempfile::TempDir::new().unwrap();
        let keys_dir = dir.path().join("keys");
        let first = RsaKeys::load(&KeySource::Generated(keys_dir.clone())).unwrap();
        let second = RsaKeys::load(&KeySource::Generated(keys_dir.clone())).unwrap();
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.bits(), 2048);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&keys_dir.join(GENERATED_KEY_FILE)), 0o600);
            assert_eq!(mode(&keys_dir), 0o700);
        }
        assert!(first.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn garbage_and_non_rsa_pem_are_refused_with_the_origin_named() {
        let err = RsaKeys::from_pem(SecretString::from("not a key"), "key.pem").unwrap_err().to_string();
        assert!(err.contains("key.pem"), "{err}");
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        let err = RsaKeys::from_pem(SecretString::from(cert), "cert.pem").unwrap_err().to_string();
        assert!(err.contains("CERTIFICATE"), "{err}");
    }
}
