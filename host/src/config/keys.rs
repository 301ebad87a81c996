//! Where the host's keys come from: the operator's files or environment, else generated on first
//! run under the data directory.

use std::path::PathBuf;

use secrecy::SecretString;

/// The file a generated signing key is kept in, under the keys directory.
pub const GENERATED_KEY_FILE: &str = "rsa-private.pem";
/// The file a generated encryption key is kept in, under the keys directory.
pub const GENERATED_ENCRYPTION_KEY_FILE: &str = "rsa-encryption.pem";

/// Where the host's private key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A PEM file (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) the operator provides.
    File(PathBuf),
    /// The PEM text itself, e.g. from `AUTOFLOW_RSA_PRIVATE_KEY`.
    Pem(SecretString),
    /// Generated into this directory on first run as the signing key, then read back on every start.
    Generated(PathBuf),
    /// Generated into this file on first run, then read back on every start.
    GeneratedFile(PathBuf),
}

/// Where the data key comes from.
#[derive(Debug, Clone)]
pub enum DataKeySource {
    /// Base64 of 32 bytes, e.g. from `AUTOFLOW_DATA_KEY`.
    Base64(SecretString),
    /// Generated into this directory on first run, then read back.
    Generated(PathBuf),
}
