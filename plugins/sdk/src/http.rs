//! Outbound HTTP from a plugin, through `wasi:http`. The host lets a request out only to the hosts
//! the plugin's manifest lists under `[capabilities] outbound-hosts`, and bounds it by the plugin's
//! timeout; anything else comes back as [`HttpError::Denied`].

use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

use crate::Error;

/// A response to an outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why an outbound request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://` or `https://` with a host.
    InvalidUrl(String),
    /// The host refused it: the destination is not in the manifest's `outbound-hosts`.
    Denied(String),
    /// It was allowed but failed (refused, timed out, protocol error, …).
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(url) => write!(f, "invalid URL {url:?}: expected http(s)://host[:port]/path"),
            HttpError::Denied(host) => write!(f, "outbound requests to {host} are not allowed for this plugin"),
            HttpError::Failed(reason) => write!(f, "outbound request failed: {reason}"),
        }
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

/// `GET url`, reading the whole body.
pub fn get(url: &str) -> Result<HttpResponse, HttpError> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(HttpError::InvalidUrl(url.to_owned())),
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(url.to_owned()));
    }

    let request = OutgoingRequest::new(Fields::new());
    let invalid = |_| HttpError::InvalidUrl(url.to_owned());
    request.set_method(&Method::Get).map_err(invalid)?;
    request.set_scheme(Some(&scheme)).map_err(invalid)?;
    request.set_authority(Some(authority)).map_err(invalid)?;
    request.set_path_with_query(Some(path)).map_err(invalid)?;
    let body = request.body().map_err(|_| HttpError::Failed("request body unavailable".into()))?;
    OutgoingBody::finish(body, None).map_err(|e| failed(authority, e))?;

    let pending = outgoing_handler::handle(request, None).map_err(|e| failed(authority, e))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(authority, code)),
        _ => return Err(HttpError::Failed("the response was not delivered".into())),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|_| HttpError::Failed("response body unavailable".into()))?;
    let stream = incoming.stream().map_err(|_| HttpError::Failed("response body unavailable".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(HttpError::Failed(e.to_debug_string())),
        }
    }
    Ok(HttpResponse { status, body: bytes })
}

fn failed(authority: &str, code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(authority.to_owned()),
        other => HttpError::Failed(format!("{other:?}")),
    }
}
