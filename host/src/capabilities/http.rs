//! Outbound HTTP (`wasi:http/outgoing-handler`): only to the hosts a plugin's manifest allows, with
//! connect and first-byte timeouts. A refused request fails inside the plugin with
//! `HTTP-request-denied`; it never leaves the host.
//!
//! A request to `http://{plugin}.autoflow.internal/…` (allowed like any host) never touches the
//! network: the host serves it with that plugin's routes, in-process, as the same user and under
//! the same request id, so one feature can use another's API (the way Spin chains components).

use std::collections::BTreeMap;
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
use crate::spec::{Manifest, config_reference};
use crate::telemetry::traces;

/// Longest an outbound connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The domain under which each plugin answers internal requests: `{plugin}.autoflow.internal`.
pub const INTERNAL_DOMAIN: &str = "autoflow.internal";
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

/// Where a request goes, in the one form both the allow-list and the internal match use: the
/// host as a resolver treats it (lower-case, without the root's trailing dot)
/// and the port (the scheme's default when none is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// Parses `host`, `host:port` or `[v6]:port`; user info, empty labels and characters no host
    /// name has are refused.
    pub fn parse(text: &str) -> Option<Self> {
        let authority: http::uri::Authority = text.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host().to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        let is_ipv6 = host.starts_with('[') && host.ends_with(']');
        let valid = if is_ipv6 {
            host[1..host.len() - 1].chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        } else {
            !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        valid.then(|| Self { host: host.to_owned(), port: authority.port_u16() })
    }

    /// The authority of a request URI, its port defaulted from the scheme.
    fn of_request(uri: &http::Uri) -> Option<Self> {
        let mut authority = Self::parse(uri.authority()?.as_str())?;
        if authority.port.is_none() {
            authority.port = match uri.scheme_str() {
                Some("https") => Some(443),
                _ => Some(80),
            };
        }
        Some(authority)
    }

    /// Whether this allow-list entry admits `target` (an entry without a port admits any port).
    fn admits(&self, target: &Authority) -> bool {
        self.host == target.host && self.port.is_none_or(|port| Some(port) == target.port)
    }

    /// Whether the host lies under [`INTERNAL_DOMAIN`], which never reaches a resolver.
    fn is_internal(&self) -> bool {
        self.host == INTERNAL_DOMAIN || self.host.ends_with(INTERNAL_SUFFIX)
    }

    /// The plugin an internal host such as `notes.autoflow.internal` names (one label).
    fn internal_plugin(&self) -> Option<&str> {
        self.host.strip_suffix(INTERNAL_SUFFIX).filter(|plugin| !plugin.contains('.'))
    }
}

/// [`INTERNAL_DOMAIN`] as a suffix of the hosts under it.
const INTERNAL_SUFFIX: &str = ".autoflow.internal";

/// The outbound policy of one plugin: the `host` or `host:port` entries it may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<[Authority]>,
    /// Whether the manifest declares outbound HTTP at all (its hosts may come from settings).
    declared: bool,
    timeout: Duration,
    internal: InternalLink,
    call: CallContext,
}

impl OutboundHttp {
    /// A policy allowing `allowed` (`host` matches any port, `host:port` that port only), each
    /// request bounded by `timeout` to its first response byte; internal requests go to `internal`.
    /// An entry that is no `host[:port]` admits nothing and is logged.
    pub fn new(allowed: &[String], declared: bool, timeout: Duration, internal: InternalLink) -> Self {
        let allowed = allowed
            .iter()
            .filter_map(|entry| {
                let parsed = Authority::parse(entry);
                if parsed.is_none() {
                    tracing::warn!(entry, "outbound-hosts entry is not `host` or `host:port`; it allows nothing");
                }
                parsed
            })
            .collect();
        Self { allowed, declared, timeout, internal, call: CallContext::default() }
    }

    /// The same policy for one call acting for `call` (its internal requests carry it on).
    pub fn for_call(&self, call: CallContext) -> Self {
        Self { call, ..self.clone() }
    }

    /// Whether the manifest declares outbound HTTP (a component importing it is refused otherwise).
    pub fn declared(&self) -> bool {
        self.declared
    }

    /// Whether a request to `target` is allowed.
    pub fn allows(&self, target: &Authority) -> bool {
        self.allowed.iter().any(|entry| entry.admits(target))
    }
}

impl Unit for OutboundHttp {
    const INTERFACE: &'static str = "wasi:http/outgoing-handler";
    const GRANT: &'static str = "[capabilities] outbound-hosts = [\"host:port\", …]";

    /// Always a policy: one that admits nothing unless the manifest declares outbound hosts.
    fn grant(load: &LoadContext<'_>) -> Option<Self> {
        let declared = &load.manifest.capabilities.outbound_hosts;
        let hosts = expand_hosts(declared, load.settings);
        Some(Self::new(&hosts, !declared.is_empty(), load.timeout, load.services.internal.clone()))
    }

    fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }
}

