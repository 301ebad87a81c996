//! The route table: every (method, path pattern) of every loaded plugin, matched per request.
//! Built once per set of plugins; conflicts between plugins are found here, before serving.

use std::collections::BTreeMap;

use crate::spec::Access;

/// Where a matched request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// Index of the plugin in the registry.
    pub plugin: usize,
    /// The manifest pattern, e.g. `/api/hello/{name}`.
    pub pattern: String,
    pub access: Access,
}

/// The outcome of matching a request.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch<'a> {
    Found {
        target: &'a RouteTarget,
        params: Vec<(String, String)>,
    },
    /// The path exists but not for this method; `allowed` lists the methods that are.
    MethodNotAllowed {
        allowed: Vec<String>,
    },
    NotFound,
}

/// Where a request comes from, which decides whether `internal` routes exist for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A client: routes with `access = "internal"` are not there.
    Outside,
    /// Another plugin (or a task) through `{plugin}.autoflow.internal`: every route.
    Internal,
}

/// A route one plugin declares, as input to [`RouteTable::build`].
#[derive(Debug, Clone)]
pub struct DeclaredRoute<'a> {
    pub plugin: usize,
    pub plugin_name: &'a str,
    pub method: &'a str,
    pub pattern: &'a str,
    pub access: Access,
}

/// Compiled routes of every plugin.
#[derive(Debug, Default)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    /// For each pattern, its targets by method.
    entries: Vec<BTreeMap<String, RouteTarget>>,
}

