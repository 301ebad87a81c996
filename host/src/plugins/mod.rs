//! Plugins: their manifests, loading them from a directory into compiled, linked components,
//! and the registry that maps each request to the plugin serving it.

mod loader;
pub mod manifest;
mod registry;
pub mod routes;

pub use loader::{LoadError, LoadErrors, LoadedPlugin, load_dir};
pub use manifest::{Manifest, PluginName};
pub use registry::Registry;
