//! `autoflow:platform/records`: the records service for plugins that declare collections. The
//! host resolves each call's scope from the manifest: a `shared` collection is the plugin's, a
//! `user` collection belongs to the user bound to the instance, never to one the plugin names.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::SecondsFormat;

use wasmtime::component::Linker;

use super::{Bound, HasBound, Instance, LoadContext, Unit};
use crate::contract::{PluginError, wit::records as wit};
use crate::db::CollectionRef;
use crate::services::records::{Document, Records, RecordsError};
use crate::spec::CollectionScope;
use crate::spec::grants::{self, Capability};

/// The records service as one plugin sees it: its collections and their scopes.
#[derive(Clone)]
pub struct PluginRecords {
    records: Records,
    plugin: Arc<str>,
    collections: Arc<BTreeMap<String, CollectionScope>>,
}

impl PluginRecords {
    pub fn new(records: Records, plugin: &str, collections: BTreeMap<String, CollectionScope>) -> Self {
        Self { records, plugin: plugin.into(), collections: Arc::new(collections) }
    }
}

impl Unit for PluginRecords {
    const CAPABILITY: &'static Capability = &grants::RECORDS;

    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        let (collections, plugin) = (&load.manifest.capabilities.records, load.manifest.name.as_str());
        Self::CAPABILITY
            .is_granted(load.manifest)
            .then(|| Self::new(load.services.records.clone(), plugin, collections.clone()))
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wit::add_to_linker::<_, HasBound<Self>>(linker, |state| state.grants.bound(|grants| grants.records.as_ref()))
    }
}

impl Bound<'_, PluginRecords> {
    /// The service and the resolved place of `collection`, or why this call may not use it.
    fn collection<'a>(&'a self, collection: &'a str) -> Result<(&'a Records, CollectionRef<'a>), PluginError> {
        let granted = self.granted()?;
        let scope = granted.collections.get(collection).ok_or_else(|| {
            PluginError::Forbidden(format!("collection `{collection}` is not declared in [capabilities.records]"))
        })?;
        let owner = match scope {
            CollectionScope::Shared => "",
            CollectionScope::User => self.call.user_id().ok_or_else(|| {
                PluginError::Unauthorized(format!(
                    "collection `{collection}` holds each user's own documents and this call has no authenticated user"
                ))
            })?,
        };
        Ok((&granted.records, CollectionRef { plugin: &granted.plugin, collection, owner }))
    }
}

impl wit::Host for Bound<'_, PluginRecords> {
    #[tracing::instrument(name = "records.get", skip_all, fields(collection = %collection))]
    async fn get(&mut self, collection: String, id: String) -> Result<Option<wit::Document>, PluginError> {
        let (records, at) = self.collection(&collection)?;
        Ok(records.get(at, &id).await?.map(to_wit))
    }

    #[tracing::instrument(name = "records.list_documents", skip_all, fields(collection = %collection))]
    async fn list_documents(
        &mut self,
        collection: String,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<wit::Page, PluginError> {
        let (records, at) = self.collection(&collection)?;
        let page = records.list(at, limit, cursor.as_deref()).await?;
        Ok(wit::Page { items: page.items.into_iter().map(to_wit).collect(), next_cursor: page.next_cursor })
    }

    #[tracing::instrument(name = "records.create", skip_all, fields(collection = %collection))]
    async fn create(
        &mut self,
        collection: String,
        id: Option<String>,
        data: String,
    ) -> Result<wit::Document, PluginError> {
        let (records, at) = self.collection(&collection)?;
        Ok(to_wit(records.create(at, id.as_deref(), &data).await?))
    }

    #[tracing::instrument(name = "records.update", skip_all, fields(collection = %collection))]
    async fn update(
        &mut self,
        collection: String,
        id: String,
        patch: String,
        expected_version: Option<u64>,
    ) -> Result<wit::Document, PluginError> {
        let (records, at) = self.collection(&collection)?;
        Ok(to_wit(records.update(at, &id, &patch, expected_version).await?))
    }

    #[tracing::instrument(name = "records.delete", skip_all, fields(collection = %collection))]
    async fn delete(&mut self, collection: String, id: String) -> Result<(), PluginError> {
        let (records, at) = self.collection(&collection)?;
        Ok(records.delete(at, &id).await?)
    }
}

impl From<RecordsError> for PluginError {
    fn from(error: RecordsError) -> Self {
        match error {
            RecordsError::Invalid { field, message } => PluginError::invalid_field(field, message),
            RecordsError::NotFound(_) => PluginError::NotFound(error.to_string()),
            RecordsError::Conflict(message) => PluginError::Conflict(message),
            RecordsError::Database(source) => {
                tracing::error!(error = %source, "records capability: database failure");
                PluginError::Unavailable("the record store is unavailable".into())
            }
        }
    }
}

fn to_wit(document: Document) -> wit::Document {
    wit::Document {
        id: document.id,
        data: document.data,
        version: document.version,
        created_at: document.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        updated_at: document.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}
