//! Responses a handler returns.

use serde::Serialize;

use crate::bindings::exports::autoflow::platform::handler as wit;
use crate::records::Record;
use crate::{Error, Result};

/// An HTTP response, sent to the client as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `200` with a JSON body.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        Self::json_with_status(200, value)
    }

    /// A JSON body with the given status.
    pub fn json_with_status<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("response could not be encoded as JSON: {e}")))?;
        Ok(Self::new(status, body).with_header("content-type", "application/json"))
    }

    /// `201 Created` with `location` (the new resource's path) and a JSON body.
    pub fn created<T: Serialize + ?Sized>(location: impl Into<String>, value: &T) -> Result<Self> {
        Ok(Self::json_with_status(201, value)?.with_header("location", location))
    }

    /// An error in the platform's shape, `{"error": {"code", "message"}}`, for statuses the
    /// [`Error`] kinds do not cover (`412`, `429`, `502`, `504`, …).
    /// `200` with a stored document as JSON and its `ETag`, for conditional updates (`If-Match`).
    pub fn record<T: Serialize>(record: &Record<T>) -> Result<Self> {
        Ok(Self::json(record)?.with_header("etag", record.etag()))
    }

    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        let body = serde_json::json!({ "error": { "code": code, "message": message.into() } });
        Self::new(status, body.to_string().into_bytes()).with_header("content-type", "application/json")
    }

    /// `200` with a plain-text body.
    pub fn text(body: impl Into<String>) -> Self {
        Self::new(200, body.into().into_bytes()).with_header("content-type", "text/plain; charset=utf-8")
    }

    /// A body-less response, e.g. `204`.
    pub fn empty(status: u16) -> Self {
        Self::new(status, Vec::new())
    }

    /// Any status and body.
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Self { status, headers: Vec::new(), body }
    }

    /// Sets a header, replacing any of the same name (in any letter case): `content-type` set on
    /// a JSON response stays one header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds one more value of a header that may repeat (`set-cookie`, `vary`, `link`, …). The
    /// host refuses a second value of a single-value header (`content-type`, `location`, `etag`,
    /// …) with `502`.
    pub fn add_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        wit::Response { status: r.status, headers: r.headers, body: r.body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_header_replaces_and_add_header_appends() {
        let response = Response::text("x").with_header("Content-Type", "text/html").with_header("x-a", "1");
        assert_eq!(response.headers, [("Content-Type".to_owned(), "text/html".to_owned()), ("x-a".into(), "1".into())]);
        let cookies = Response::empty(204).add_header("set-cookie", "a=1").add_header("set-cookie", "b=2");
        assert_eq!(cookies.headers.len(), 2);
    }

    #[test]
    fn created_answers_201_with_its_location_and_json() {
        let response = Response::created("/api/notes/1", &serde_json::json!({ "id": "1" })).unwrap();
        assert_eq!(response.status, 201);
        assert!(response.headers.contains(&("location".to_owned(), "/api/notes/1".to_owned())));
        assert!(response.headers.contains(&("content-type".to_owned(), "application/json".to_owned())));
        assert_eq!(response.body, br#"{"id":"1"}"#);
    }
}
