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
use crate::{Error, Result};

/// Most documents one [`Collection::list`] returns.
pub const MAX_PAGE: u32 = 100;

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
        self.get(id)?.ok_or_else(|| Error::not_found(format!("no {} `{id}`", self.name)))
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
        Ok(wit::delete(self.name, id)?)
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
