//! The path of a plugin request: match the route, read the body under the limit, hand the request
//! to a fresh instance of the plugin, and turn its answer (or failure) into an HTTP response.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::request_id::RequestId;
use tracing::Instrument;

use super::AppState;
use super::authn::{Caller, SESSION_COOKIE, authorize_principal};
use super::error::ApiError;
use super::metrics::PluginRoute;
use crate::capabilities::http::InternalRoutes;
use crate::contract::{self, CallContext};
use crate::plugins::routes::{Reach, RouteMatch, RouteTarget};
use crate::plugins::{LoadedPlugin, Registry};
use crate::runtime::{CallError, CapabilitySet};

/// Most headers a plugin response may carry, and their total size in bytes.
const MAX_RESPONSE_HEADERS: usize = 100;
const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// Response headers a plugin may not set: the host owns the connection and framing.
const HOST_OWNED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fallback handler: every request no host-native route matched. A response from a plugin route
/// (an error included) carries that route for the request metrics.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = request.into_parts();

    // This snapshot keeps the plugin's current build alive until the request is done, even if a
    // reload swaps in another build meanwhile.
    let registry = state.plugins.registry();
    let (target, params) = match match_route(&registry, &parts, Reach::Outside) {
        Ok(matched) => matched,
        Err(error) => return error.into_response(),
    };
    let plugin = registry.plugin(target.plugin);
    let route = PluginRoute { plugin: plugin.manifest.name.to_string(), route: target.pattern.clone() };
    let served = async {
        let caller = state.auth.authorize(&target.access, &parts.headers).await?;
        // A body trickled in slower than a plugin may run is cut off, like a trickled head.
        let timeout = state.limits.request_timeout;
        let body = tokio::time::timeout(timeout, read_body(&parts.headers, body, state.limits.max_body_bytes))
            .await
            .map_err(|_| ApiError::BodyTimeout { timeout })??;
        let principal = caller.as_ref().map(Caller::principal);
        let call = CallContext { principal, request_id, depth: 0, attempt: None };
        call_plugin(&state, plugin, target, params, &parts, body, call).await
    };
    let mut response = served.await.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(route);
    response
}

/// Serves a request a plugin made to `{plugin}.autoflow.internal`: that plugin's routes (its
/// internal ones too) under the same access rules as from outside, for the user of the request
/// that made it.
pub async fn dispatch_internal(
    state: AppState,
    plugin: String,
    request: http::Request<Bytes>,
    call: CallContext,
) -> http::Response<Bytes> {
    let (parts, body) = request.into_parts();
    let registry = state.plugins.registry();
    let result = async {
        let (target, params) = match_route(&registry, &parts, Reach::Internal)?;
        let loaded = registry.plugin(target.plugin);
        if loaded.manifest.name.as_str() != plugin {
            let path = parts.uri.path();
            return Err(ApiError::NotFound { method: parts.method.to_string(), path: path.into() });
        }
        authorize_principal(&target.access, call.principal.as_ref())?;
        if body.len() > state.limits.max_body_bytes {
            return Err(ApiError::PayloadTooLarge { limit: state.limits.max_body_bytes });
        }
        call_plugin(&state, loaded, target, params, &parts, body.to_vec(), call).await
    }
    .await;
    let (parts, body) = result.unwrap_or_else(IntoResponse::into_response).into_parts();
    // The body is in memory already (the plugin's answer, or an error), so reading it cannot fail.
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    http::Response::from_parts(parts, body)
}

/// Decoded path parameters, by name.
type Params = Vec<(String, String)>;

/// The route `parts` asks for, or the `404`/`405` saying why there is none.
fn match_route<'a>(registry: &'a Registry, parts: &Parts, reach: Reach) -> Result<(&'a RouteTarget, Params), ApiError> {
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    match registry.route(method, path, reach) {
        RouteMatch::Found { target, params } => Ok((target, decode_params(params)?)),
        RouteMatch::MethodNotAllowed { allowed } => {
            Err(ApiError::MethodNotAllowed { method: method.into(), path: path.into(), allowed })
        }
        RouteMatch::NotFound => Err(ApiError::NotFound { method: method.into(), path: path.into() }),
    }
}

/// Runs one request in a fresh instance of `plugin` and turns its answer (or failure) into a response.
async fn call_plugin(
    state: &AppState,
    plugin: &LoadedPlugin,
    target: &RouteTarget,
    params: Params,
    parts: &Parts,
    body: Vec<u8>,
    call: CallContext,
) -> Result<Response, ApiError> {
    let request = contract::Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        route: target.pattern.clone(),
        params,
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        headers: header_pairs(parts),
        body,
        principal: call.principal.clone(),
        request_id: call.request_id.clone(),
    };
    let name = plugin.manifest.name.to_string();
    // At most `max_concurrency` instances of one plugin run at once; a request waits briefly for
    // a slot, so one hot plugin cannot take every slot of the instance pool.
    let _slot = plugin
        .slot(state.limits.queue_timeout)
        .await
        .map_err(|busy| ApiError::PluginBusy { plugin: name.clone(), limit: busy.limit })?;
    let span = tracing::info_span!("plugin", plugin = %name, request_id = %call.request_id);
    let grants = plugin.grants.for_call(call);
    let Some(pre) = plugin.feature() else {
        return Err(ApiError::NotFound { method: request.method, path: request.path });
    };
    match state
        .runtime
        .handle(pre, &plugin.warm, &plugin.limits, &plugin.meters, grants, &request)
        .instrument(span)
        .await
    {
        Ok(Ok(response)) => into_http_response(&name, response, state.limits.max_response_bytes),
        Ok(Err(error)) => Err(ApiError::Plugin { plugin: name, error }),
        Err(CallError::Timeout(timeout)) => Err(ApiError::PluginTimeout { plugin: name, timeout }),
        Err(source @ CallError::MemoryExceeded(_)) => Err(ApiError::PluginMemoryExceeded { plugin: name, source }),
        Err(source) => Err(ApiError::PluginFailed { plugin: name, source }),
    }
}

