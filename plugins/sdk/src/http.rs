//! Outbound HTTP from a plugin, through `wasi:http`. The host lets a request out only to the hosts
//! the plugin's manifest lists under `[capabilities] outbound-hosts`, and bounds it by the plugin's
//! timeout; anything else comes back as [`HttpError::Denied`].
//!
//! `http://{plugin}.autoflow.internal/…` (listed like any host) reaches another plugin's routes
//! in-process, as the same user: how one feature uses another's API.
//!
//! ```ignore
//! let reply = HttpRequest::post("https://api.example.com/v1/echo")
//!     .header("authorization", "Bearer …")
//!     .json(&serde_json::json!({ "hello": "world" }))?
//!     .timeout(Duration::from_secs(5))
//!     .send()?;
//! let echoed: serde_json::Value = reply.json()?;
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};
use wasi::io::streams::StreamError;

use crate::{Error, Response};

/// Bytes written to the request body per call (the most `wasi:io` accepts at once).
const WRITE_CHUNK: usize = 4096;

/// An outbound request being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response to an outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why an outbound request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://` or `https://` with a host.
    InvalidUrl(String),
    /// The host refused it: the destination is not in the manifest's `outbound-hosts`.
    Denied(String),
    /// No answer within the timeout.
    TimedOut(String),
    /// It was allowed but failed (refused, protocol error, …).
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(url) => write!(f, "invalid URL {url:?}: expected http(s)://host[:port]/path"),
            HttpError::Denied(host) => write!(f, "outbound requests to {host} are not allowed for this plugin"),
            HttpError::TimedOut(host) => write!(f, "{host} did not answer in time"),
            HttpError::Failed(reason) => write!(f, "outbound request failed: {reason}"),
        }
    }
}

impl HttpError {
    /// How a plugin calling an upstream service reports that it got no answer: `403` for a host
    /// it may not reach (naming it), `504` when it did not answer in time, `502` otherwise.
    pub fn gateway_response(&self) -> Response {
        let (status, code) = match self {
            HttpError::Denied(_) => (403, "forbidden"),
            HttpError::TimedOut(_) => (504, "gateway_timeout"),
            HttpError::InvalidUrl(_) => (400, "invalid"),
            HttpError::Failed(_) => (502, "bad_gateway"),
        };
        Response::error(status, code, self.to_string())
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Denied(_) => Error::forbidden(error.to_string()),
            _ => Error::unavailable(error.to_string()),
        }
    }
}

impl HttpRequest {
    /// A request with `method` (e.g. `"PUT"`) to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        Self { method: method.to_owned(), url: url.to_owned(), headers: Vec::new(), body: Vec::new(), timeout: None }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body, with its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|e| Error::internal(format!("cannot encode request: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Gives up on the response after `timeout` (the host's limit for the plugin applies anyway).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<HttpResponse, HttpError> {
        let invalid = || HttpError::InvalidUrl(self.url.clone());
        let (scheme, rest) = match self.url.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => return Err(invalid()),
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        if authority.is_empty() {
            return Err(invalid());
        }
        let headers = Fields::new();
        for (name, value) in &self.headers {
            headers.append(name, value.as_bytes()).map_err(|_| HttpError::Failed(format!("bad header {name:?}")))?;
        }

        let request = OutgoingRequest::new(headers);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_owned()),
        };
        request.set_method(&method).map_err(|_| invalid())?;
        request.set_scheme(Some(&scheme)).map_err(|_| invalid())?;
        request.set_authority(Some(authority)).map_err(|_| invalid())?;
        request.set_path_with_query(Some(path)).map_err(|_| invalid())?;
        let outgoing = request.body().map_err(|_| HttpError::Failed("request body unavailable".into()))?;
        let options = self.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });

        let pending = outgoing_handler::handle(request, options).map_err(|e| failed(authority, e))?;
        let written = write_body(&outgoing, &self.body)
            .and_then(|()| OutgoingBody::finish(outgoing, None).map_err(|e| failed(authority, e)));
        pending.subscribe().block();
        // A refused or failed request also breaks the body being written: its own error says why.
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(failed(authority, code)),
            _ => return Err(HttpError::Failed("the response was not delivered".into())),
        };
        written?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|_| HttpError::Failed("response body unavailable".into()))?;
        let stream = incoming.stream().map_err(|_| HttpError::Failed("response body unavailable".into()))?;
        let mut body = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(HttpError::Failed(e.to_debug_string())),
            }
        }
        Ok(HttpResponse { status, headers, body })
    }
}

