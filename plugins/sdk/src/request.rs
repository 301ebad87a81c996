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

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> wit::Request {
        self.inner
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

    /// Every header in order, names lower-case. The host's credentials (`Authorization`, the
    /// session cookie) never reach a plugin: the caller is [`Request::principal`].
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// The body decoded as JSON; malformed or mistyped input is a `400` naming the problem, and a
    /// body sent with a `Content-Type` other than JSON a `415` (a cross-site form can post
    /// `text/plain`, never `application/json`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if let Some(content_type) = self.header("content-type").filter(|value| !is_json(value)) {
            return Err(Error::UnsupportedMediaType(format!(
                "the body is sent as `{content_type}`; this route reads `Content-Type: application/json`"
            )));
        }
        if self.inner.body.is_empty() {
            return Err(Error::invalid("request body is empty; expected JSON"));
        }
        serde_json::from_slice(&self.inner.body)
            .map_err(|e| Error::invalid(format!("request body is not valid JSON for this route: {e}")))
    }

    /// The authenticated caller, if the route had one.
    /// The document version an `If-Match` header asks for (`"3"`, as [`Record::etag`] writes
    /// it), or `None` without the header; `400` naming `If-Match` for anything else.
    ///
    /// [`Record::etag`]: crate::records::Record::etag
    pub fn if_match(&self) -> Result<Option<u64>> {
        let Some(value) = self.header("if-match") else { return Ok(None) };
        let version = value.trim().strip_prefix('"').and_then(|v| v.strip_suffix('"')).and_then(|v| v.parse().ok());
        version
            .map(Some)
            .ok_or_else(|| Error::invalid_field("If-Match", "must be an ETag this API returned, e.g. \"3\""))
    }

    pub fn principal(&self) -> Option<Principal> {
        self.inner
            .principal
            .as_ref()
            .map(|p| Principal { user_id: p.user_id.clone(), permissions: p.permissions.clone() })
    }
}

/// Whether a `Content-Type` value names JSON: `application/json` or `application/*+json`, with
/// any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request as the host would hand it over.
    pub(crate) fn request(method: &str, route: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let pairs = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Request::new(wit::Request {
            method: method.into(),
            path: route.into(),
            route: route.into(),
            params: pairs(&[("id", "a%2Fb")]),
            query: pairs(&[("limit", "5"), ("tag", "x"), ("tag", "y")]),
            headers: pairs(headers),
            body: body.as_bytes().to_vec(),
            principal: None,
            request_id: "req-1".into(),
        })
    }

    #[test]
    fn json_bodies_decode_when_sent_as_json_or_without_a_content_type() {
        for content_type in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/merge-patch+json"),
        ] {
            let headers: Vec<(&str, &str)> = content_type.map(|c| ("content-type", c)).into_iter().collect();
            let value: serde_json::Value = request("POST", "/x", &headers, r#"{"a":1}"#).json().unwrap();
            assert_eq!(value["a"], 1, "{content_type:?}");
        }
    }

    #[test]
    fn a_body_sent_as_another_content_type_is_unsupported() {
        for content_type in
            ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"]
        {
            let error = request("POST", "/x", &[("content-type", content_type)], "{}").json::<serde_json::Value>();
            assert!(matches!(error, Err(Error::UnsupportedMediaType(_))), "{content_type}: {error:?}");
        }
    }

    #[test]
    fn malformed_or_empty_json_is_invalid() {
        let json = [("content-type", "application/json")];
        assert!(matches!(request("POST", "/x", &json, "").json::<serde_json::Value>(), Err(Error::Invalid { .. })));
        assert!(matches!(request("POST", "/x", &json, "{").json::<serde_json::Value>(), Err(Error::Invalid { .. })));
    }

    #[test]
    fn lookups_find_params_query_and_headers() {
        let req = request("GET", "/items/{id}", &[("X-Trace", "t1")], "");
        assert_eq!(req.param("id").unwrap(), "a%2Fb");
        assert!(matches!(req.param("missing"), Err(Error::Internal(_))), "a route without it is a plugin bug");
        assert_eq!(req.query("tag"), Some("x"), "the first of repeated parameters");
        assert_eq!(req.query_pairs().count(), 3);
        assert_eq!(req.header("x-trace"), Some("t1"), "header names match case-insensitively");
        assert_eq!(req.headers().collect::<Vec<_>>(), [("X-Trace", "t1")]);
        assert_eq!(req.request_id(), "req-1");
        assert_eq!(req.principal(), None);
    }

    #[test]
    fn if_match_reads_the_version_an_etag_names() {
        assert_eq!(request("PATCH", "/x", &[("if-match", "\"3\"")], "").if_match().unwrap(), Some(3));
        assert_eq!(request("PATCH", "/x", &[], "").if_match().unwrap(), None);
        for bad in ["3", "W/\"3\"", "\"three\"", "*"] {
            let error = request("PATCH", "/x", &[("if-match", bad)], "").if_match().unwrap_err();
            assert!(
                matches!(&error, Error::Invalid { fields, .. } if fields[0].field == "If-Match"),
                "{bad}: {error:?}"
            );
        }
    }
}
