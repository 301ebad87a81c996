//! The identity domain's values, each parsed once at the edge: what exists past `parse` is valid.

use secrecy::{ExposeSecret, SecretString};

/// Shortest and longest password accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Most permissions one user may hold.
pub const MAX_PERMISSIONS: usize = 32;

/// An email address: trimmed, at most 254 characters, `local@domain` with a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address like name@example.com".into());
        };
        let well_formed = email.chars().count() <= 254
            && (1..=64).contains(&local.len())
            && !local.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty() && label.len() <= 63)
            && !email.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
        if well_formed {
            Ok(Self(email.to_owned()))
        } else {
            Err("must be an email address like name@example.com".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive form emails are unique by.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(local, _)| local).unwrap_or(&self.0)
    }
}

/// A password that meets the policy: 10 to 128 characters, not only whitespace.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub fn parse(raw: SecretString) -> Result<Self, String> {
        let chars = raw.expose_secret().chars().count();
        if chars < PASSWORD_MIN_CHARS {
            Err(format!("must be at least {PASSWORD_MIN_CHARS} characters long"))
        } else if chars > PASSWORD_MAX_CHARS {
            Err(format!("must be at most {PASSWORD_MAX_CHARS} characters long"))
        } else if raw.expose_secret().trim().is_empty() {
            Err("must not be only whitespace".into())
        } else {
            Ok(Self(raw))
        }
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 100 {
            Err("must be 1 to 100 characters long".into())
        } else if name.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set of permissions such as `admin` or `read:users`: each 1 to 64 characters of `a-z`, `0-9`
/// and `:_.-`; at most [`MAX_PERMISSIONS`], sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions(Vec<String>);

impl Permissions {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, String> {
        let mut permissions = Vec::with_capacity(raw.len());
        for permission in raw {
            let permission = permission.as_ref().trim();
            let valid = (1..=64).contains(&permission.len())
                && permission.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ":_.-".contains(c));
            if !valid {
                return Err(format!("`{permission}` is not a permission: use 1-64 characters of a-z, 0-9 and :_.-"));
            }
            permissions.push(permission.to_owned());
        }
        permissions.sort();
        permissions.dedup();
        if permissions.len() > MAX_PERMISSIONS {
            return Err(format!("at most {MAX_PERMISSIONS} permissions"));
        }
        Ok(Self(permissions))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// A user id: a UUID in its canonical hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// `None` for anything that is not a UUID (no such user can exist).
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::parse_str(raw).ok().map(|id| Self(id.hyphenated().to_string()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for good in ["a@b.co", "  Ada.Lovelace+x@Example.ORG ", "o'brien@mail.example.com"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "plain", "@b.co", "a@", "a@b", "a@b..co", "a b@c.de", "a\n@b.co", "<a@b.co>"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let email = Email::parse(" Ada@Example.ORG").unwrap();
        assert_eq!(
            (email.as_str(), email.key().as_str(), email.local_part()),
            ("Ada@Example.ORG", "ada@example.org", "Ada")
        );
    }

    #[test]
    fn password_policy() {
        let parse = |s: &str| Password::parse(SecretString::from(s));
        assert!(parse("short").unwrap_err().contains("at least 10"));
        assert!(parse(&"x".repeat(129)).unwrap_err().contains("at most 128"));
        assert!(parse("           ").unwrap_err().contains("whitespace"));
        assert!(parse("ten chars!").is_ok());
        assert!(parse("ünïcödé-ñ10").is_ok());
    }

    #[test]
    fn permissions_are_sorted_deduplicated_and_checked() {
        let parsed = Permissions::parse(&["read:users", "admin", "admin"]).unwrap();
        assert_eq!(parsed.as_slice(), ["admin", "read:users"]);
        assert!(Permissions::parse(&["Admin"]).is_err());
        assert!(Permissions::parse(&["a b"]).is_err());
        assert!(Permissions::parse(&[""]).is_err());
    }

    #[test]
    fn user_ids_are_canonical_uuids() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(&id.as_str().to_uppercase()), Some(id));
        assert_eq!(UserId::parse("1; DROP TABLE users"), None);
    }
}