impl InternalRoutes for AppState {
    fn serve(
        &self,
        plugin: String,
        request: http::Request<Bytes>,
        call: CallContext,
    ) -> std::pin::Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send>> {
        Box::pin(dispatch_internal(self.clone(), plugin, request, call))
    }
}

/// Reads the whole body, refusing it with `413` as soon as it is known to exceed `limit`.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge { limit }),
        Err(error) => Err(ApiError::BadRequest(format!("the request body could not be read: {error}"))),
    }
}

fn decode_params(params: Vec<(String, String)>) -> Result<Vec<(String, String)>, ApiError> {
    params
        .into_iter()
        .map(|(name, raw)| {
            percent_encoding::percent_decode_str(&raw)
                .decode_utf8()
                .map(|value| (name.clone(), value.into_owned()))
                .map_err(|_| ApiError::BadRequest(format!("path parameter `{name}` is not valid UTF-8 once decoded")))
        })
        .collect()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// The request headers a plugin sees: all but the host's credentials. `Authorization` is the
/// host's (its bearer token authenticates the caller), and the session cookie is dropped from
/// `Cookie` while other cookies stay; the plugin learns who calls from the principal alone.
fn header_pairs(parts: &Parts) -> Vec<(String, String)> {
    parts
        .headers
        .iter()
        .filter(|(name, _)| **name != AUTHORIZATION)
        .filter_map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = if *name == COOKIE { without_session_cookie(&value)? } else { value.into_owned() };
            Some((name.as_str().to_owned(), value))
        })
        .collect()
}

/// A `Cookie` header's value without the session cookie; `None` if nothing else is left.
fn without_session_cookie(cookies: &str) -> Option<String> {
    let kept: Vec<&str> = cookies
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next().map(str::trim) != Some(SESSION_COOKIE))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Response headers that carry one value: a plugin sending one twice is answered `502`, naming it.
const SINGLE_VALUE_HEADERS: &[&str] = &[
    "access-control-allow-credentials",
    "access-control-allow-origin",
    "access-control-max-age",
    "age",
    "content-disposition",
    "content-location",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expires",
    "last-modified",
    "location",
    "retry-after",
];

/// Checks and converts a plugin's response; anything HTTP cannot carry is a `502`.
fn into_http_response(plugin: &str, response: contract::Response, max_body: usize) -> Result<Response, ApiError> {
    let bad = |reason: String| ApiError::BadPluginResponse { plugin: plugin.to_owned(), reason };
    if response.body.len() > max_body {
        return Err(bad(format!("its body of {} bytes exceeds the limit of {max_body} bytes", response.body.len())));
    }
    let header_bytes: usize = response.headers.iter().map(|(name, value)| name.len() + value.len()).sum();
    if response.headers.len() > MAX_RESPONSE_HEADERS || header_bytes > MAX_RESPONSE_HEADER_BYTES {
        return Err(bad(format!(
            "its {} headers ({header_bytes} bytes) exceed the limit of {MAX_RESPONSE_HEADERS} headers and \
             {MAX_RESPONSE_HEADER_BYTES} bytes",
            response.headers.len()
        )));
    }
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| bad(format!("status {} is not an HTTP status between 200 and 599", response.status)))?;
    let mut http = Response::new(Body::from(response.body));
    *http.status_mut() = status;
    for (name, value) in response.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("header name {name:?} is not a valid HTTP header name")))?;
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| bad(format!("the value of header {name:?} is not a valid HTTP header value")))?;
        if SINGLE_VALUE_HEADERS.contains(&header_name.as_str()) && http.headers().contains_key(&header_name) {
            return Err(bad(format!("it sent header `{header_name}` twice, which carries one value")));
        }
        if !HOST_OWNED_HEADERS.contains(&header_name.as_str()) {
            http.headers_mut().append(header_name, header_value);
        }
    }
    Ok(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_removed_and_other_cookies_stay() {
        assert_eq!(without_session_cookie("theme=dark; autoflow_session=abc; x=1").as_deref(), Some("theme=dark; x=1"));
        assert_eq!(without_session_cookie(" autoflow_session = abc ;lang=en").as_deref(), Some("lang=en"));
        assert_eq!(without_session_cookie("autoflow_session=abc"), None);
        assert_eq!(without_session_cookie("autoflow_sessionx=1").as_deref(), Some("autoflow_sessionx=1"));
    }
}
