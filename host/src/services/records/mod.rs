//! Records: plugins' JSON documents, the Rust form of the seed's repositories over "shared" and
//! "standard" (user-scoped) data. The service validates documents, applies merge patches with
//! optimistic concurrency and reads cache-aside:
//!
//! - a read that misses loads the row and fills the cache only if the key is still empty, so it
//!   never overwrites the fresher entry a concurrent write just stored;
//! - every write stores what it wrote (a delete stores a tombstone), so a read after a write is
//!   never stale, whichever host serves it.
//!
//! Callers resolve scope first: a [`CollectionRef`] names the plugin, collection and owner.

mod document;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::db::{CollectionRef, Database, DbError, RecordRow};
use crate::services::cache::{Cache, FINAL_VERSION, Quota};

pub use document::{Document, MAX_DOCUMENT_BYTES, MAX_ID_LEN};

/// Most documents one `list` call returns.
pub const MAX_PAGE: u32 = 100;
/// How long a read stays cached.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Attempts at an update that keeps losing to concurrent writers before it reports `conflict`.
const UPDATE_ATTEMPTS: usize = 10;

/// Why a records operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The input is malformed; `field` names the argument at fault.
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("no document `{0}` in this collection")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> RecordsError {
    RecordsError::Invalid { field, message: message.into() }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Document>,
    pub next_cursor: Option<String>,
}

/// Counts of how reads were served, for operators and for proving the cache works.
#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    database_reads: AtomicU64,
    writes: AtomicU64,
}

/// A snapshot of the records counters since the host started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordStats {
    /// Single-document reads answered from the cache.
    pub cache_hits: u64,
    /// Single-document reads the cache could not answer.
    pub cache_misses: u64,
    /// Queries that read documents from the database (misses, listings, updates).
    pub database_reads: u64,
    /// Creates, updates and deletes.
    pub writes: u64,
}

/// What the cache holds for one document id: the document, or that there is none.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    document: Option<Document>,
}

/// The records service; cheap to clone.
#[derive(Clone)]
pub struct Records {
    db: Database,
    cache: Cache,
    /// Cache bytes each plugin may hold: its documents cached here count against the same quota
    /// as its own cache entries, so a plugin cannot crowd the cache by way of records either.
    quota_bytes: u64,
    counters: Arc<Counters>,
}

impl Records {
    pub fn new(db: Database, cache: Cache, quota_bytes: u64) -> Self {
        Self { db, cache, quota_bytes, counters: Arc::default() }
    }

    fn quota(&self, at: CollectionRef<'_>) -> Quota {
        Quota { name: at.plugin.into(), bytes: self.quota_bytes }
    }

