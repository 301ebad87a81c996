//! The set of plugins being served and the route table over them.

use std::collections::HashMap;
use std::sync::Arc;

use super::loader::{LoadError, LoadErrors, LoadedPlugin};
use super::routes::{DeclaredRoute, Reach, RouteMatch, RouteTable};
use crate::spec::TaskSpec;

/// Loaded plugins plus the routes that reach them. Immutable: a new set means a new registry.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Arc<LoadedPlugin>>,
    routes: RouteTable,
    /// Task name → the plugin handling it.
    tasks: HashMap<String, usize>,
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
        let mut tasks = HashMap::new();
        let mut conflicts = Vec::new();
        for (index, plugin) in plugins.iter().enumerate() {
            for spec in &plugin.manifest.tasks {
                if let Some(first) = tasks.insert(spec.name.clone(), index) {
                    conflicts.push(LoadError::TaskConflict {
                        task: spec.name.clone(),
                        first: plugins[first].manifest.name.to_string(),
                        second: plugin.manifest.name.to_string(),
                    });
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(LoadErrors(conflicts));
        }
        Ok(Self { plugins, routes, tasks })
    }

    /// The plugin handling task `name`, with the task's declared defaults.
    pub fn task_handler(&self, name: &str) -> Option<(&Arc<LoadedPlugin>, &TaskSpec)> {
        let plugin = &self.plugins[*self.tasks.get(name)?];
        let spec = plugin.manifest.tasks.iter().find(|spec| spec.name == name)?;
        Some((plugin, spec))
    }

    /// Matches a request to a plugin route.
    pub fn route(&self, method: &str, path: &str, reach: Reach) -> RouteMatch<'_> {
        self.routes.at(method, path, reach)
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