impl RouteTable {
    /// Builds the table, or lists every conflict: the same method and pattern claimed twice, or
    /// patterns the matcher cannot tell apart (e.g. `/a/{x}` and `/a/{y}`).
    pub fn build<'a>(routes: impl IntoIterator<Item = DeclaredRoute<'a>>) -> Result<Self, Vec<String>> {
        let mut by_pattern: BTreeMap<&str, Vec<DeclaredRoute<'a>>> = BTreeMap::new();
        for route in routes {
            by_pattern.entry(route.pattern).or_default().push(route);
        }

        let mut table = RouteTable::default();
        let mut conflicts = Vec::new();
        let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
        for (pattern, declared) in by_pattern {
            let mut methods: BTreeMap<String, RouteTarget> = BTreeMap::new();
            let mut claimed_by: BTreeMap<&str, &str> = BTreeMap::new();
            for route in &declared {
                if let Some(first) = claimed_by.insert(route.method, route.plugin_name) {
                    conflicts.push(format!(
                        "route {} {pattern} is claimed by both plugin '{first}' and plugin '{}'",
                        route.method, route.plugin_name
                    ));
                    continue;
                }
                let target =
                    RouteTarget { plugin: route.plugin, pattern: pattern.to_owned(), access: route.access.clone() };
                methods.insert(route.method.to_owned(), target);
            }
            let owner = declared[0].plugin_name;
            match table.router.insert(pattern, table.entries.len()) {
                Ok(()) => {
                    owners.insert(pattern, owner);
                    table.entries.push(methods);
                }
                Err(error) => conflicts.push(describe_insert_error(pattern, owner, &error, &owners)),
            }
        }
        if conflicts.is_empty() { Ok(table) } else { Err(conflicts) }
    }

    /// Matches a request path (as received, percent-encoded) and method, from `reach`: from
    /// outside, an internal route is as absent as an undeclared one (`404`, never named in `405`).
    pub fn at(&self, method: &str, path: &str, reach: Reach) -> RouteMatch<'_> {
        let Ok(matched) = self.router.at(path) else {
            return RouteMatch::NotFound;
        };
        let visible = |target: &&RouteTarget| reach == Reach::Internal || target.access != Access::Internal;
        let methods = &self.entries[*matched.value];
        match methods.get(method).filter(visible) {
            Some(target) => RouteMatch::Found {
                target,
                params: matched.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            },
            None => {
                let allowed: Vec<String> =
                    methods.iter().filter(|(_, target)| visible(target)).map(|(method, _)| method.clone()).collect();
                if allowed.is_empty() { RouteMatch::NotFound } else { RouteMatch::MethodNotAllowed { allowed } }
            }
        }
    }

    /// Number of distinct path patterns.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn describe_insert_error(
    pattern: &str,
    plugin: &str,
    error: &matchit::InsertError,
    owners: &BTreeMap<&str, &str>,
) -> String {
    match error {
        matchit::InsertError::Conflict { with } => {
            let other = owners.get(with.as_str()).copied().unwrap_or("?");
            format!(
                "route {pattern} of plugin '{plugin}' conflicts with route {with} of plugin '{other}': \
                 no request could tell them apart"
            )
        }
        other => format!("route {pattern} of plugin '{plugin}' is not a valid path pattern: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<'a>(plugin: usize, name: &'a str, method: &'a str, pattern: &'a str) -> DeclaredRoute<'a> {
        DeclaredRoute { plugin, plugin_name: name, method, pattern, access: Access::Public }
    }

    #[test]
    fn matches_params_methods_and_misses() {
        let table = RouteTable::build([
            route(0, "hello", "GET", "/api/hello/{name}"),
            route(0, "hello", "POST", "/api/echo"),
            route(1, "other", "DELETE", "/api/hello/{name}"),
        ])
        .unwrap();

        let RouteMatch::Found { target, params } = table.at("GET", "/api/hello/world", Reach::Outside) else {
            panic!()
        };
        assert_eq!((target.plugin, target.pattern.as_str()), (0, "/api/hello/{name}"));
        assert_eq!(params, vec![("name".to_owned(), "world".to_owned())]);

        let RouteMatch::Found { target, .. } = table.at("DELETE", "/api/hello/x", Reach::Outside) else { panic!() };
        assert_eq!(target.plugin, 1);

        assert_eq!(
            table.at("PUT", "/api/hello/x", Reach::Outside),
            RouteMatch::MethodNotAllowed { allowed: vec!["DELETE".into(), "GET".into()] }
        );
        assert_eq!(table.at("GET", "/api/nothing", Reach::Outside), RouteMatch::NotFound);
    }

    #[test]
    fn internal_routes_exist_only_for_internal_requests() {
        let internal = |method, pattern| DeclaredRoute { access: Access::Internal, ..route(0, "a", method, pattern) };
        let table =
            RouteTable::build([route(0, "a", "GET", "/a/{id}"), internal("POST", "/a/{id}"), internal("PUT", "/b")])
                .unwrap();

        assert_eq!(table.at("PUT", "/b", Reach::Outside), RouteMatch::NotFound);
        assert_eq!(table.at("GET", "/b", Reach::Outside), RouteMatch::NotFound, "no 405 naming an internal method");
        assert_eq!(
            table.at("POST", "/a/1", Reach::Outside),
            RouteMatch::MethodNotAllowed { allowed: vec!["GET".into()] }
        );
        assert!(matches!(table.at("POST", "/a/1", Reach::Internal), RouteMatch::Found { .. }));
        assert!(matches!(table.at("PUT", "/b", Reach::Internal), RouteMatch::Found { .. }));
    }

    #[test]
    fn the_same_route_in_two_plugins_is_a_conflict_naming_both() {
        let errors = RouteTable::build([route(0, "a", "GET", "/x"), route(1, "b", "GET", "/x")]).unwrap_err();
        assert_eq!(errors, vec!["route GET /x is claimed by both plugin 'a' and plugin 'b'".to_owned()]);
    }

    #[test]
    fn indistinguishable_patterns_are_a_conflict() {
        let errors =
            RouteTable::build([route(0, "a", "GET", "/u/{id}"), route(1, "b", "POST", "/u/{name}")]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("plugin 'a'") && errors[0].contains("plugin 'b'"), "{}", errors[0]);
    }
}