fn write_body(outgoing: &OutgoingBody, body: &[u8]) -> Result<(), HttpError> {
    if body.is_empty() {
        return Ok(());
    }
    let broken = |_| HttpError::Failed("could not write the request body".into());
    let stream = outgoing.write().map_err(|_| HttpError::Failed("request body unavailable".into()))?;
    for chunk in body.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk).map_err(broken)?;
    }
    Ok(())
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HttpError::Failed(format!("the response is not the JSON expected: {e}")))
    }
}

/// `GET url`, reading the whole body.
pub fn get(url: &str) -> Result<HttpResponse, HttpError> {
    HttpRequest::get(url).send()
}

/// `method http://{plugin}.autoflow.internal{path}` with `body` as JSON, if any: another plugin's
/// route, called in-process as the current user. Its answer is decoded from JSON (an empty one,
/// e.g. a `204`, as `null`); `None` when it answers `404`; its error otherwise. The manifest must
/// list `{plugin}.autoflow.internal` in `outbound-hosts`.
pub fn internal<B, T>(method: &str, plugin: &str, path: &str, body: Option<&B>) -> Result<Option<T>, Error>
where
    B: Serialize + ?Sized,
    T: DeserializeOwned,
{
    let mut request = HttpRequest::new(method, &format!("http://{plugin}.autoflow.internal{path}"));
    if let Some(body) = body {
        request = request.json(body)?;
    }
    let response = request.send()?;
    match response.status {
        200..=299 if response.body.is_empty() => serde_json::from_str("null")
            .map(Some)
            .map_err(|e| Error::internal(format!("{plugin} answered no body: {e}"))),
        200..=299 => response.json().map(Some).map_err(|e| Error::internal(format!("{plugin} answered: {e}"))),
        404 => Ok(None),
        status => Err(error_from(plugin, status, &response.body)),
    }
}

/// [`internal`] `GET`.
pub fn internal_get<T: DeserializeOwned>(plugin: &str, path: &str) -> Result<Option<T>, Error> {
    internal::<(), T>("GET", plugin, path, None)
}

/// [`internal`] `POST` with a JSON body.
pub fn internal_post<B: Serialize + ?Sized, T: DeserializeOwned>(
    plugin: &str,
    path: &str,
    body: &B,
) -> Result<Option<T>, Error> {
    internal("POST", plugin, path, Some(body))
}

/// [`internal`] `PUT` with a JSON body.
pub fn internal_put<B: Serialize + ?Sized, T: DeserializeOwned>(
    plugin: &str,
    path: &str,
    body: &B,
) -> Result<Option<T>, Error> {
    internal("PUT", plugin, path, Some(body))
}

/// [`internal`] `PATCH` with a JSON body (a merge patch, for routes using `Collection::patch`).
pub fn internal_patch<B: Serialize + ?Sized, T: DeserializeOwned>(
    plugin: &str,
    path: &str,
    body: &B,
) -> Result<Option<T>, Error> {
    internal("PATCH", plugin, path, Some(body))
}

/// [`internal`] `DELETE`; `Ok(false)` when there was nothing to delete (`404`).
pub fn internal_delete(plugin: &str, path: &str) -> Result<bool, Error> {
    Ok(internal::<(), serde_json::Value>("DELETE", plugin, path, None)?.is_some())
}

/// The platform error another plugin answered with.
fn error_from(plugin: &str, status: u16, body: &[u8]) -> Error {
    let error: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = error["error"]["message"].as_str().unwrap_or("no message").to_owned();
    let message = format!("{plugin} answered {status}: {message}");
    match status {
        400 => Error::invalid(message),
        401 => Error::unauthorized(message),
        403 => Error::forbidden(message),
        409 => Error::conflict(message),
        412 => Error::PreconditionFailed(message),
        503 => Error::unavailable(message),
        _ => Error::internal(message),
    }
}

fn failed(authority: &str, code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(authority.to_owned()),
        ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionTimeout | ErrorCode::HttpResponseTimeout => {
            HttpError::TimedOut(authority.to_owned())
        }
        other => HttpError::Failed(format!("{other:?}")),
    }
}
