//! `autoflow:platform/config`: a plugin's own settings, from its manifest's `[config]` table with
//! the operator's `AUTOFLOW_PLUGIN_<NAME>__<KEY>` overrides applied when the plugin loads. Every
//! plugin may read its own settings, so this unit needs no grant.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::Instance;
use crate::contract::wit::config as wit;
use crate::spec::override_variable;

/// The settings of `plugin`: its manifest's `defaults`, each replaced by its override if the
/// operator set one. Only declared keys exist; an override of an undeclared key is ignored.
pub fn resolve(
    plugin: &str,
    defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> Arc<BTreeMap<String, String>> {
    let settings = defaults
        .iter()
        .map(|(key, default)| {
            let value = overrides.get(&override_variable(plugin, key)).unwrap_or(default);
            (key.clone(), value.clone())
        })
        .collect();
    Arc::new(settings)
}

/// A plugin's settings, as its instances read them.
struct Settings<'a>(&'a BTreeMap<String, String>);

impl HasData for Settings<'static> {
    type Data<'a> = Settings<'a>;
}

/// Adds `config`'s functions to `linker`: each instance reads its own plugin's settings.
pub(super) fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, Settings<'static>>(linker, |state| Settings(&state.grants.settings))
}

impl wit::Host for Settings<'_> {
    fn get(&mut self, key: String) -> Option<String> {
        self.0.get(&key).cloned()
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.0.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_declared_keys_only() {
        let defaults =
            BTreeMap::from([("greeting".to_owned(), "Hello".to_owned()), ("max-items".to_owned(), "5".to_owned())]);
        let overrides = BTreeMap::from([
            ("AUTOFLOW_PLUGIN_MY_NOTES__MAX_ITEMS".to_owned(), "50".to_owned()),
            ("AUTOFLOW_PLUGIN_MY_NOTES__UNDECLARED".to_owned(), "x".to_owned()),
            ("AUTOFLOW_PLUGIN_OTHER__GREETING".to_owned(), "Hi".to_owned()),
        ]);
        let settings = resolve("my-notes", &defaults, &overrides);
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(settings, [("greeting", "Hello"), ("max-items", "50")]);
    }
}
