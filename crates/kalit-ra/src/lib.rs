//! The Kalit Registration Authority and its CA: an operator who verified a person records them and hands
//! out a one-time enrolment code; the person's phone sends a CSR with that code and receives a certificate
//! whose subject comes from the RA's record, under a fixed profile.
//!
//! Architecture invariant: only this crate holds the CA key, sealed at rest under the operator's passphrase
//! and unsealed in memory by `kalit ra serve` only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kalit_proto::ErrorCode;
use kalit_proto::ra::{IssueRequest, IssueResponse};
use kalit_service::error::JsonBody;
use kalit_service::ratelimit::{AddressLimit, limit_address};
use kalit_service::{Metrics, RateLimiter, ServiceError, ServiceResult};

pub mod ca;
mod error;
pub mod issue;
pub mod store;

pub use ca::Ca;
pub use error::RaError;
pub use store::RaStore;

/// The OpenAPI description, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");
/// Timestamp requests one address may make per minute (a burst of as many).
pub const TIMESTAMPS_PER_MINUTE: u32 = 600;
/// Longest enrolment TTL.
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// State of `kalit ra serve`.
#[derive(Debug, Clone)]
pub struct RaState {
    /// The unsealed CA.
    pub ca: Arc<Ca>,
    /// Records.
    pub store: RaStore,
    /// The RA directory (for the issuance log).
    pub dir: PathBuf,
    /// Per-address limiter for issuance attempts.
    pub limiter: Arc<RateLimiter>,
    /// Per-address limiter for timestamp requests.
    pub timestamp_limiter: Arc<RateLimiter>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where "now" comes from (the system clock; tests move a manual one).
    pub clock: kalit_service::Clock,
    /// Web origins of phone apps allowed to call the RA from a browser (CORS), e.g. the relay's
    /// `https://relay.example` serving the app at `/app/`. Empty: no CORS headers at all.
    pub app_origins: Arc<Vec<String>>,
    /// This RA's public base URL, when known: issued certificates name `URL/v1/crl` as their CRL
    /// distribution point.
    pub public_url: Option<Arc<str>>,
    /// Addresses besides loopback that may read `/metrics` (a Prometheus server elsewhere).
    pub metrics_from: Arc<Vec<std::net::IpAddr>>,
}

impl RaState {
    /// State for `dir` with an unsealed CA.
    pub async fn open(dir: &Path, ca: Ca, per_minute: u32) -> Result<RaState, RaError> {
        Ok(RaState {
            ca: Arc::new(ca),
            store: RaStore::open(dir).await?,
            dir: dir.to_path_buf(),
            limiter: Arc::new(RateLimiter::new(per_minute, per_minute.max(1))),
            timestamp_limiter: Arc::new(RateLimiter::new(TIMESTAMPS_PER_MINUTE, TIMESTAMPS_PER_MINUTE)),
            metrics: Arc::new(Metrics::new("kalit_ra")),
            clock: kalit_service::Clock::system(),
            app_origins: Arc::new(vec![]),
            metrics_from: Arc::default(),
            public_url: None,
        })
    }

    /// Serves `/metrics` to these addresses too (besides loopback).
    pub fn with_metrics_from(mut self, from: &[std::net::IpAddr]) -> RaState {
        self.metrics_from = Arc::new(from.to_vec());
        self
    }

    /// Allows phone apps served from `origins` to call the RA from a browser (each must be an exact web
    /// origin: scheme, host and port, nothing else).
    pub fn with_app_origins(mut self, origins: &[String]) -> Result<RaState, RaError> {
        let mut checked = Vec::with_capacity(origins.len());
        for o in origins {
            let o = o.trim_end_matches('/');
            kalit_core::display::origin(o).map_err(|_| {
                RaError::invalid(format!("--app-origin {o:?} is not a web origin (https://host[:port])"))
            })?;
            checked.push(o.to_string());
        }
        self.app_origins = Arc::new(checked);
        Ok(self)
    }
}

impl RaState {
    /// Names `url` (https, or http on loopback) as this RA's public address: certificates issued from now
    /// on carry `url/v1/crl` as their CRL distribution point.
    pub fn with_public_url(mut self, url: Option<&str>) -> Result<RaState, RaError> {
        self.public_url = match url {
            None => None,
            Some(u) => Some(Arc::from(check_public_url(u)?)),
        };
        Ok(self)
    }
}

/// Checks an RA's public address (https, or http on a loopback address) and returns it without a
/// trailing slash.
pub fn check_public_url(u: &str) -> Result<&str, RaError> {
    let u = u.trim_end_matches('/');
    let ok = u.starts_with("https://")
        || u.strip_prefix("http://").is_some_and(|rest| {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
        });
    if !ok || u.contains(char::is_whitespace) || u.len() > 200 {
        return Err(RaError::invalid(format!(
            "--public-url {u:?}: expected https://host[:port] (or http:// on a loopback address)"
        )));
    }
    Ok(u)
}

