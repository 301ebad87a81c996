//! Outbound HTTP (`wasi:http/outgoing-handler`): only to the hosts a plugin's manifest allows, with
//! connect and first-byte timeouts. A refused request fails inside the plugin with
//! `HTTP-request-denied`; it never leaves the host.
//!
//! A request to `http://{plugin}.autoflow.internal/…` (allowed like any host) never touches the
//! network: the host serves it with that plugin's routes, in-process, as the same user and under
//! the same request id, so one feature can use another's API (the way Spin chains components).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::runtime::Principal;

/// Longest an outbound connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The domain under which each plugin answers internal requests: `{plugin}.autoflow.internal`.
pub const INTERNAL_DOMAIN: &str = "autoflow.internal";
/// Most plugins one request may pass through by internal requests (A → B → C …).
pub const MAX_CHAIN_DEPTH: u8 = 4;
/// Largest internal request body read; the served route applies the host's own body limit.
const MAX_INTERNAL_BODY: usize = 16 * 1024 * 1024;

/// Whom a plugin call acts for, carried into the internal requests it makes.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub principal: Option<Principal>,
    pub request_id: String,
    /// How many internal requests led to this call (0 for a request from outside).
    pub depth: u8,
}

/// Serves internal requests with a plugin's routes; the HTTP layer implements it.
pub trait InternalRoutes: Send + Sync {
    /// Answers `request` with the routes of `plugin`, acting for `chain`.
    fn serve(
        &self,
        plugin: String,
        request: http::Request<Bytes>,
        chain: Chain,
    ) -> Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send>>;
}

/// The link to the [`InternalRoutes`]: the HTTP layer is built after the runtime.
pub type InternalLink = super::link::Link<dyn InternalRoutes>;

/// The outbound policy of one plugin: the `host` or `host:port` entries it may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<[String]>,
    /// Whether the manifest declares outbound HTTP at all (its hosts may come from settings).
    declared: bool,
    timeout: Duration,
    internal: InternalLink,
    chain: Chain,
}

impl OutboundHttp {
    /// A policy allowing `allowed` (`host` matches any port, `host:port` that port only), each
    /// request bounded by `timeout` to its first response byte; internal requests go to `internal`.
    pub fn new(allowed: Arc<[String]>, declared: bool, timeout: Duration, internal: InternalLink) -> Self {
        Self { allowed, declared, timeout, internal, chain: Chain::default() }
    }

    /// The same policy for one call acting for `chain`.
    pub fn for_call(&self, chain: Chain) -> Self {
        Self { chain, ..self.clone() }
    }

    /// Whether the manifest declares outbound HTTP (a component importing it is refused otherwise).
    pub fn declared(&self) -> bool {
        self.declared
    }

    /// Whether a request to `authority` (`host[:port]`) may leave the host.
    pub fn allows(&self, authority: &str) -> bool {
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        self.allowed.iter().any(|entry| entry.eq_ignore_ascii_case(authority) || entry.eq_ignore_ascii_case(host))
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _guest_io: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let authority = request.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        if !self.allows(&authority) {
            tracing::warn!(target: "autoflow::plugin", host = authority, "outbound request refused: host not allowed");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if let Some(plugin) = internal_plugin(&authority) {
            return self.send_internal(plugin.to_owned(), request);
        }
        let requested = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: Some(requested.connect_timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT))),
            first_byte_timeout: Some(requested.first_byte_timeout.map_or(self.timeout, |t| t.min(self.timeout))),
            between_bytes_timeout: Some(requested.between_bytes_timeout.map_or(self.timeout, |t| t.min(self.timeout))),
        };
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

impl OutboundHttp {
    /// Serves a request to `{plugin}.autoflow.internal` in-process, one level deeper in the chain.
    fn send_internal(&self, plugin: String, request: http::Request<WasiBody>) -> SendFuture {
        if self.chain.depth >= MAX_CHAIN_DEPTH {
            tracing::warn!(target: "autoflow::plugin", plugin, "internal request refused: chain deeper than {MAX_CHAIN_DEPTH}");
            let message = format!("more than {MAX_CHAIN_DEPTH} internal requests in a row (a loop between plugins?)");
            return answer(508, "chain_too_deep", &message);
        }
        let Some(routes) = self.internal.get() else {
            return answer(503, "unavailable", "the host is shutting down");
        };
        let chain = Chain { depth: self.chain.depth + 1, ..self.chain.clone() };
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = Limited::new(body, MAX_INTERNAL_BODY)
                .collect()
                .await
                .map_err(|_| Error::HttpRequestBodySize(None))?
                .to_bytes();
            let response = routes.serve(plugin, http::Request::from_parts(parts, body), chain).await;
            let response = response.map(|body| Full::new(body).map_err(|never| match never {}).boxed_unsync());
            Ok((response, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// A response the host gives in place of the plugin asked for, in the platform's error shape.
fn answer(status: u16, code: &str, message: &str) -> SendFuture {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut response = http::Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Box::new(async move { Ok((response, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>)) })
}

/// The plugin an authority such as `notes.autoflow.internal` or `notes.autoflow.internal:80` names.
fn internal_plugin(authority: &str) -> Option<&str> {
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    host.strip_suffix(INTERNAL_DOMAIN)?.strip_suffix('.').filter(|plugin| !plugin.is_empty() && !plugin.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let policy = OutboundHttp::new(
            Arc::from(vec!["api.example.com".to_owned(), "127.0.0.1:8080".to_owned()]),
            true,
            Duration::ZERO,
            InternalLink::default(),
        );
        assert!(policy.allows("api.example.com"));
        assert!(policy.allows("API.example.com:443"));
        assert!(policy.allows("127.0.0.1:8080"));
        assert!(!policy.allows("127.0.0.1:8081"));
        assert!(!policy.allows("example.com"));
        assert!(!policy.allows("api.example.com.evil.test"));
        assert!(!policy.allows(""));
    }

    #[test]
    fn internal_hosts_name_one_plugin() {
        assert_eq!(internal_plugin("secrets.autoflow.internal"), Some("secrets"));
        assert_eq!(internal_plugin("secrets.autoflow.internal:80"), Some("secrets"));
        for other in ["autoflow.internal", ".autoflow.internal", "a.b.autoflow.internal", "secrets.autoflow.internals"]
        {
            assert_eq!(internal_plugin(other), None, "{other}");
        }
    }
}
