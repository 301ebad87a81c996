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
use tracing::Instrument;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::{Instance, LoadContext, Unit};
use crate::contract::CallContext;
use crate::spec::grants::{self, Capability};
use crate::spec::hosts::{Authority, outbound_hosts};
use crate::telemetry::traces;

/// Longest an outbound connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most plugins one request may pass through by internal requests (A → B → C …).
pub const MAX_CHAIN_DEPTH: u8 = 4;
/// Largest internal request body read; the served route applies the host's own body limit.
const MAX_INTERNAL_BODY: usize = 16 * 1024 * 1024;

/// Serves internal requests with a plugin's routes; the HTTP layer implements it.
pub trait InternalRoutes: Send + Sync {
    /// Answers `request` with the routes of `plugin`, acting for `call`.
    fn serve(
        &self,
        plugin: String,
        request: http::Request<Bytes>,
        call: CallContext,
    ) -> Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send>>;
}

/// The link to the [`InternalRoutes`]: the HTTP layer is built after the runtime.
pub type InternalLink = super::link::Link<dyn InternalRoutes>;

/// The outbound policy of one plugin: the `host` or `host:port` entries it may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<[Authority]>,
    timeout: Duration,
    internal: InternalLink,
    call: CallContext,
}

impl OutboundHttp {
    /// A policy allowing `allowed` (`host` matches any port, `host:port` that port only), each
    /// request bounded by `timeout` to its first response byte; internal requests go to `internal`.
    pub fn new(allowed: Vec<Authority>, timeout: Duration, internal: InternalLink) -> Self {
        Self { allowed: allowed.into(), timeout, internal, call: CallContext::default() }
    }

    /// The same policy for one call acting for `call` (its internal requests carry it on).
    pub fn for_call(&self, call: CallContext) -> Self {
        Self { call, ..self.clone() }
    }

    /// Whether a request to `target` is allowed.
    pub fn allows(&self, target: &Authority) -> bool {
        self.allowed.iter().any(|entry| entry.admits(target))
    }
}

impl Unit for OutboundHttp {
    const CAPABILITY: &'static Capability = &grants::OUTBOUND_HTTP;

    /// Always a policy: one that admits nothing unless the manifest declares outbound hosts (a
    /// component importing outbound HTTP without them is refused at load).
    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        // The loader has refused a manifest whose hosts do not parse (`Grants::for_manifest`).
        let hosts = outbound_hosts(load.manifest, load.settings).unwrap_or_default();
        Some(Self::new(hosts, load.timeout, load.services.internal.clone()))
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _guest_io: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let written = request.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let target = Authority::of_request(request.uri()).filter(|target| self.allows(target));
        let Some(target) = target else {
            tracing::warn!(target: "autoflow::plugin", host = written, "outbound request refused: host not allowed");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        // Every spelling of an internal host ends here: it is served in-process or refused, and
        // never resolved or connected to.
        if target.is_internal() {
            let Some(plugin) = target.internal_plugin() else {
                tracing::warn!(target: "autoflow::plugin", host = written, "outbound request refused: no such internal host");
                return Box::new(async { Err(Error::HttpRequestDenied) });
            };
            return self.send_internal(plugin.to_owned(), request);
        }
        let requested = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: Some(requested.connect_timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT))),
            first_byte_timeout: Some(requested.first_byte_timeout.map_or(self.timeout, |t| t.min(self.timeout))),
            between_bytes_timeout: Some(requested.between_bytes_timeout.map_or(self.timeout, |t| t.min(self.timeout))),
        };
        let span = tracing::info_span!(
            "http.outbound",
            method = %request.method(),
            host = written,
            status = tracing::field::Empty,
            otel.name = %format!("{} {written}", request.method()),
            otel.kind = "client",
        );
        span.in_scope(|| traces::inject_into(request.headers_mut()));
        let recorded = span.clone();
        Box::new(
            async move {
                let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                recorded.record("status", response.status().as_u16());
                Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
            }
            .instrument(span),
        )
    }
}

impl OutboundHttp {
    /// Serves a request to `{plugin}.autoflow.internal` in-process, one level deeper in the chain.
    fn send_internal(&self, plugin: String, request: http::Request<WasiBody>) -> SendFuture {
        if self.call.depth >= MAX_CHAIN_DEPTH {
            tracing::warn!(target: "autoflow::plugin", plugin, "internal request refused: chain deeper than {MAX_CHAIN_DEPTH}");
            let message = format!("more than {MAX_CHAIN_DEPTH} internal requests in a row (a loop between plugins?)");
            return answer(508, "chain_too_deep", &message);
        }
        let Some(routes) = self.internal.get() else {
            return answer(503, "unavailable", "the host is shutting down");
        };
        let call = CallContext { depth: self.call.depth + 1, attempt: None, ..self.call.clone() };
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = Limited::new(body, MAX_INTERNAL_BODY)
                .collect()
                .await
                .map_err(|_| Error::HttpRequestBodySize(None))?
                .to_bytes();
            let response = routes.serve(plugin, http::Request::from_parts(parts, body), call).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundHttp {
        let entries = entries.iter().map(|e| Authority::parse(e).unwrap()).collect();
        OutboundHttp::new(entries, Duration::ZERO, InternalLink::default())
    }

    fn allows(policy: &OutboundHttp, uri: &str) -> bool {
        Authority::of_request(&uri.parse().unwrap()).is_some_and(|target| policy.allows(&target))
    }

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let policy = policy(&["api.example.com", "127.0.0.1:8080", "Tls.Example.com:443"]);
        assert!(allows(&policy, "http://api.example.com/x"));
        assert!(allows(&policy, "https://API.example.com:443/"));
        assert!(allows(&policy, "http://api.example.com./"), "the root's trailing dot names the same host");
        assert!(allows(&policy, "http://127.0.0.1:8080/"));
        assert!(allows(&policy, "https://tls.example.com/"), "the scheme's default port is the port");
        assert!(!allows(&policy, "http://tls.example.com/"), "port 80 is not 443");
        assert!(!allows(&policy, "http://127.0.0.1:8081/"));
        assert!(!allows(&policy, "http://127.0.0.1/"));
        assert!(!allows(&policy, "http://example.com/"));
        assert!(!allows(&policy, "http://api.example.com.evil.test/"));
        assert!(!allows(&policy, "http://user@api.example.com/"), "user info is refused");
    }
}
