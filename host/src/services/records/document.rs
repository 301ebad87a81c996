//! A document and the rules its parts follow: ids, JSON-object data, size.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RecordsError, invalid};
use crate::db::RecordRow;

/// Largest document, in bytes of compact JSON.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Longest id, in characters.
pub const MAX_ID_LEN: usize = 128;

/// A stored document; `data` is a JSON object in compact form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub data: String,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Document {
    /// The document a row holds, its data in the same compact form whichever database stored it
    /// (PostgreSQL's JSONB prints its own way).
    pub(super) fn from_row(row: RecordRow) -> Result<Self, RecordsError> {
        let data = parse_object("data", &row.data)?;
        Ok(Self {
            id: row.id,
            data: data.to_string(),
            version: u64::try_from(row.version).unwrap_or_default(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Checks that `id` is 1-[`MAX_ID_LEN`] characters of `A-Z a-z 0-9 - _ . :`.
pub(super) fn check_id(field: &'static str, id: &str) -> Result<(), RecordsError> {
    let valid = (1..=MAX_ID_LEN).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{field} must be 1-{MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.' and ':'"),
        ))
    }
}

/// Parses `text` as a JSON object without NUL characters (which PostgreSQL cannot store).
pub(super) fn parse_object(field: &'static str, text: &str) -> Result<Value, RecordsError> {
    // Whitespace and escapes shrink when re-encoded, so only absurd input is refused unparsed.
    if text.len() > 4 * MAX_DOCUMENT_BYTES {
        return Err(too_large(field, text.len()));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|error| invalid(field, format!("{field} is not valid JSON: {error}")))?;
    if !value.is_object() {
        return Err(invalid(field, format!("{field} must be a JSON object")));
    }
    if contains_nul(&value) {
        return Err(invalid(field, format!("{field} must not contain NUL characters (\\u0000)")));
    }
    Ok(value)
}

/// `value` in compact form, if it is within [`MAX_DOCUMENT_BYTES`].
pub(super) fn encode_object(value: &Value) -> Result<String, RecordsError> {
    let text = value.to_string();
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(too_large("data", text.len()));
    }
    Ok(text)
}

fn too_large(field: &'static str, bytes: usize) -> RecordsError {
    invalid(field, format!("documents are at most {MAX_DOCUMENT_BYTES} bytes, this one is {bytes}"))
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_bounded() {
        for good in ["a", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "note_1.v2:x"] {
            assert!(check_id("id", good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "é", &"x".repeat(129), "../etc"] {
            assert!(check_id("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_are_objects_without_nul_within_the_size_limit() {
        assert!(parse_object("data", r#"{"a": [1, {"b": null}]}"#).is_ok());
        for bad in ["[1]", "\"text\"", "42", "null", "{", r#"{"a": "\u0000"}"#, r#"{"\u0000": 1}"#] {
            assert!(matches!(parse_object("data", bad), Err(RecordsError::Invalid { .. })), "{bad}");
        }
        let big = serde_json::json!({ "text": "x".repeat(MAX_DOCUMENT_BYTES) });
        assert!(matches!(encode_object(&big), Err(RecordsError::Invalid { .. })));
    }
}
