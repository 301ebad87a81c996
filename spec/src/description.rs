//! What a plugin's code says it serves and uses (its `description` export), compared with what
//! its manifest declares. The host's loader and `cargo xtask build-plugins` both refuse a build
//! whose two disagree, with one message per difference naming the route, task or collection and
//! what to change.

use crate::{Manifest, PluginKind};

/// The code's side: routes and tasks it has handlers for, records collections it names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// `(method, path pattern)`, method upper-case.
    pub routes: Vec<(String, String)>,
    pub tasks: Vec<String>,
    pub collections: Vec<String>,
}

impl Description {
    /// Every difference between this description and `manifest`, each a sentence naming the item
    /// and the fix; empty when they agree. `code` names the plugin's source (e.g. `src/lib.rs`).
    pub fn differences(&self, manifest: &Manifest, code: &str) -> Vec<String> {
        let mut found = Vec::new();
        let declared: Vec<(&str, &str)> =
            manifest.routes.iter().map(|route| (route.method.as_str(), route.path.as_str())).collect();
        for (method, path) in &self.routes {
            let method = method.to_ascii_uppercase();
            if !declared.contains(&(method.as_str(), path.as_str())) {
                let near = declared
                    .iter()
                    .find(|(m, p)| *m == method && same_shape(p, path))
                    .map(|(_, p)| format!(" (plugin.toml declares `{p}`: the patterns must be written alike)"))
                    .unwrap_or_default();
                found.push(format!(
                    "route {method} {path} has a handler in {code} but plugin.toml does not declare it{near}: add \
                     [[routes]] method = \"{method}\", path = \"{path}\", or remove the handler"
                ));
            }
        }
        for (method, path) in declared {
            let handled = self.routes.iter().any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path);
            if !handled {
                found.push(format!(
                    "route {method} {path} is declared in plugin.toml but {code} registers no handler for it: add \
                     `.route(\"{method}\", \"{path}\", handler)` to the plugin's Router, or remove the [[routes]] entry"
                ));
            }
        }
        for task in &self.tasks {
            if !manifest.tasks.iter().any(|declared| &declared.name == task) {
                found.push(format!(
                    "task `{task}` has a handler in {code} but plugin.toml does not declare it: add [[tasks]] name = \
                     \"{task}\", or remove the handler"
                ));
            }
        }
        for declared in &manifest.tasks {
            if !self.tasks.contains(&declared.name) {
                found.push(format!(
                    "task `{}` is declared in plugin.toml but {code} has no handler for it: add it to the plugin's \
                     Tasks, or remove the [[tasks]] entry",
                    declared.name
                ));
            }
        }
        let granted = &manifest.capabilities.records;
        for collection in &self.collections {
            if !granted.contains_key(collection) {
                found.push(format!(
                    "records collection `{collection}` is used by {code} but plugin.toml does not grant it: add \
                     `{collection} = \"user\"` (or \"shared\") under [capabilities.records], or fix the name in the code"
                ));
            }
        }
        for collection in granted.keys() {
            if !self.collections.contains(collection) {
                found.push(format!(
                    "records collection `{collection}` is granted in plugin.toml but {code} never names it: register it \
                     with `.collection(&…)` on the plugin's Router or Tasks, fix the name, or remove the grant"
                ));
            }
        }
        if manifest.kind == PluginKind::Task && !self.routes.is_empty() {
            found.push(format!("{code} has route handlers but plugin.toml declares kind = \"task\""));
        }
        found
    }
}

/// Whether two route patterns have the same segments once parameter names are ignored.
fn same_shape(a: &str, b: &str) -> bool {
    let shape = |pattern: &str| -> Vec<String> {
        pattern.split('/').map(|s| if s.starts_with('{') { "{}".to_owned() } else { s.to_owned() }).collect()
    };
    shape(a) == shape(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        name = "bookmarks"
        version = "1"
        kind = "feature"
        [[routes]]
        method = "GET"
        path = "/api/bookmarks/{id}"
        [[routes]]
        method = "DELETE"
        path = "/api/bookmarks/{id}"
        [capabilities.records]
        bookmark = "user"
    "#;

    fn description(routes: &[(&str, &str)], collections: &[&str]) -> Description {
        Description {
            routes: routes.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect(),
            tasks: Vec::new(),
            collections: collections.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn code_and_manifest_that_agree_have_no_differences() {
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let code = description(&[("get", "/api/bookmarks/{id}"), ("DELETE", "/api/bookmarks/{id}")], &["bookmark"]);
        assert_eq!(code.differences(&manifest, "src/lib.rs"), Vec::<String>::new());
    }

    #[test]
    fn every_difference_is_named_with_its_fix() {
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let code = description(
            &[
                ("GET", "/api/bookmarks/{bookmark_id}"),
                ("GET", "/api/bookmarks/export"),
                ("DELETE", "/api/bookmarks/{id}"),
            ],
            &["bookmarks"],
        );
        let found = code.differences(&manifest, "src/lib.rs");
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with("route GET /api/bookmarks/{bookmark_id} has a handler in src/lib.rs but plugin.toml does not declare it (plugin.toml declares `/api/bookmarks/{id}`"), "{}", found[0]);
        assert!(found[1].starts_with("route GET /api/bookmarks/export has a handler in src/lib.rs but plugin.toml does not declare it: add [[routes]]"), "{}", found[1]);
        assert!(
            found[2].starts_with(
                "route GET /api/bookmarks/{id} is declared in plugin.toml but src/lib.rs registers no handler"
            ),
            "{}",
            found[2]
        );
        assert!(
            found[3]
                .starts_with("records collection `bookmarks` is used by src/lib.rs but plugin.toml does not grant it"),
            "{}",
            found[3]
        );
        assert!(
            found[4]
                .starts_with("records collection `bookmark` is granted in plugin.toml but src/lib.rs never names it"),
            "{}",
            found[4]
        );
    }

    #[test]
    fn tasks_are_compared_both_ways() {
        let manifest =
            Manifest::parse("name = \"mail\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"send-email\"\n")
                .unwrap();
        let code = Description { tasks: vec!["send-mail".into()], ..Description::default() };
        let found = code.differences(&manifest, "src/lib.rs");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("task `send-mail` has a handler in src/lib.rs but plugin.toml does not declare it")
        );
        assert!(found[1].starts_with("task `send-email` is declared in plugin.toml but src/lib.rs has no handler"));
    }
}