/// CORS for the phone apps' origins only: their preflight is answered, their requests get
/// `Access-Control-Allow-Origin` with their exact origin; any other origin gets no CORS header, so a
/// browser keeps other sites from reading the RA's answers.
async fn app_cors(
    State(origins): State<Arc<Vec<String>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| origins.iter().any(|a| a == o))
        .map(str::to_owned);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let allow = |r: &mut axum::response::Response| {
        let h = r.headers_mut();
        if let Ok(v) = header::HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.append(header::VARY, header::HeaderValue::from_static("Origin"));
    };
    if req.method() == axum::http::Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        allow(&mut r);
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, header::HeaderValue::from_static("GET, POST"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, header::HeaderValue::from_static("content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, header::HeaderValue::from_static("600"));
        return r;
    }
    let mut r = next.run(req).await;
    allow(&mut r);
    r
}

/// Records a person verified by the operator and returns their one-time enrolment code
/// (24 base32 characters in groups of four; 120 random bits; only its hash is stored).
pub async fn enrol(dir: &Path, subject: &str, ttl: Duration) -> Result<String, RaError> {
    if !dir.join("ca.json").exists() {
        return Err(RaError::new(ErrorCode::NotFound, format!("no CA in {} (run kalit ra init first)", dir.display())));
    }
    kalit_core::csr::parse_subject(subject)?;
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(RaError::invalid("the enrolment TTL is between 1 second and 90 days"));
    }
    let bytes = kalit_core::seal::random::<15>()?;
    let code = base32(&bytes);
    let grouped: Vec<String> = code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let code = grouped.join("-");
    let store = RaStore::open(dir).await?;
    let now_ms = kalit_service::now_ms();
    store.add_enrolment(&issue::code_hash(&code), subject, now_ms, now_ms + ttl.as_millis() as i64).await?;
    store.pool.close().await;
    Ok(code)
}

/// Revokes a certificate by serial (hex).
pub async fn revoke(dir: &Path, serial: &str, reason: Option<&str>) -> Result<(), RaError> {
    if let Some(r) = reason {
        issue::check_reason(r)?;
    }
    // The RA stores 16-byte serials as 32 hex digits; tools (and `kalit vault show`) print the number
    // without its leading zeros, or with colons: any of these names the same certificate.
    let mut serial = serial.trim().to_ascii_lowercase().replace(':', "");
    if !serial.is_empty() && serial.len() < 32 && serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        serial = format!("{serial:0>32}");
    }
    let store = RaStore::open(dir).await?;
    let now_ms = kalit_service::now_ms();
    let ok = store.revoke(&serial, reason, now_ms).await?;
    store.pool.close().await;
    if !ok {
        return Err(RaError::new(ErrorCode::NotFound, format!("no unrevoked certificate with serial {serial}")));
    }
    Ok(())
}

/// Every certificate the RA issued (for `kalit ra list`).
pub async fn list(dir: &Path) -> Result<Vec<store::Issued>, RaError> {
    if !dir.join("ca.json").exists() {
        return Err(RaError::new(ErrorCode::NotFound, format!("no CA in {} (run kalit ra init first)", dir.display())));
    }
    let store = RaStore::open(dir).await?;
    let out = store.issued().await;
    store.pool.close().await;
    out
}

fn base32(b: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for &x in b {
        buf = (buf << 8) | u32::from(x);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Parses a TTL such as `30m`, `24h`, `7d` or `3600s`.
pub fn parse_ttl(s: &str) -> Result<Duration, RaError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| RaError::invalid(format!("TTL {s:?}: expected a number and s, m, h or d")))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(RaError::invalid(format!("TTL {s:?}: unit must be s, m, h or d"))),
    };
    Ok(Duration::from_secs(secs))
}

async fn issue_handler(
    State(s): State<RaState>,
    JsonBody(req): JsonBody<IssueRequest>,
) -> ServiceResult<(StatusCode, axum::Json<IssueResponse>)> {
    let r = issue::issue(&s, &req).await;
    s.metrics.inc("issuance", r.as_ref().map_or_else(|e| e.code.as_str(), |_| "issued"));
    Ok((StatusCode::CREATED, axum::Json(r?)))
}

/// RFC 3161 over HTTP (3.4): a DER TimeStampReq in, a DER TimeStampResp out. A request the TSA
/// refuses is still answered 200 with a rejection inside, as the RFC asks; only a wrong media type is
/// an HTTP error.
async fn timestamp(
    State(s): State<RaState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ServiceResult<impl IntoResponse> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if media.split(';').next().map(str::trim) != Some(kalit_core::tsp::QUERY_MEDIA_TYPE) {
        s.metrics.inc("timestamps", "bad_media_type");
        return Err(ServiceError::new(
            ErrorCode::InvalidInput,
            format!("a timestamp request is sent as {}", kalit_core::tsp::QUERY_MEDIA_TYPE),
        ));
    }
    let serial = issue::random_serial().map_err(ServiceError::from)?;
    let now = s.clock.now();
    let tsa =
        kalit_core::tsp::Tsa { key: &s.ca.tsa_key, chain: &s.ca.tsa_chain, policy: kalit_core::tsp::KALIT_TSA_POLICY };
    let answer = tsa.answer(&body, now, &serial);
    let granted = kalit_core::tsp::is_granted(&answer);
    s.metrics.inc("timestamps", if granted { "granted" } else { "refused" });
    Ok(([(header::CONTENT_TYPE, kalit_core::tsp::REPLY_MEDIA_TYPE)], answer))
}

