//! Maps the host's matched route to the handler function registered for it.

use crate::bindings::autoflow::platform::types as wit_types;
use crate::bindings::exports::autoflow::platform::description as wit_description;
use crate::bindings::exports::autoflow::platform::handler as wit;
use crate::records::Collection;
use crate::{Error, Request, Response, Result, Tasks};

/// A handler function.
pub type Handler = fn(&Request) -> Result<Response>;

/// The plugin's route table: method + manifest route → handler, and the records collections its
/// handlers use.
///
/// The host matches the path against the manifest; the router only looks up the route the host
/// matched, so the patterns here must be written exactly as in `plugin.toml`. The host compares
/// the table with the manifest when the plugin loads (and `cargo xtask build-plugins` when it
/// builds it): a route or collection in one and not the other refuses the build, naming it.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, String, Handler)>,
    collections: Vec<&'static str>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a handler for a method and route.
    pub fn route(mut self, method: &str, route: &str, handler: Handler) -> Self {
        self.routes.push((method.to_ascii_uppercase(), route.to_owned(), handler));
        self
    }

    pub fn get(self, route: &str, handler: Handler) -> Self {
        self.route("GET", route, handler)
    }

    pub fn post(self, route: &str, handler: Handler) -> Self {
        self.route("POST", route, handler)
    }

    pub fn put(self, route: &str, handler: Handler) -> Self {
        self.route("PUT", route, handler)
    }

    pub fn patch(self, route: &str, handler: Handler) -> Self {
        self.route("PATCH", route, handler)
    }

    pub fn delete(self, route: &str, handler: Handler) -> Self {
        self.route("DELETE", route, handler)
    }

    /// Declares that the handlers use `collection` (it must be granted under
    /// `[capabilities.records]`).
    pub fn collection<T>(mut self, collection: &Collection<T>) -> Self {
        self.collections.push(collection.name());
        self
    }

    /// Finds the handler for this method and route.
    pub fn find(&self, method: &str, route: &str) -> Option<Handler> {
        self.routes.iter().find(|(m, r, _)| m == method && r == route).map(|(_, _, handler)| *handler)
    }

    /// The routes, and the tasks and collections of `tasks` and these handlers, for the host's
    /// comparison with the manifest.
    #[doc(hidden)]
    pub fn describe_with(&self, tasks: &Tasks) -> wit_description::Contents {
        let mut contents = tasks.describe();
        contents.routes = self
            .routes
            .iter()
            .map(|(method, path, _)| wit_description::Route { method: method.clone(), path: path.clone() })
            .collect();
        for name in &self.collections {
            if !contents.collections.iter().any(|known| known == name) {
                contents.collections.push((*name).to_owned());
            }
        }
        contents
    }

    /// Runs the handler for a request from the host.
    #[doc(hidden)]
    pub fn dispatch(&self, request: wit::Request) -> Result<wit::Response, wit_types::Error> {
        let request = Request::new(request);
        let handler = self.find(request.method(), request.route()).ok_or_else(|| {
            Error::not_found(format!("this plugin has no handler for {} {}", request.method(), request.route()))
        })?;
        match handler(&request) {
            Ok(response) => Ok(response.into()),
            // The contract's errors have no 415 or 412; the router answers them itself.
            Err(Error::UnsupportedMediaType(message)) => {
                Ok(Response::error(415, "unsupported_media_type", message).into())
            }
            Err(Error::PreconditionFailed(message)) => Ok(Response::error(412, "precondition_failed", message).into()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::request;

    fn created(_: &Request) -> Result<Response> {
        Response::json_with_status(201, &serde_json::json!({ "ok": true }))
    }

    fn reads_json(req: &Request) -> Result<Response> {
        let value: serde_json::Value = req.json()?;
        Response::json(&value)
    }

    fn router() -> Router {
        Router::new().post("/items", created).route("put", "/items/{id}", reads_json)
    }

    #[test]
    fn handlers_are_found_by_method_and_manifest_route() {
        let router = router();
        assert!(router.find("POST", "/items").is_some());
        assert!(router.find("PUT", "/items/{id}").is_some(), "methods are registered upper-case");
        assert!(router.find("GET", "/items").is_none());
        assert!(router.find("POST", "/items/1").is_none(), "the manifest pattern, not the path");
    }

    #[test]
    fn the_description_lists_every_route_and_collection() {
        const ITEMS: Collection<serde_json::Value> = Collection::new("items");
        let contents = router().collection(&ITEMS).describe_with(&Tasks::new().collection(&ITEMS));
        let routes: Vec<(&str, &str)> = contents.routes.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
        assert_eq!(routes, [("POST", "/items"), ("PUT", "/items/{id}")]);
        assert_eq!(contents.collections, ["items"], "named once");
        assert!(contents.tasks.is_empty());
    }

    #[test]
    fn dispatch_answers_415_itself_and_maps_other_errors_to_the_contract() {
        let router = router();
        let answered =
            router.dispatch(request("PUT", "/items/{id}", &[("content-type", "text/plain")], "{}").into_inner());
        let response = answered.expect("a 415 is a response, not a contract error");
        assert_eq!(response.status, 415);
        assert!(String::from_utf8(response.body).unwrap().contains("unsupported_media_type"));

        let missing = router.dispatch(request("GET", "/nowhere", &[], "").into_inner());
        assert!(matches!(missing, Err(wit_types::Error::NotFound(_))));
        let ok = router.dispatch(request("POST", "/items", &[], "").into_inner()).unwrap();
        assert_eq!(ok.status, 201);
    }
}
