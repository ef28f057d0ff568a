//! Guarding the loopback port (flaw 4 of the paper): runs as middleware before routing, so no handler ever
//! sees a request that fails it.
//!
//! - `Host` must be exactly the agent's own loopback address and port (DNS rebinding).
//! - `Origin` must be on the allow-list (or be the agent's own page); unknown or `null`: 403 without CORS
//!   headers. State-changing calls without `Origin` are refused.
//! - Preflights (CORS and Chrome's private/local network access) are answered only for allowed origins.
//! - POST bodies must be `application/json` (HTML forms and `text/plain` cannot send that without a
//!   preflight).
//! - Exact-origin CORS with `Vary: Origin`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kalit_proto::ErrorCode;
use kalit_service::ServiceError;

use crate::origins::Origins;

/// The origin a request came from, after the guard accepted it (`None`: no `Origin` header, a GET from a
/// non-browser client or the agent's own page).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<String>);

/// What the guard needs.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Accepted `Host` values, e.g. `127.0.0.1:8760`.
    pub hosts: Arc<Vec<String>>,
    /// The agent's own origin(s) (its local page).
    pub own: Arc<Vec<String>>,
    /// The allow-list.
    pub origins: Arc<Origins>,
    /// Largest body of any call; a larger `Content-Length` is refused before anything is read.
    pub max_body: u64,
}

fn refuse(code: ErrorCode, status: StatusCode, msg: &str) -> Response {
    let mut r = ServiceError::new(code, msg).into_response();
    *r.status_mut() = status;
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    r
}

fn cors_headers(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// `/v1/sessions/{id}/sign`.
fn is_sign_path(path: &str) -> bool {
    path.strip_prefix("/v1/sessions/")
        .and_then(|rest| rest.strip_suffix("/sign"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether the body is `application/octet-stream`.
pub(crate) fn is_octet_stream(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/octet-stream"))
}

/// The middleware.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !g.hosts.iter().any(|h| h == host) {
        return refuse(
            ErrorCode::RefusedByPolicy,
            StatusCode::MISDIRECTED_REQUEST,
            "wrong Host: the agent answers only to its own loopback address (DNS rebinding protection)",
        );
    }
    let origin = match req.headers().get(header::ORIGIN).map(|v| v.to_str()) {
        None => None,
        Some(Ok(o)) => Some(o.to_string()),
        Some(Err(_)) => return refuse(ErrorCode::RefusedByPolicy, StatusCode::FORBIDDEN, "malformed Origin"),
    };
    let own = origin.as_ref().is_some_and(|o| g.own.contains(o));
    let allowed = origin.as_ref().is_some_and(|o| own || g.origins.allowed(o));
    let path = req.uri().path().to_string();
    let local = path == "/" || path.starts_with("/local/");
    if local {
        // The agent's own page and its data: never for other origins, never with CORS.
        if origin.is_some() && !own {
            return refuse(
                ErrorCode::RefusedByPolicy,
                StatusCode::FORBIDDEN,
                "the agent's local page is not for other sites",
            );
        }
        return next.run(req).await;
    }
    if req.method() == Method::OPTIONS {
        let Some(o) = origin.filter(|_| allowed) else {
            return refuse(
                ErrorCode::RefusedByPolicy,
                StatusCode::FORBIDDEN,
                "this origin is not allowed to use the Kalit agent (kalit agent allow ORIGIN)",
            );
        };
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        cors_headers(h, &o);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, authorization"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        if req.headers().contains_key("access-control-request-private-network") {
            h.insert("access-control-allow-private-network", HeaderValue::from_static("true"));
        }
        if req.headers().contains_key("access-control-request-local-network") {
            h.insert("access-control-allow-local-network", HeaderValue::from_static("true"));
        }
        return r;
    }
    let state_changing = req.method() != Method::GET && req.method() != Method::HEAD;
    match &origin {
        Some(_) if !allowed => {
            return refuse(
                ErrorCode::RefusedByPolicy,
                StatusCode::FORBIDDEN,
                "this origin is not allowed to use the Kalit agent (kalit agent allow ORIGIN)",
            );
        }
        None if state_changing => {
            return refuse(
                ErrorCode::RefusedByPolicy,
                StatusCode::FORBIDDEN,
                "state-changing calls need an Origin on the allow-list",
            );
        }
        _ => {}
    }
    // A sign request may carry the document's bytes themselves (a large one, streamed; the handler counts
    // them): `application/octet-stream` is not a type a form can send, so the browser asks first (CORS).
    let bytes = req.method() == Method::POST && is_sign_path(&path) && is_octet_stream(req.headers());
    let max_body = if bytes { kalit_proto::session::MAX_DIGEST_DOCUMENT } else { g.max_body };
    let length = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some_and(|n| n > max_body) {
        let mut r = refuse(ErrorCode::TooLarge, StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        if let Some(o) = &origin {
            cors_headers(r.headers_mut(), o);
        }
        return r;
    }
    if req.method() == Method::POST && !is_json(req.headers()) && !bytes {
        let mut r = refuse(
            ErrorCode::InvalidInput,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json (or, to sign, application/octet-stream)",
        );
        if let Some(o) = &origin {
            cors_headers(r.headers_mut(), o);
        }
        return r;
    }
    req.extensions_mut().insert(Caller(origin.clone()));
    let mut resp = next.run(req).await;
    if let Some(o) = &origin {
        cors_headers(resp.headers_mut(), o);
    } else {
        resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}
