//! JSON documents in the collections the manifest declares under `[capabilities.records]`, each
//! `"shared"` (one set for every user) or `"user"` (the caller's own; the host picks the user, so
//! a plugin cannot reach another user's documents). Reads are cached by the host; a read after a
//! write always sees the write.
//!
//! ```ignore
//! #[derive(Serialize, Deserialize)]
//! struct Note { title: String }
//!
//! const NOTES: Collection<Note> = Collection::new("notes");
//! let note = NOTES.create(&Note { title: "Groceries".into() })?;
//! let same = NOTES.get(&note.id)?;
//! ```

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::bindings::autoflow::platform::records as wit;
use crate::{Error, Request, Result};

/// Most documents one [`Collection::list`] returns.
pub const MAX_PAGE: u32 = 100;
/// Documents per page of [`Collection::page`] when the client names no `limit`.
pub const DEFAULT_PAGE: u32 = 20;

/// A typed handle on one declared collection; `T` is the documents' shape.
pub struct Collection<T> {
    name: &'static str,
    _documents: PhantomData<fn() -> T>,
}

/// A stored document with its metadata. Serializes as the document's fields plus `id`, `version`,
/// `createdAt` and `updatedAt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    pub id: String,
    /// 1 when created, incremented by every update: pass it to [`Collection::update`] to update
    /// only what you read.
    pub version: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    pub data: T,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<Record<T>>,
    /// Pass to [`Collection::list`] for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Collection<T> {
    /// The collection named `name` in the manifest.
    pub const fn new(name: &'static str) -> Self {
        Self { name, _documents: PhantomData }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    /// Document `id`, or `None`.
    pub fn get(&self, id: &str) -> Result<Option<Record<T>>> {
        wit::get(self.name, id)?.map(decode).transpose()
    }

    /// Document `id`, or a `404` naming it.
    pub fn require(&self, id: &str) -> Result<Record<T>> {
        self.get(id)?.ok_or_else(|| self.not_found(id))
    }

    /// The page a list request asks for: `?limit=` (1-[`MAX_PAGE`], default [`DEFAULT_PAGE`]; else
    /// `400` naming `limit`) documents after `?cursor=`. Answer it with [`Response::json`]: it
    /// serializes as `{"items": [...], "nextCursor": …}`.
    ///
    /// [`Response::json`]: crate::Response::json
    pub fn page(&self, req: &Request) -> Result<Page<T>> {
        self.list(page_limit(req.query("limit"))?, req.query("cursor"))
    }

    /// Applies the request's JSON body to document `id` as a merge patch (fields given replace,
    /// `null` removes, others stay). The merged document must still decode as `T` (`400` for an
    /// unknown field or a wrong type), then `check` may normalise it and refuse it (`Err`). It is
    /// written only if the document did not change since it was read here, nor, with `If-Match`,
    /// since the version the client read (`412`); `404` if there is no document `id`.
    pub fn patch(&self, id: &str, req: &Request, check: impl FnOnce(&mut T) -> Result<()>) -> Result<Record<T>> {
        let patch: serde_json::Value = req.json()?;
        if !patch.is_object() {
            return Err(Error::invalid("the body must be a JSON object of the fields to change"));
        }
        let current = self.require(id)?;
        let expected = req.if_match()?;
        if expected.is_some_and(|version| version != current.version) {
            return Err(self.changed(id, current.version));
        }
        let stored = serde_json::to_value(&current.data).map_err(|e| Error::internal(e.to_string()))?;
        let mut merged = stored.clone();
        merge(&mut merged, &patch);
        let mut data: T =
            serde_json::from_value(merged).map_err(|e| Error::invalid(format!("the change is not valid: {e}")))?;
        check(&mut data)?;
        let changes = difference(&stored, &serde_json::to_value(&data).map_err(|e| Error::internal(e.to_string()))?);
        match wit::update(self.name, id, &encode(&changes)?, Some(current.version)) {
            Err(wit::Error::Conflict(_)) if expected.is_some() => Err(self.changed(id, current.version)),
            Err(wit::Error::Conflict(_)) => {
                Err(Error::conflict(format!("{} `{id}` changed while it was updated; try again", self.name)))
            }
            Err(wit::Error::NotFound(_)) => Err(self.not_found(id)),
            result => decode(result?),
        }
    }

    /// Up to `limit` documents (1-[`MAX_PAGE`]) in id order, after `cursor`.
    pub fn list(&self, limit: u32, cursor: Option<&str>) -> Result<Page<T>> {
        let page = wit::list_documents(self.name, limit, cursor)?;
        Ok(Page { items: page.items.into_iter().map(decode).collect::<Result<_>>()?, next_cursor: page.next_cursor })
    }

    /// Stores `value` under a new UUIDv7 id.
    pub fn create(&self, value: &T) -> Result<Record<T>> {
        decode(wit::create(self.name, None, &encode(value)?)?)
    }

    /// Stores `value` under `id`; `409` if the id is taken.
    pub fn create_with_id(&self, id: &str, value: &T) -> Result<Record<T>> {
        decode(wit::create(self.name, Some(id), &encode(value)?)?)
    }

    /// Merges `patch` into document `id` (JSON merge patch: fields set replace, `null` removes);
    /// with `expected_version`, only if it is still at that version (else `409`).
    pub fn update<P: Serialize>(&self, id: &str, patch: &P, expected_version: Option<u64>) -> Result<Record<T>> {
        decode(wit::update(self.name, id, &encode(patch)?, expected_version)?)
    }

    /// Removes document `id`; `404` if there is none.
    pub fn delete(&self, id: &str) -> Result<()> {
        match wit::delete(self.name, id) {
            Err(wit::Error::NotFound(_)) => Err(self.not_found(id)),
            result => Ok(result?),
        }
    }

    /// The one `404` every method answers for a missing document.
    fn not_found(&self, id: &str) -> Error {
        Error::not_found(format!("no {} `{id}`", self.name))
    }

    /// The `412` for a document that is no longer at the version the client read.
    fn changed(&self, id: &str, version: u64) -> Error {
        Error::PreconditionFailed(format!(
            "{} `{id}` changed since you read it (it is at version {version}); read it again",
            self.name
        ))
    }
}

