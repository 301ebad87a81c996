//! Cross-site request forgery: a browser attaches the session cookie to requests another site
//! makes (a form posting `text/plain`, a same-site page on another subdomain). An unsafe method
//! authenticated by the cookie is therefore refused unless the browser says it comes from this
//! origin: `Sec-Fetch-Site: same-origin` (or `none`, typed by the user), else an `Origin` equal to
//! the request's own host or one of the operator's trusted origins. A request without either
//! header comes from no browser and is let through, as is any request carrying a bearer token
//! (which no other site can attach). This is the check of Go's `http.CrossOriginProtection`.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::authn::session_cookie;
use super::{ApiError, AppState};

/// Refuses a cross-origin unsafe request that the session cookie would authenticate.
pub async fn refuse_cross_origin_cookie_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    // HTTP/2 names the host in the URI's authority rather than a `Host` header.
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).or(request.uri().authority().map(|a| a.as_str()));
    if is_unsafe(request.method())
        && uses_session_cookie(headers)
        && !is_same_origin(headers, host, &state.auth.config.trusted_origins)
    {
        return Err(ApiError::Forbidden(format!(
            "a {} from another origin may not use the session cookie: send `Authorization: Bearer <token>`",
            request.method()
        )));
    }
    Ok(next.run(request).await)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Whether the session cookie is what would authenticate this request (no bearer token wins).
fn uses_session_cookie(headers: &HeaderMap) -> bool {
    !headers.contains_key(AUTHORIZATION) && session_cookie(headers).is_some()
}

/// Whether a browser would call this request same-origin (or it comes from a trusted origin),
/// or no browser sent it.
fn is_same_origin(headers: &HeaderMap, host: Option<&str>, trusted: &[String]) -> bool {
    let header = |name| headers.get(name).map(|value| value.to_str().unwrap_or("\u{0}"));
    let origin = header(ORIGIN.as_str()).map(|origin| origin.trim_end_matches('/'));
    let trusted_origin = origin.is_some_and(|origin| trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)));
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none") || trusted_origin;
    }
    let Some(origin) = origin else { return true };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    trusted_origin || host.zip(origin_host).is_some_and(|(host, origin_host)| origin_host.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::super::authn::tests::headers;
    use super::*;

    #[test]
    fn only_the_session_cookie_without_a_bearer_token_counts() {
        assert!(uses_session_cookie(&headers(&[("cookie", "theme=dark; autoflow_session=t")])));
        assert!(!uses_session_cookie(&headers(&[("cookie", "theme=dark")])));
        assert!(!uses_session_cookie(&headers(&[("cookie", "autoflow_session=t"), ("authorization", "Bearer x")])));
    }

    #[test]
    fn same_origin_is_what_the_browser_says_or_the_origin_matching_the_host() {
        let trusted = ["https://console.example.com".to_owned()];
        let same = |pairs: &[(&'static str, &str)]| {
            let headers = headers(pairs);
            let host = headers.get(HOST).map(|v| v.to_str().unwrap().to_owned());
            is_same_origin(&headers, host.as_deref(), &trusted)
        };
        assert!(same(&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.test")]));
        assert!(same(&[("sec-fetch-site", "none")]));
        assert!(!same(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://app.example.com"),
            ("host", "app.example.com")
        ]));
        assert!(!same(&[("sec-fetch-site", "cross-site")]));
        assert!(same(&[("sec-fetch-site", "same-site"), ("origin", "https://console.example.com")]), "trusted");
        assert!(same(&[("origin", "http://127.0.0.1:3000"), ("host", "127.0.0.1:3000")]));
        assert!(same(&[("origin", "https://console.example.com/"), ("host", "api.example.com")]));
        assert!(!same(&[("origin", "http://127.0.0.1:3001"), ("host", "127.0.0.1:3000")]));
        assert!(!same(&[("origin", "null"), ("host", "127.0.0.1:3000")]));
        assert!(!same(&[("origin", "http://evil.test")]));
        assert!(same(&[("host", "127.0.0.1:3000")]), "no browser sent it");
    }
}