    /// How reads have been served so far.
    pub fn stats(&self) -> RecordStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RecordStats {
            cache_hits: read(&self.counters.cache_hits),
            cache_misses: read(&self.counters.cache_misses),
            database_reads: read(&self.counters.database_reads),
            writes: read(&self.counters.writes),
        }
    }

    /// Document `id`, from the cache when it has it.
    #[tracing::instrument(skip(self), fields(plugin = at.plugin, collection = at.collection))]
    pub async fn get(&self, at: CollectionRef<'_>, id: &str) -> Result<Option<Document>, RecordsError> {
        document::check_id("id", id)?;
        let key = cache_key(at, id);
        if let Some(entry) = self
            .cache
            .get_versioned(&key)
            .await
            .and_then(|(_, bytes)| serde_json::from_slice::<CacheEntry>(&bytes).ok())
        {
            self.count(&self.counters.cache_hits);
            return Ok(entry.document);
        }
        self.count(&self.counters.cache_misses);
        self.count(&self.counters.database_reads);
        let document = self.db.record(at, id).await?.map(Document::from_row).transpose()?;
        let entry = CacheEntry { document };
        // Over whatever a write stored meanwhile, never; with the plugin's quota spent the
        // document is simply not cached.
        let version = entry.document.as_ref().map_or(0, |document| document.version);
        let _ =
            self.cache.set_versioned_within(&self.quota(at), &key, version, &encode(&entry), CACHE_TTL, false).await;
        Ok(entry.document)
    }

    /// Up to `limit` documents in id order after `cursor` (the previous page's `next_cursor`; a
    /// cursor this API did not make is refused, not read as an empty page).
    #[tracing::instrument(skip(self), fields(plugin = at.plugin, collection = at.collection))]
    pub async fn list(&self, at: CollectionRef<'_>, limit: u32, cursor: Option<&str>) -> Result<Page, RecordsError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(invalid("limit", format!("limit must be between 1 and {MAX_PAGE}, got {limit}")));
        }
        let after = match cursor {
            Some(cursor) => decode_cursor(cursor)
                .filter(|id| document::check_id("cursor", id).is_ok())
                .ok_or_else(|| invalid("cursor", "cursor is not one this API returned"))?,
            None => String::new(),
        };
        self.count(&self.counters.database_reads);
        let rows = self.db.records_page(at, &after, limit + 1).await?;
        let more = rows.len() > limit as usize;
        let items = rows.into_iter().take(limit as usize).map(Document::from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if more { items.last().map(|d| encode_cursor(&d.id)) } else { None };
        Ok(Page { items, next_cursor })
    }

    /// Stores `data` (a JSON object) as a new document `id`, or under a fresh UUIDv7.
    #[tracing::instrument(skip(self, data), fields(plugin = at.plugin, collection = at.collection))]
    pub async fn create(&self, at: CollectionRef<'_>, id: Option<&str>, data: &str) -> Result<Document, RecordsError> {
        let id = match id {
            Some(id) => {
                document::check_id("id", id)?;
                id.to_owned()
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        let data = document::parse_object("data", data)?;
        let now = Utc::now();
        let row = RecordRow { id, data: document::encode_object(&data)?, version: 1, created_at: now, updated_at: now };
        self.count(&self.counters.writes);
        match self.db.insert_record(at, &row).await {
            Err(error) if error.is_unique_violation() => {
                return Err(RecordsError::Conflict(format!("a document with id `{}` already exists", row.id)));
            }
            result => result?,
        }
        let document = Document::from_row(row)?;
        self.store(at, &document.id, Written::Created(document.clone())).await;
        Ok(document)
    }

    /// Applies the JSON merge patch `patch` to document `id`; with `expected_version`, only if the
    /// document is still at that version.
    #[tracing::instrument(skip(self, patch), fields(plugin = at.plugin, collection = at.collection))]
    pub async fn update(
        &self,
        at: CollectionRef<'_>,
        id: &str,
        patch: &str,
        expected_version: Option<u64>,
    ) -> Result<Document, RecordsError> {
        document::check_id("id", id)?;
        let patch = document::parse_object("patch", patch)?;
        for _ in 0..UPDATE_ATTEMPTS {
            self.count(&self.counters.database_reads);
            let Some(current) = self.db.record(at, id).await? else {
                return Err(RecordsError::NotFound(id.to_owned()));
            };
            if let Some(expected) = expected_version.filter(|v| i64::try_from(*v).ok() != Some(current.version)) {
                return Err(RecordsError::Conflict(format!(
                    "document `{id}` is at version {}, not {expected}",
                    current.version
                )));
            }
            let mut data = document::parse_object("data", &current.data)?;
            json_patch::merge(&mut data, &patch);
            let data = document::encode_object(&data)?;
            self.count(&self.counters.writes);
            if let Some(row) = self.db.update_record(at, id, current.version, &data).await? {
                let document = Document::from_row(row)?;
                self.store(at, id, Written::Updated(document.clone())).await;
                return Ok(document);
            }
            // Another writer got there first (or deleted it): read again and re-apply.
        }
        Err(RecordsError::Conflict(format!("document `{id}` keeps changing; try again")))
    }

    /// Removes document `id`.
    #[tracing::instrument(skip(self), fields(plugin = at.plugin, collection = at.collection))]
    pub async fn delete(&self, at: CollectionRef<'_>, id: &str) -> Result<(), RecordsError> {
        document::check_id("id", id)?;
        self.count(&self.counters.writes);
        if !self.db.delete_record(at, id).await? {
            return Err(RecordsError::NotFound(id.to_owned()));
        }
        self.store(at, id, Written::Deleted).await;
        Ok(())
    }

    /// Records what a write left behind, over whatever a reader cached before it. Versions keep
    /// writes that finish out of order from leaving the older document: an update is stored only
    /// over an older version, a deletion as a tombstone above every version, and a creation (the
    /// document is new, perhaps after a deletion) over anything. With the plugin's quota spent,
    /// the entry is removed instead, so no read sees an older one.
    async fn store(&self, at: CollectionRef<'_>, id: &str, written: Written) {
        let (version, replace, document) = match written {
            Written::Created(document) => (document.version, true, Some(document)),
            Written::Updated(document) => (document.version, false, Some(document)),
            Written::Deleted => (FINAL_VERSION, false, None),
        };
        let (entry, key, quota) = (CacheEntry { document }, cache_key(at, id), self.quota(at));
        let stored = self.cache.set_versioned_within(&quota, &key, version, &encode(&entry), CACHE_TTL, replace).await;
        if stored.is_err() {
            self.cache.delete_within(&quota, &key).await;
        }
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The seed's key format: `records/{plugin}/{collection}/{id}` for shared documents and
/// `records/{plugin}/{collection}/{user}/{id}` for a user's (ids and collection names have no `/`).
fn cache_key(at: CollectionRef<'_>, id: &str) -> String {
    if at.owner.is_empty() {
        format!("records/{}/{}/{id}", at.plugin, at.collection)
    } else {
        format!("records/{}/{}/{}/{id}", at.plugin, at.collection, at.owner)
    }
}

/// What a write did to a document, for [`Records::store`].
enum Written {
    Created(Document),
    Updated(Document),
    Deleted,
}

fn encode(entry: &CacheEntry) -> Vec<u8> {
    serde_json::to_vec(entry).expect("a cache entry is plain JSON")
}

/// What a cursor's text starts with once decoded, so a string this API did not make is told apart.
const CURSOR_MARK: &str = "records:after:";

/// The opaque cursor of the page after document `id`.
fn encode_cursor(id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_MARK}{id}"))
}

/// The document id a cursor from [`encode_cursor`] stands for.
fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine as _;
    let text = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    text.strip_prefix(CURSOR_MARK).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_user_documents_have_distinct_keys() {
        let shared = CollectionRef { plugin: "notes", collection: "tags", owner: "" };
        let user = CollectionRef { owner: "0190-user", ..shared };
        assert_eq!(cache_key(shared, "a"), "records/notes/tags/a");
        assert_eq!(cache_key(user, "a"), "records/notes/tags/0190-user/a");
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let cursor = encode_cursor("0190f1c2-7d1e-7000-8000-000000000000");
        assert_eq!(decode_cursor(&cursor).as_deref(), Some("0190f1c2-7d1e-7000-8000-000000000000"));
        for stranger in ["garbage", "0190f1c2-7d1e-7000-8000-000000000000", "", "%%%"] {
            assert_eq!(decode_cursor(stranger), None, "{stranger}");
        }
    }
}
