//! The set of plugins being served and the route table over them.

use std::sync::Arc;

use super::loader::{LoadError, LoadErrors, LoadedPlugin};
use super::routes::{DeclaredRoute, RouteMatch, RouteTable};

/// Loaded plugins plus the routes that reach them. Immutable: a new set means a new registry.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Arc<LoadedPlugin>>,
    routes: RouteTable,
}

impl Registry {
    /// Builds the registry, refusing route conflicts between plugins.
    pub fn new(plugins: Vec<Arc<LoadedPlugin>>) -> Result<Self, LoadErrors> {
        let declared = plugins.iter().enumerate().flat_map(|(index, plugin)| {
            plugin.manifest.routes.iter().map(move |route| DeclaredRoute {
                plugin: index,
                plugin_name: plugin.manifest.name.as_str(),
                method: &route.method,
                pattern: &route.path,
                access: route.access.clone(),
            })
        });
        let routes = RouteTable::build(declared)
            .map_err(|conflicts| LoadErrors(conflicts.into_iter().map(LoadError::RouteConflict).collect()))?;
        Ok(Self { plugins, routes })
    }

    /// Matches a request to a plugin route.
    pub fn route(&self, method: &str, path: &str) -> RouteMatch<'_> {
        self.routes.at(method, path)
    }

    /// The plugin at `index` (as given in a [`RouteMatch`]).
    pub fn plugin(&self, index: usize) -> &Arc<LoadedPlugin> {
        &self.plugins[index]
    }

    /// The plugin called `name`, if it is serving.
    pub fn find(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.manifest.name.as_str() == name)
    }

    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }
}
