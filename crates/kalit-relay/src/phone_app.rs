//! The phone app (`phone/`, TypeScript), built into `phone/dist` and committed, embedded in this binary
//! and served at `/app/`: a citizen opens `https://RELAY/app/` on their phone and installs it. Strict
//! Content-Security-Policy (scripts from this origin only, WebAssembly for Argon2id, no inline code, no
//! framing), exact content types, `nosniff`, and revalidation on every load (the service worker keeps
//! the app usable offline).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One file of the built app.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../../../phone/dist/", $name)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("argon2-worker.js", "text/javascript; charset=utf-8"),
    asset!("scanner.js", "text/javascript; charset=utf-8"),
    asset!("pfx.js", "text/javascript; charset=utf-8"),
    asset!("pfx-legacy.js", "text/javascript; charset=utf-8"),
    asset!("zxing_reader.wasm", "application/wasm"),
    asset!("pdf-view.js", "text/javascript; charset=utf-8"),
    asset!("pdf.worker.js", "text/javascript; charset=utf-8"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("manifest.webmanifest", "application/manifest+json"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("icon-192.png", "image/png"),
    asset!("icon-512.png", "image/png"),
];

/// The app's Content-Security-Policy. `connect-src` allows https and wss anywhere (the person types the
/// RA's address, which may be another host) and plain http/ws on loopback only (a relay and RA on the
/// same machine, as in `kalit demo` and the tests).
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' blob: data:; media-src 'self' blob: mediastream:; worker-src 'self'; manifest-src 'self'; \
connect-src 'self' https: wss: http://127.0.0.1:* ws://127.0.0.1:* http://localhost:* ws://localhost:*; \
object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The `/app/` routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(|h: HeaderMap| async move { serve("index.html", &h) }))
        .route("/app/{file}", get(|Path(file): Path<String>, h: HeaderMap| async move { serve(&file, &h) }))
}

/// Each asset's ETag, in `ASSETS` order: hashed once, not on every request (the WebAssembly is 1 MB).
fn etags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&kalit_core::digest::HashAlg::Sha256.digest(a.body)[..12])))
            .collect()
    })
}

fn serve(name: &str, req: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return kalit_service::ServiceError::new(kalit_proto::ErrorCode::NotFound, "no such file in the app")
            .into_response();
    };
    let (a, tag) = (&ASSETS[i], &etags()[i]);
    let fresh = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag.as_str());
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { a.body.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(self), microphone=(), geolocation=()"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_built_file_is_served_and_nothing_else() {
        let built: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../phone/dist"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        for f in &built {
            assert!(ASSETS.iter().any(|a| a.name == f), "phone/dist/{f} is built but not served");
        }
        assert_eq!(built.len(), ASSETS.len());
    }
}
