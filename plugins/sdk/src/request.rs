//! The request a handler receives, with lookups and JSON decoding.

use serde::de::DeserializeOwned;

use crate::bindings::exports::autoflow::platform::handler as wit;
use crate::{Error, Result};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub permissions: Vec<String>,
}

/// A request the host routed to this plugin.
#[derive(Debug, Clone)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    pub(crate) fn new(inner: wit::Request) -> Self {
        Self { inner }
    }

    /// Upper-case method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The path as requested.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The manifest route that matched, e.g. `/api/hello/{name}`.
    pub fn route(&self) -> &str {
        &self.inner.route
    }

    /// The id the host assigned to this request.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// A path parameter of the matched route; a missing one is a bug in the route table (`500`).
    pub fn param(&self, name: &str) -> Result<&str> {
        lookup(&self.inner.params, name)
            .ok_or_else(|| Error::internal(format!("route {} has no path parameter `{name}`", self.inner.route)))
    }

    /// The first query parameter with this name.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.inner.query, name)
    }

    /// All query parameters in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// The body decoded as JSON; malformed or mistyped input is a `400` naming the problem.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if self.inner.body.is_empty() {
            return Err(Error::invalid("request body is empty; expected JSON"));
        }
        serde_json::from_slice(&self.inner.body)
            .map_err(|e| Error::invalid(format!("request body is not valid JSON for this route: {e}")))
    }

    /// The authenticated caller, if the route had one.
    pub fn principal(&self) -> Option<Principal> {
        self.inner
            .principal
            .as_ref()
            .map(|p| Principal { user_id: p.user_id.clone(), permissions: p.permissions.clone() })
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
