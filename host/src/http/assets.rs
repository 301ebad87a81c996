//! The host's own pages (`/openapi`, `/console`): markup, script and style compiled into the
//! binary and served under one strict policy, so they load nothing but themselves and reach
//! nothing but this host.

use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};

/// Scripts and styles from this host only (no inline code), requests to this host only, no
/// framing, and no form posting anywhere: pages send their forms with `fetch`.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What a page's file is.
#[derive(Debug, Clone, Copy)]
pub enum Asset {
    Html(&'static str),
    Script(&'static str),
    Style(&'static str),
    Svg(&'static str),
}

impl IntoResponse for Asset {
    fn into_response(self) -> Response {
        let (content_type, body) = match self {
            Asset::Html(body) => ("text/html; charset=utf-8", body),
            Asset::Script(body) => ("text/javascript; charset=utf-8", body),
            Asset::Style(body) => ("text/css; charset=utf-8", body),
            Asset::Svg(body) => ("image/svg+xml", body),
        };
        let headers = [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        (headers, body).into_response()
    }
}
