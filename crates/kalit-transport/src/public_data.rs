//! Signed public data from third parties: RFC 3161 timestamps and CRLs. `http://` and `https://` are
//! both allowed here (unlike for Kalit's own services): a token and a CRL are signed by their issuer,
//! and a timestamp request carries only a digest. The same TLS roots as Kalit's own services.
//!
//! Blocking: the command line calls these directly, the agent from its blocking pool.

use std::io::Read;

use kalit_core::tsp;
use kalit_proto::ErrorCode;
use kalit_service::ServiceError;

/// Largest CRL accepted, bytes.
pub const MAX_CRL_LEN: usize = 16 << 20;

fn client(url: &str, what: &str, code: ErrorCode) -> Result<(reqwest::Url, reqwest::blocking::Client), ServiceError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ServiceError::new(code, format!("{what} URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ServiceError::new(code, format!("{what} URL {url:?}: expected http:// or https://")));
    }
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("kalit/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(crate::http_tls_config()?)
        .build()
        .map_err(|e| ServiceError::new(ErrorCode::Internal, format!("HTTP client: {e}")))?;
    Ok((parsed, http))
}

/// Asks the RFC 3161 time-stamping authority at `url` (Kalit's RA at `/v1/timestamp`, or any other) for
/// a timestamp over `data`, and checks the answer: the token is over this request's imprint, echoes its
/// nonce and verifies with a TSA certificate.
pub fn timestamp(url: &str, data: &[u8]) -> Result<(Vec<u8>, tsp::TimestampInfo), ServiceError> {
    let (parsed, http) = client(url, "TSA", ErrorCode::Usage)?;
    let req = tsp::TimestampRequest::over(data)?;
    let unavailable = |e: &dyn std::fmt::Display| {
        ServiceError::new(ErrorCode::Unavailable, format!("cannot get a timestamp from {url}: {e}"))
    };
    let resp = http
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, tsp::QUERY_MEDIA_TYPE)
        .body(req.to_der())
        .send()
        .map_err(|e| unavailable(&crate::error_root(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(unavailable(&format!("HTTP {status}")));
    }
    let mut body = Vec::new();
    resp.take(tsp::MAX_TSP_LEN as u64 + 1).read_to_end(&mut body).map_err(|e| unavailable(&e))?;
    Ok(tsp::read_response(&body, &req)?)
}

/// Whether the TSA at `url` issues a token now (one token over a fixed text): asked before a person
/// approves a signature that will need one, so that a TSA that is down costs no approval.
pub fn check_tsa(url: &str) -> Result<(), ServiceError> {
    timestamp(url, b"kalit: TSA check").map(|_| ())
}

/// Fetches a CRL from a certificate's distribution point (a CRL is signed by its CA, so plain HTTP is
/// what CAs publish on), at most [`MAX_CRL_LEN`], checked to be a DER CRL.
pub fn fetch_crl(url: &str) -> Result<Vec<u8>, ServiceError> {
    let (parsed, http) = client(url, "CRL", ErrorCode::InvalidInput)?;
    let unavailable = |e: &dyn std::fmt::Display| {
        ServiceError::new(ErrorCode::Unavailable, format!("cannot fetch the CRL at {url}: {e}"))
    };
    let resp = http.get(parsed).send().map_err(|e| unavailable(&crate::error_root(&e)))?;
    if !resp.status().is_success() {
        return Err(unavailable(&format!("HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    resp.take(MAX_CRL_LEN as u64 + 1).read_to_end(&mut body).map_err(|e| unavailable(&e))?;
    if body.len() > MAX_CRL_LEN {
        return Err(unavailable(&"larger than 16 MiB"));
    }
    if !kalit_core::x509::is_crl(&body) {
        return Err(ServiceError::new(ErrorCode::InvalidInput, format!("{url} did not answer with a DER CRL")));
    }
    Ok(body)
}