/// The page size a `?limit=` asks for: 1-[`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
fn page_limit(raw: Option<&str>) -> Result<u32> {
    let Some(raw) = raw else { return Ok(DEFAULT_PAGE) };
    raw.parse()
        .ok()
        .filter(|limit| (1..=MAX_PAGE).contains(limit))
        .ok_or_else(|| Error::invalid_field("limit", format!("must be a whole number from 1 to {MAX_PAGE}")))
}

/// Applies an RFC 7396 JSON merge patch to `target`: an object patch merges member by member
/// (`null` removes), anything else replaces.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    let fields = target.as_object_mut().expect("made an object above");
    for (key, value) in changes {
        if value.is_null() {
            fields.remove(key);
        } else {
            merge(fields.entry(key.clone()).or_insert(serde_json::Value::Null), value);
        }
    }
}

/// The merge patch that turns `from` into `to`.
fn difference(from: &serde_json::Value, to: &serde_json::Value) -> serde_json::Value {
    let (serde_json::Value::Object(before), serde_json::Value::Object(after)) = (from, to) else {
        return to.clone();
    };
    let mut changes = serde_json::Map::new();
    for (key, value) in after {
        match before.get(key) {
            Some(old) if old == value => {}
            Some(old) if old.is_object() && value.is_object() => {
                changes.insert(key.clone(), difference(old, value));
            }
            _ => {
                changes.insert(key.clone(), value.clone());
            }
        }
    }
    for key in before.keys().filter(|key| !after.contains_key(*key)) {
        changes.insert(key.clone(), serde_json::Value::Null);
    }
    serde_json::Value::Object(changes)
}

impl<T> Record<T> {
    /// Its `ETag`, `"<version>"`: [`Request::if_match`] reads it back.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

fn encode<V: Serialize>(value: &V) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("cannot encode document: {e}")))
}

fn decode<T: DeserializeOwned>(document: wit::Document) -> Result<Record<T>> {
    let data = serde_json::from_str(&document.data).map_err(|e| {
        Error::internal(format!("stored document `{}` does not match the plugin's type: {e}", document.id))
    })?;
    Ok(Record {
        id: document.id,
        version: document.version,
        created_at: document.created_at,
        updated_at: document.updated_at,
        data,
    })
}

impl<T: Serialize> Serialize for Record<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Flat<'a, T> {
            id: &'a str,
            #[serde(flatten)]
            data: &'a T,
            version: u64,
            created_at: &'a str,
            updated_at: &'a str,
        }
        Flat {
            id: &self.id,
            data: &self.data,
            version: self.version,
            created_at: &self.created_at,
            updated_at: &self.updated_at,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_merge_patch_replaces_given_fields_and_removes_nulls() {
        let mut document = json!({ "title": "a", "tags": ["x"], "meta": { "seen": true, "by": "ada" } });
        merge(&mut document, &json!({ "title": "b", "tags": null, "meta": { "by": null, "at": 1 } }));
        assert_eq!(document, json!({ "title": "b", "meta": { "seen": true, "at": 1 } }));
    }

    #[test]
    fn the_difference_of_two_documents_is_the_merge_patch_between_them() {
        let before = json!({ "title": "a", "tags": ["x"], "meta": { "seen": true, "by": "ada" }, "n": 1 });
        let after = json!({ "title": "b", "meta": { "seen": true, "at": 2 }, "n": 1 });
        let changes = difference(&before, &after);
        assert_eq!(changes, json!({ "title": "b", "tags": null, "meta": { "by": null, "at": 2 } }));
        let mut patched = before.clone();
        merge(&mut patched, &changes);
        assert_eq!(patched, after);
    }

    #[test]
    fn a_page_limit_is_one_to_the_maximum_or_a_400_naming_limit() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            let Err(Error::Invalid { fields, .. }) = page_limit(Some(bad)) else { panic!("{bad} accepted") };
            assert_eq!(fields[0].field, "limit");
        }
    }
}
