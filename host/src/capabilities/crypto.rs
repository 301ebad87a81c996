//! `autoflow:platform/crypto`: the host's crypto service for plugins granted it. Sealing binds the
//! plugin's name into the context, and RSA-OAEP its name into the label ([`rsa_label`]), so one
//! plugin can open neither another's sealed values nor a ciphertext a client made for another.

use std::sync::Arc;

use secrecy::SecretString;

use wasmtime::component::Linker;

use super::{Bound, HasBound, Instance, LoadContext, Unit};
use crate::contract::{PluginError, wit::crypto as wit};
use crate::services::crypto::{Crypto, CryptoError};
use crate::services::passwords::Passwords;
use crate::spec::grants::{self, Capability};

/// The crypto service as one plugin sees it.
#[derive(Clone)]
pub struct PluginCrypto {
    crypto: Crypto,
    passwords: Passwords,
    plugin: Arc<str>,
}

impl PluginCrypto {
    pub fn new(crypto: Crypto, passwords: Passwords, plugin: &str) -> Self {
        Self { crypto, passwords, plugin: plugin.into() }
    }

    fn context(&self, context: &str) -> String {
        format!("{}\u{0}{context}", self.plugin)
    }
}

/// The RSA-OAEP label of ciphertexts for `plugin`: clients encrypt with it, and only that plugin
/// decrypts with it.
pub fn rsa_label(plugin: &str) -> String {
    format!("autoflow:plugin:{plugin}")
}

impl From<CryptoError> for PluginError {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::Failed => PluginError::Internal(error.to_string()),
            _ => PluginError::invalid(error.to_string()),
        }
    }
}

impl Unit for PluginCrypto {
    const CAPABILITY: &'static Capability = &grants::CRYPTO;

    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        let (services, plugin) = (load.services, load.manifest.name.as_str());
        load.manifest
            .capabilities
            .crypto
            .then(|| Self::new(services.crypto.clone(), services.passwords.clone(), plugin))
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasBound<Self>>(linker, |state| state.grants.bound(|grants| grants.crypto.as_ref()))
    }
}

impl wit::Host for Bound<'_, PluginCrypto> {
    #[tracing::instrument(name = "crypto.seal", skip_all)]
    async fn seal(&mut self, plaintext: Vec<u8>, context: String) -> Result<Vec<u8>, PluginError> {
        let crypto = self.granted()?;
        Ok(crypto.crypto.seal(&plaintext, &crypto.context(&context))?)
    }

    #[tracing::instrument(name = "crypto.open", skip_all)]
    async fn open(&mut self, sealed: Vec<u8>, context: String) -> Result<Vec<u8>, PluginError> {
        let crypto = self.granted()?;
        Ok(crypto.crypto.open(&sealed, &crypto.context(&context))?)
    }

    #[tracing::instrument(name = "crypto.rsa_encrypt", skip_all)]
    async fn rsa_encrypt(&mut self, plaintext: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let crypto = self.granted()?;
        Ok(crypto.crypto.rsa_encrypt(&plaintext, rsa_label(&crypto.plugin).as_bytes())?)
    }

    #[tracing::instrument(name = "crypto.rsa_decrypt", skip_all)]
    async fn rsa_decrypt(&mut self, ciphertext: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let crypto = self.granted()?;
        Ok(crypto.crypto.rsa_decrypt(&ciphertext, rsa_label(&crypto.plugin).as_bytes())?)
    }

    async fn public_key(&mut self) -> String {
        self.grant.map(|c| c.crypto.public_key_pem().to_owned()).unwrap_or_default()
    }

    async fn rsa_label(&mut self) -> String {
        self.grant.map(|c| rsa_label(&c.plugin)).unwrap_or_default()
    }

    #[tracing::instrument(name = "crypto.hash_password", skip_all)]
    async fn hash_password(&mut self, password: String) -> Result<String, PluginError> {
        if password.is_empty() {
            return Err(PluginError::invalid("the password is empty"));
        }
        let crypto = self.granted()?;
        crypto.passwords.hash(&SecretString::from(password)).await.map_err(|e| PluginError::Internal(e.to_string()))
    }

    #[tracing::instrument(name = "crypto.verify_password", skip_all)]
    async fn verify_password(&mut self, password: String, hash: String) -> Result<bool, PluginError> {
        let crypto = self.granted()?;
        Ok(crypto.passwords.verify(&SecretString::from(password), Some(hash)).await)
    }
}
