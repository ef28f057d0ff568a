//! Direct mode (kalit.js with no agent): which browser pages may open a tunnel, and the relay's signed
//! statement of a page's origin for the phone.
//!
//! A browser always sends `Origin` on a WebSocket upgrade and page scripts cannot set it, so the origin
//! the relay reads there is the page's own. The agent (a native process) sends none and gets no
//! statement: the phone then relies on the computer, as before. A page that writes another origin into
//! its QR than the one its browser sent is caught by the phone, which compares the two.

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use kalit_core::display;
use kalit_proto::ErrorCode;
use kalit_service::ServiceError;

/// The longest `Origin` header read (a web origin is at most 255 bytes).
const MAX_ORIGIN_HEADER: usize = 256;

/// The pages that may open direct sessions: entries of the relay's `direct_origins` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectOrigins {
    any_https: bool,
    loopback: bool,
    exact: Vec<String>,
}

impl Default for DirectOrigins {
    /// Any https origin, and pages on this machine's loopback addresses.
    fn default() -> Self {
        DirectOrigins { any_https: true, loopback: true, exact: vec![] }
    }
}

impl DirectOrigins {
    /// Reads the setting: `https://*` (any https origin), `loopback` (http or https on 127.0.0.0/8,
    /// `[::1]` or `localhost`, any port), or exact origins. An empty list turns direct mode off.
    pub fn parse(entries: &[String]) -> Result<DirectOrigins, ServiceError> {
        let mut d = DirectOrigins { any_https: false, loopback: false, exact: vec![] };
        for e in entries {
            match e.as_str() {
                "https://*" => d.any_https = true,
                "loopback" => d.loopback = true,
                o => {
                    let o = display::origin(o).map_err(|_| {
                        ServiceError::invalid(format!(
                            "direct_origins: \"{}\" is not https://*, loopback or a web origin like https://portal.example",
                            display::field(o, 80)
                        ))
                    })?;
                    d.exact.push(o);
                }
            }
        }
        Ok(d)
    }

    /// Whether direct mode is on at all.
    pub fn enabled(&self) -> bool {
        self.any_https || self.loopback || !self.exact.is_empty()
    }

    fn allows(&self, origin: &str) -> bool {
        (self.any_https && origin.starts_with("https://"))
            || (self.loopback && is_loopback(origin))
            || self.exact.iter().any(|o| o == origin)
    }

    /// The origin of a tunnel's waiting side: `None` for a client that sent no `Origin` (the agent);
    /// the page's origin when this relay lets it open direct sessions; a clear refusal otherwise.
    pub fn of_request(&self, headers: &HeaderMap) -> Result<Option<String>, ServiceError> {
        let mut values = headers.get_all(ORIGIN).iter();
        let Some(v) = values.next() else { return Ok(None) };
        if values.next().is_some() {
            return Err(ServiceError::invalid("more than one Origin header"));
        }
        if v.len() > MAX_ORIGIN_HEADER {
            return Err(ServiceError::invalid(format!("an Origin header longer than {MAX_ORIGIN_HEADER} bytes")));
        }
        let text = v.to_str().map_err(|_| ServiceError::invalid("an Origin header that is not ASCII text"))?;
        if text == "null" {
            return Err(ServiceError::new(
                ErrorCode::RefusedByPolicy,
                "a page without an origin of its own (a file, a sandboxed frame, a data: URL) cannot open a direct signing session",
            ));
        }
        let origin = display::origin(text).map_err(|e| ServiceError::invalid(format!("the Origin header: {e}")))?;
        if !self.allows(&origin) {
            return Err(ServiceError::new(
                ErrorCode::RefusedByPolicy,
                format!(
                    "this relay does not open direct signing sessions for {origin}; its operator lists the origins that may (direct_origins)"
                ),
            ));
        }
        Ok(Some(origin))
    }
}

