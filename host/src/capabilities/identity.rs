//! `autoflow:platform/identity`: the identity service for plugins granted it. Hashes never cross;
//! failures come back as the contract's `error` variant.

use chrono::SecondsFormat;
use secrecy::SecretString;

use wasmtime::component::Linker;

use super::{Bound, HasBound, Instance, LoadContext, Unit};
use crate::contract::{FieldError, InvalidInput, PluginError, wit::identity as wit};
use crate::services::identity::{Identity, IdentityError, NewUser, User, UserPatch};
use crate::spec::grants::{self, Capability};

/// The identity service, for a plugin granted it (trusted plugins such as `users`).
#[derive(Clone)]
pub struct PluginIdentity(Identity);

impl Unit for PluginIdentity {
    const CAPABILITY: &'static Capability = &grants::IDENTITY;

    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        Self::CAPABILITY.is_granted(load.manifest).then(|| Self(load.services.identity.clone()))
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasBound<Self>>(linker, |state| state.grants.bound(|grants| grants.identity.as_ref()))
    }
}

impl Bound<'_, PluginIdentity> {
    fn identity(&self) -> Result<&Identity, PluginError> {
        self.granted().map(|granted| &granted.0)
    }
}

impl wit::Host for Bound<'_, PluginIdentity> {
    #[tracing::instrument(name = "identity.create_user", skip_all)]
    async fn create_user(&mut self, user: wit::NewUser) -> Result<wit::User, PluginError> {
        let new = NewUser {
            email: user.email,
            display_name: user.display_name,
            password: SecretString::from(user.password),
            permissions: user.permissions,
        };
        Ok(to_wit(self.identity()?.create(new).await?))
    }

    #[tracing::instrument(name = "identity.get_user", skip_all)]
    async fn get_user(&mut self, id: String) -> Result<wit::User, PluginError> {
        Ok(to_wit(self.identity()?.get(&id).await?))
    }

    #[tracing::instrument(name = "identity.list_users", skip_all)]
    async fn list_users(&mut self, limit: u32, cursor: Option<String>) -> Result<wit::UserPage, PluginError> {
        let page = self.identity()?.list(limit, cursor.as_deref()).await?;
        Ok(wit::UserPage { items: page.items.into_iter().map(to_wit).collect(), next_cursor: page.next_cursor })
    }

    #[tracing::instrument(name = "identity.update_user", skip_all)]
    async fn update_user(&mut self, id: String, patch: wit::UserPatch) -> Result<wit::User, PluginError> {
        let patch = UserPatch {
            email: patch.email,
            display_name: patch.display_name,
            permissions: patch.permissions,
            disabled: patch.disabled,
            password: patch.password.map(SecretString::from),
        };
        Ok(to_wit(self.identity()?.update(&id, patch).await?))
    }

    #[tracing::instrument(name = "identity.delete_user", skip_all)]
    async fn delete_user(&mut self, id: String) -> Result<(), PluginError> {
        Ok(self.identity()?.delete(&id).await?)
    }

    #[tracing::instrument(name = "identity.set_password", skip_all)]
    async fn set_password(&mut self, id: String, password: String) -> Result<(), PluginError> {
        Ok(self.identity()?.set_password(&id, SecretString::from(password)).await?)
    }

    #[tracing::instrument(name = "identity.verify_credentials", skip_all)]
    async fn verify_credentials(&mut self, email: String, password: String) -> Result<wit::User, PluginError> {
        Ok(to_wit(self.identity()?.verify_credentials(&email, &SecretString::from(password)).await?))
    }
}

impl From<IdentityError> for PluginError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid { message, fields } => PluginError::Invalid(InvalidInput {
                message,
                fields: fields.into_iter().map(|(field, message)| FieldError { field, message }).collect(),
            }),
            IdentityError::EmailTaken => PluginError::Conflict(error.to_string()),
            IdentityError::NotFound => PluginError::NotFound(error.to_string()),
            IdentityError::InvalidCredentials => PluginError::Unauthorized(error.to_string()),
            IdentityError::Database(source) => {
                tracing::error!(error = %source, "identity capability: database failure");
                PluginError::Unavailable("the user store is unavailable".into())
            }
            IdentityError::Internal(cause) => PluginError::Internal(cause),
        }
    }
}

fn to_wit(user: User) -> wit::User {
    wit::User {
        id: user.id,
        email: user.email,
        display_name: user.display_name,
        permissions: user.permissions,
        disabled: user.disabled,
        created_at: user.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        updated_at: user.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}
