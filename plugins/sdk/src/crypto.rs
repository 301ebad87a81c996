//! Encryption with keys the host holds. Needs `[capabilities] crypto = true`. Values sealed by one
//! plugin open only in that plugin, with the same context.

use crate::Result;
use crate::bindings::autoflow::platform::crypto as wit;

/// Encrypts `plaintext` under the host's data key, bound to `context` (say, `secret/<id>`).
pub fn seal(plaintext: &[u8], context: &str) -> Result<Vec<u8>> {
    Ok(wit::seal(plaintext, context)?)
}

/// Decrypts what [`seal`] produced with the same `context`; anything else is `Invalid`.
pub fn open(sealed: &[u8], context: &str) -> Result<Vec<u8>> {
    Ok(wit::open(sealed, context)?)
}

/// RSA-OAEP (SHA-256) encryption to the host's encryption key, labelled for this plugin.
pub fn rsa_encrypt(plaintext: &[u8]) -> Result<Vec<u8>> {
    Ok(wit::rsa_encrypt(plaintext)?)
}

/// RSA-OAEP (SHA-256) decryption of what a client encrypted to [`public_key`] with this plugin's
/// [`rsa_label`]; `Invalid` otherwise (a ciphertext made for another plugin among them).
pub fn rsa_decrypt(ciphertext: &[u8]) -> Result<Vec<u8>> {
    Ok(wit::rsa_decrypt(ciphertext)?)
}

/// The host's encryption public key (PEM) for clients to encrypt to.
pub fn public_key() -> String {
    wit::public_key()
}

/// The RSA-OAEP label a client's ciphertext for this plugin carries (its UTF-8 bytes).
pub fn rsa_label() -> String {
    wit::rsa_label()
}

/// An Argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> Result<String> {
    Ok(wit::hash_password(password)?)
}

/// Whether `password` matches `hash`.
pub fn verify_password(password: &str, hash: &str) -> Result<bool> {
    Ok(wit::verify_password(password, hash)?)
}
