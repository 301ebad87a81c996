//! `autoflow users …`: user management straight against the database, for bootstrapping a fresh
//! install (the first admin) without a running host.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use secrecy::SecretString;

use crate::cli::DatabaseArgs;
use crate::db::Database;
use crate::services::cache::Cache;
use crate::services::identity::{Identity, IdentityError, NewUser, User};
use crate::services::passwords::Passwords;

/// The environment variable a new user's password may come from.
pub const PASSWORD_ENV: &str = "AUTOFLOW_USER_PASSWORD";

/// Creates a user, migrating the database first; every invalid field is named in the error.
pub async fn create(
    email: String,
    display_name: Option<String>,
    permissions: Vec<String>,
    database: &DatabaseArgs,
) -> anyhow::Result<User> {
    let password = read_password()?;
    let db = Database::connect(database.database_url.as_ref(), &database.data_dir).await?;
    db.migrate().await?;
    // A new user is in no cache yet, so this process needs none shared with the hosts.
    let identity = Identity::new(db.clone(), Passwords::default(), Cache::memory());
    let created = identity.create(NewUser { email, display_name, password, permissions }).await;
    db.close().await;
    created.map_err(|error| match error {
        IdentityError::Invalid { fields, .. } => {
            let reasons: Vec<String> = fields.iter().map(|(field, why)| format!("{field} {why}")).collect();
            anyhow::anyhow!("the user is not valid: {}", reasons.join("; "))
        }
        other => anyhow::Error::new(other),
    })
}

/// The password from [`PASSWORD_ENV`], else a line of stdin (no echo on a terminal).
fn read_password() -> anyhow::Result<SecretString> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(SecretString::from(password));
    }
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").context("reading the password from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        anyhow::bail!("no password given: pipe it on stdin or set {PASSWORD_ENV}");
    }
    Ok(SecretString::from(password))
}
