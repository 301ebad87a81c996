//! Maps the host's matched route to the handler function registered for it.

use crate::bindings::autoflow::platform::types as wit_types;
use crate::bindings::exports::autoflow::platform::handler as wit;
use crate::{Error, Request, Response, Result};

/// A handler function.
pub type Handler = fn(&Request) -> Result<Response>;

/// The plugin's route table: method + manifest route → handler.
///
/// The host matches the path against the manifest; the router only looks up the route the host
/// matched, so the patterns here must be written exactly as in `plugin.toml`.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, String, Handler)>,
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

    /// Finds the handler for this method and route.
    pub fn find(&self, method: &str, route: &str) -> Option<Handler> {
        self.routes.iter().find(|(m, r, _)| m == method && r == route).map(|(_, _, handler)| *handler)
    }

    /// Runs the handler for a request from the host.
    #[doc(hidden)]
    pub fn dispatch(&self, request: wit::Request) -> Result<wit::Response, wit_types::Error> {
        let request = Request::new(request);
        let handler = self.find(request.method(), request.route()).ok_or_else(|| {
            Error::not_found(format!("this plugin has no handler for {} {}", request.method(), request.route()))
        })?;
        handler(&request).map(Into::into).map_err(Into::into)
    }
}