/// `http(s)://` on a loopback host (127.0.0.0/8, `[::1]`, `localhost`), with any port. `origin` has
/// passed `display::origin`: scheme, host, optional port, nothing else.
fn is_loopback(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => rest.split_once(':').map_or(rest, |(h, _)| h),
    };
    kalit_proto::is_loopback_host(host)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_origin(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(ORIGIN, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn origin_headers_missing_null_huge_odd_and_listed() {
        let d = DirectOrigins::default();
        assert_eq!(d.of_request(&HeaderMap::new()).unwrap(), None, "the agent sends none");
        assert_eq!(
            d.of_request(&with_origin(b"https://portal.example")).unwrap().as_deref(),
            Some("https://portal.example")
        );
        assert_eq!(
            d.of_request(&with_origin(b"http://127.0.0.1:8080")).unwrap().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(d.of_request(&with_origin(b"http://[::1]:81")).unwrap().as_deref(), Some("http://[::1]:81"));
        let code = |h: &HeaderMap| d.of_request(h).unwrap_err().code;
        assert_eq!(code(&with_origin(b"null")), ErrorCode::RefusedByPolicy);
        assert_eq!(code(&with_origin(b"http://portal.example")), ErrorCode::RefusedByPolicy, "plain http off loopback");
        assert_eq!(code(&with_origin(b"http://127.0.0.1.evil.example")), ErrorCode::RefusedByPolicy);
        let huge = format!("https://{}.example", "a".repeat(300));
        assert_eq!(code(&with_origin(huge.as_bytes())), ErrorCode::InvalidInput);
        for odd in [
            &b"https://portal.example/path"[..],
            b"HTTPS://PORTAL.EXAMPLE",
            b"https://a b",
            b"\xff\xfe",
            b"",
            b"javascript:1",
        ] {
            assert_eq!(code(&with_origin(odd)), ErrorCode::InvalidInput, "{odd:?}");
        }
        let mut two = with_origin(b"https://a.example");
        two.append(ORIGIN, HeaderValue::from_static("https://b.example"));
        assert_eq!(code(&two), ErrorCode::InvalidInput);

        let listed = DirectOrigins::parse(&["https://my.gov.example".into()]).unwrap();
        assert!(listed.of_request(&with_origin(b"https://my.gov.example")).is_ok());
        assert_eq!(
            listed.of_request(&with_origin(b"https://other.example")).unwrap_err().code,
            ErrorCode::RefusedByPolicy
        );
        assert_eq!(
            listed.of_request(&with_origin(b"http://127.0.0.1:1")).unwrap_err().code,
            ErrorCode::RefusedByPolicy
        );
        let off = DirectOrigins::parse(&[]).unwrap();
        assert!(!off.enabled());
        assert!(off.of_request(&with_origin(b"https://my.gov.example")).is_err());
        assert!(off.of_request(&HeaderMap::new()).is_ok(), "the agent still works");
        assert!(DirectOrigins::parse(&["https://*.example".into()]).is_err());
    }

    #[test]
    fn direct_origins_from_the_file_the_package_ships_and_the_environment() {
        use crate::config::{ENV_PREFIX, RelayConfig};
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/debian/relay.toml");
        let cfg: RelayConfig = kalit_service::config::load_from(Some(&shipped), ENV_PREFIX, []).unwrap();
        assert_eq!(DirectOrigins::parse(&cfg.direct_origins).unwrap(), DirectOrigins::default());
        let env =
            [("KALIT_RELAY_DIRECT_ORIGINS".to_string(), "https://my.gov.example, https://bank.example".to_string())];
        let cfg: RelayConfig = kalit_service::config::load_from(Some(&shipped), ENV_PREFIX, env).unwrap();
        assert_eq!(cfg.direct_origins, ["https://my.gov.example", "https://bank.example"]);
        let d = DirectOrigins::parse(&cfg.direct_origins).unwrap();
        assert!(d.of_request(&with_origin(b"https://bank.example")).is_ok());
        assert!(d.of_request(&with_origin(b"https://evil.example")).is_err());
    }
}
