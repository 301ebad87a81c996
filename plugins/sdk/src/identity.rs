//! Users and credentials through the host's identity service. Needs `[capabilities] identity = true`
//! in the plugin's manifest; password hashes never reach the plugin.

use serde::Serialize;

use crate::Result;
use crate::bindings::autoflow::platform::identity as wit;

/// A user. Serializes with the REST API's camelCase names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub permissions: Vec<String>,
    pub disabled: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

/// A page of users in creation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub items: Vec<User>,
    pub next_cursor: Option<String>,
}

/// What creating a user takes (`display-name` defaults to the part of the email before `@`) and
/// the changes to a user (`none` keeps a field): the contract's own types, the host validates every
/// field. [`User`] stays a type of the SDK's because it serializes with the REST API's camelCase names.
pub use wit::{NewUser, UserPatch};

/// Creates a user: `Invalid` names each bad field, `Conflict` means the email is taken.
pub fn create_user(user: NewUser) -> Result<User> {
    Ok(wit::create_user(&user)?.into())
}

/// The user with `id`, or `NotFound`.
pub fn get_user(id: &str) -> Result<User> {
    Ok(wit::get_user(id)?.into())
}

/// Up to `limit` (1-100) users after `cursor`.
pub fn list_users(limit: u32, cursor: Option<&str>) -> Result<UserPage> {
    let page = wit::list_users(limit, cursor)?;
    Ok(UserPage { items: page.items.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor })
}

/// Applies `patch` to user `id`; nothing is written unless every field is valid.
pub fn update_user(id: &str, patch: UserPatch) -> Result<User> {
    Ok(wit::update_user(id, &patch)?.into())
}

/// Deletes user `id`.
pub fn delete_user(id: &str) -> Result<()> {
    Ok(wit::delete_user(id)?)
}

/// Replaces user `id`'s password (the host's password policy applies).
pub fn set_password(id: &str, password: &str) -> Result<()> {
    Ok(wit::set_password(id, password)?)
}

/// The active user with these credentials, or `Unauthorized`.
pub fn verify_credentials(email: &str, password: &str) -> Result<User> {
    Ok(wit::verify_credentials(email, password)?.into())
}

impl From<wit::User> for User {
    fn from(user: wit::User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            permissions: user.permissions,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}
