//! Outbound HTTP (`wasi:http/outgoing-handler`): only to the hosts a plugin's manifest allows, with
//! connect and first-byte timeouts. A refused request fails inside the plugin with
//! `HTTP-request-denied`; it never leaves the host.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Longest an outbound connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The outbound policy of one plugin: the `host` or `host:port` entries it may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<[String]>,
    timeout: Duration,
}

impl OutboundHttp {
    /// A policy allowing `allowed` (`host` matches any port, `host:port` that port only), each
    /// request bounded by `timeout` to its first response byte.
    pub fn new(allowed: Arc<[String]>, timeout: Duration) -> Self {
        Self { allowed, timeout }
    }

    /// Whether any host at all is allowed.
    pub fn allows_any(&self) -> bool {
        !self.allowed.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_a_port() {
        let policy = OutboundHttp::new(
            Arc::from(vec!["api.example.com".to_owned(), "127.0.0.1:8080".to_owned()]),
            Duration::ZERO,
        );
        assert!(policy.allows("api.example.com"));
        assert!(policy.allows("API.example.com:443"));
        assert!(policy.allows("127.0.0.1:8080"));
        assert!(!policy.allows("127.0.0.1:8081"));
        assert!(!policy.allows("example.com"));
        assert!(!policy.allows("api.example.com.evil.test"));
        assert!(!policy.allows(""));
    }
}