/// OCSP (RFC 6960) over HTTP POST: the issuing CA answers for the certificates it issued, from the
/// RA's records. A request it cannot read is answered `malformedRequest`, as RFC 6960 asks.
async fn ocsp(
    State(s): State<RaState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ServiceResult<impl IntoResponse> {
    use kalit_core::ocsp;
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if media.split(';').next().map(str::trim) != Some(ocsp::REQUEST_MEDIA_TYPE) {
        return Err(ServiceError::new(
            ErrorCode::InvalidInput,
            format!("an OCSP request is sent as {}", ocsp::REQUEST_MEDIA_TYPE),
        ));
    }
    let reply = |der: Vec<u8>| ([(header::CONTENT_TYPE, ocsp::RESPONSE_MEDIA_TYPE)], der);
    let ca_cert = s.ca.chain[0].clone();
    let req = match ocsp::read_request(&body, &ca_cert) {
        Ok(r) => r,
        Err(refusal) => {
            s.metrics.inc("ocsp", "malformed");
            return Ok(reply(refusal.to_der()));
        }
    };
    let mut statuses = vec![];
    for id in &req.certs {
        let serial = format!("{:0>32}", hex::encode(&id.serial));
        statuses.push(match s.store.status(&serial).await? {
            None => ocsp::Status::Unknown,
            Some((None, _)) => ocsp::Status::Good,
            Some((Some(ms), reason)) => ocsp::Status::Revoked(
                time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                    .map_err(|e| ServiceError::internal(e.to_string()))?,
                reason.as_deref().and_then(issue::reason_code),
            ),
        });
    }
    let now = s.clock.now();
    let answer = ocsp::response(&req, &statuses, s.ca.issuer.key(), &ca_cert, now, time::Duration::hours(1))
        .unwrap_or_else(|_| ocsp::Refusal::Internal.to_der());
    s.metrics.inc("ocsp", if ocsp::is_successful(&answer) { "answered" } else { "error" });
    Ok(reply(answer))
}

async fn ca_pem(State(s): State<RaState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/x-pem-file")], ca::chain_pem(&s.ca))
}

async fn crl(State(s): State<RaState>) -> ServiceResult<impl IntoResponse> {
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], issue::crl(&s).await?))
}

/// The root CA's CRL, made by `kalit ra init --public-url` (the root key is sealed while serving).
async fn root_crl(State(s): State<RaState>) -> ServiceResult<impl IntoResponse> {
    let path = s.dir.join("root.crl");
    match tokio::fs::read(&path).await {
        Ok(der) => Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], der)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ServiceError::new(
            ErrorCode::NotFound,
            "this RA publishes no root CRL (made by kalit ra init --public-url)",
        )),
        Err(e) => Err(ServiceError::internal(format!("cannot read root.crl: {e}"))),
    }
}

async fn health(State(s): State<RaState>) -> ServiceResult<axum::Json<kalit_proto::relay::Health>> {
    sqlx::query("SELECT 1").execute(&s.store.pool).await.map_err(|e| ServiceError::internal(e.to_string()))?;
    Ok(axum::Json(kalit_proto::relay::Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: "sqlite".into(),
    }))
}

/// `/metrics`, to this machine and the `metrics_from` addresses (the TCP peer: the RA trusts no proxy).
async fn metrics(
    State(s): State<RaState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
) -> ServiceResult<impl IntoResponse> {
    if !kalit_service::metrics::may_read(peer.map(|p| p.0.0.ip()), &s.metrics_from) {
        return Err(kalit_service::metrics::not_for_you());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The RA's router.
pub fn app(state: RaState) -> Router {
    let issue =
        Router::new().route("/v1/certificates", post(issue_handler)).route_layer(axum::middleware::from_fn_with_state(
            AddressLimit { limiter: state.limiter.clone(), metrics: state.metrics.clone() },
            limit_address,
        ));
    let stamp = Router::new().route("/v1/timestamp", post(timestamp)).route("/v1/ocsp", post(ocsp)).route_layer(
        axum::middleware::from_fn_with_state(
            AddressLimit { limiter: state.timestamp_limiter.clone(), metrics: state.metrics.clone() },
            limit_address,
        ),
    );
    Router::new()
        .route("/v1/ca.pem", get(ca_pem))
        .route("/v1/crl", get(crl))
        .route("/v1/root.crl", get(root_crl))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(issue)
        .merge(stamp)
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), kalit_service::metrics::track))
        .fallback(kalit_service::error::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(15),
        ))
        .layer(axum::middleware::from_fn_with_state(state.app_origins.clone(), app_cors))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        // RFC 4648 section 10 test vectors (without padding).
        for (i, o) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(i.as_bytes()), o);
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        for bad in ["", "h", "5y", "-1d", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