/// Refuses outbound hosts that could never match a request: every literal entry and every host
/// a `{{ key }}` setting gives must be `host` or `host:port` (a URL is the usual slip; the message
/// says what to write instead).
pub fn check_outbound_hosts(manifest: &Manifest, settings: &BTreeMap<String, String>) -> Result<(), String> {
    let plugin = manifest.name.as_str();
    for entry in &manifest.capabilities.outbound_hosts {
        let (hosts, from) = match config_reference(entry) {
            Some(key) => {
                let value = settings.get(key).map(String::as_str).unwrap_or_default();
                let from = format!(" (from setting `{key}`, {})", super::config::override_variable(plugin, key));
                (value.split(',').map(str::trim).filter(|host| !host.is_empty()).collect(), from)
            }
            None => (vec![entry.as_str()], String::new()),
        };
        if let Some(bad) = hosts.into_iter().find(|host| Authority::parse(host).is_none()) {
            let hint = bad
                .parse::<http::Uri>()
                .ok()
                .and_then(|uri| uri.authority().map(|authority| format!(": write `{authority}`")))
                .filter(|_| bad.contains("://"))
                .unwrap_or_default();
            return Err(format!("outbound-hosts entry `{bad}`{from} is not `host` or `host:port`{hint}"));
        }
    }
    Ok(())
}

/// The manifest's outbound hosts with each `{{ key }}` replaced by the comma-separated hosts of
/// setting `key` (the operator's override, else the manifest's default).
fn expand_hosts(entries: &[String], settings: &BTreeMap<String, String>) -> Vec<String> {
    entries
        .iter()
        .flat_map(|entry| match config_reference(entry) {
            Some(key) => settings.get(key).map(String::as_str).unwrap_or_default().split(',').map(str::trim).collect(),
            None => vec![entry.as_str()],
        })
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect()
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
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        OutboundHttp::new(&entries, true, Duration::ZERO, InternalLink::default())
    }

    fn allows(policy: &OutboundHttp, uri: &str) -> bool {
        Authority::of_request(&uri.parse().unwrap()).is_some_and(|target| policy.allows(&target))
    }

    #[test]
    fn outbound_hosts_expand_settings_the_operator_may_override() {
        let settings = BTreeMap::from([("hosts".to_owned(), " a.test:8080, ,b.test ".to_owned())]);
        let entries = ["secrets.autoflow.internal".to_owned(), "{{ hosts }}".to_owned(), "{{missing}}".to_owned()];
        assert_eq!(expand_hosts(&entries, &settings), ["secrets.autoflow.internal", "a.test:8080", "b.test"]);
    }

    #[test]
    fn outbound_hosts_written_as_urls_are_refused_with_the_fix() {
        let manifest = |hosts: &str| {
            let text = format!(
                "name = \"p\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"t\"\n\
                 [capabilities]\noutbound-hosts = {hosts}\n[config]\nhosts = \"\"\n"
            );
            Manifest::parse(&text).unwrap()
        };
        let settings = |value: &str| BTreeMap::from([("hosts".to_owned(), value.to_owned())]);
        let literal = manifest(r#"["http://127.0.0.1:8765/"]"#);
        let error = check_outbound_hosts(&literal, &settings("")).unwrap_err();
        assert_eq!(
            error,
            "outbound-hosts entry `http://127.0.0.1:8765/` is not `host` or `host:port`: write `127.0.0.1:8765`"
        );
        let templated = manifest(r#"["{{ hosts }}"]"#);
        let error = check_outbound_hosts(&templated, &settings("a.test, https://b.test/x")).unwrap_err();
        assert!(error.contains("`https://b.test/x` (from setting `hosts`, AUTOFLOW_PLUGIN_P__HOSTS)"), "{error}");
        assert!(error.ends_with("write `b.test`"), "{error}");
        assert!(check_outbound_hosts(&templated, &settings("a.test, b.test:8443")).is_ok());
        assert!(check_outbound_hosts(&manifest(r#"["api.example.com", "[::1]:80"]"#), &settings("")).is_ok());
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

    #[test]
    fn every_spelling_of_an_internal_host_is_the_same_internal_host() {
        let policy = policy(&["secrets.autoflow.internal"]);
        for spelling in [
            "http://secrets.autoflow.internal/api",
            "http://SECRETS.Autoflow.INTERNAL/api",
            "http://secrets.autoflow.internal./api",
            "http://secrets.autoflow.internal:80/api",
            "https://Secrets.autoflow.internal/api",
        ] {
            let target = Authority::of_request(&spelling.parse().unwrap()).unwrap();
            assert!(policy.allows(&target), "{spelling}");
            assert!(target.is_internal(), "{spelling}");
            assert_eq!(target.internal_plugin(), Some("secrets"), "{spelling}");
        }
    }

    #[test]
    fn hosts_under_the_internal_domain_name_one_plugin_or_none() {
        for other in ["autoflow.internal", "a.b.autoflow.internal", "A.B.Autoflow.Internal."] {
            let target = Authority::parse(other).unwrap();
            assert!(target.is_internal(), "{other}");
            assert_eq!(target.internal_plugin(), None, "{other}");
        }
        let near = Authority::parse("secrets.autoflow.internals").unwrap();
        assert!(!near.is_internal());
        for bad in ["", ".autoflow.internal", "a..autoflow.internal", "secrets.autoflow.internal..", "a b"] {
            assert_eq!(Authority::parse(bad), None, "{bad:?}");
        }
    }
}
