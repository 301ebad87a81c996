//! Watches the plugins directory and reloads a plugin when its files change.
//!
//! File events are debounced, mapped to plugin names and collected in a set; one task drains the
//! set and reloads each name. A storm of writes therefore queues at most one reload per plugin,
//! which compiles the build that has settled by the time it runs.

use std::collections::BTreeSet;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::Notify;

use super::LivePlugins;

/// Quiet time after the last file event before a change is acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Names waiting for a reload.
#[derive(Default)]
struct Pending {
    names: Mutex<BTreeSet<String>>,
    wake: Notify,
}

/// A running watcher; dropping it stops watching.
pub struct PluginWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PluginWatcher {
    /// Starts watching `live`'s plugins directory.
    pub fn start(live: Arc<LivePlugins>) -> notify_debouncer_full::notify::Result<Self> {
        let dir = std::fs::canonicalize(live.dir()).unwrap_or_else(|_| live.dir().to_owned());
        let pending = Arc::new(Pending::default());

        let sink = pending.clone();
        let root = dir.clone();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
            Ok(events) => {
                let mut names = sink.names.lock().expect("pending lock");
                let before = names.len();
                let changes = events.iter().filter(|event| changes_content(&event.kind));
                names.extend(changes.flat_map(|e| e.paths.iter()).filter_map(|p| plugin_name(&root, p)));
                if names.len() > before {
                    sink.wake.notify_one();
                }
            }
            Err(errors) => errors.iter().for_each(|error| tracing::warn!(%error, "watching plugins failed")),
        })?;
        debouncer.watch(&dir, RecursiveMode::Recursive)?;
        tracing::info!(dir = %dir.display(), "watching plugins for changes");

        let task = tokio::spawn(async move {
            loop {
                pending.wake.notified().await;
                let names = std::mem::take(&mut *pending.names.lock().expect("pending lock"));
                for name in names {
                    // Failures are logged and kept for the admin API by `reload` itself.
                    let _ = live.reload(&name).await;
                }
            }
        });
        Ok(Self { _debouncer: debouncer, task })
    }
}

/// Whether an event can change what a plugin directory holds. Reads (the host's own loads among
/// them) and metadata changes cannot; were they acted on, every reload would trigger the next.
/// Closing a file opened for writing can.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Other => true,
    }
}

/// The plugin a changed path belongs to: the first component below the plugins directory, unless
/// hidden (build and staging directories are only published through their visible link).
fn plugin_name(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    match relative.components().next()? {
        Component::Normal(name) => {
            let name = name.to_string_lossy();
            (!name.starts_with('.')).then(|| name.into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_metadata_changes_are_not_changes() {
        use notify_debouncer_full::notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(AccessMode::Read))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!changes_content(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Data(DataChange::Content))));
        assert!(changes_content(&EventKind::Remove(RemoveKind::Any)));
    }

    #[test]
    fn paths_map_to_their_plugin_and_hidden_builds_are_ignored() {
        let root = Path::new("/srv/plugins");
        assert_eq!(plugin_name(root, Path::new("/srv/plugins/hello/plugin.wasm")).as_deref(), Some("hello"));
        assert_eq!(plugin_name(root, Path::new("/srv/plugins/hello")).as_deref(), Some("hello"));
        assert_eq!(plugin_name(root, Path::new("/srv/plugins/.hello.1234/plugin.wasm")), None);
        assert_eq!(plugin_name(root, Path::new("/srv/plugins")), None);
        assert_eq!(plugin_name(root, Path::new("/elsewhere/hello")), None);
    }
}
