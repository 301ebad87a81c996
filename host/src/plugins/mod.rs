//! Plugins: loading their builds (manifests are parsed by [`crate::spec::manifest`]) from a directory into compiled, linked components,
//! and the registry that maps each request to the plugin serving it.

mod ceilings;
pub mod fanout;
mod live;
mod loader;
mod registry;
pub mod routes;
mod uploads;
mod watcher;

pub use live::{LivePlugins, ReloadFailure, ReloadOutcome};
pub use loader::{LoadError, LoadErrors, LoadedPlugin, Loader, PluginBusy, load_dir};
pub use registry::Registry;
pub use uploads::{InstallError, sync_dir_from_db};
pub use watcher::{DEBOUNCE as WATCH_DEBOUNCE, PluginWatcher};
