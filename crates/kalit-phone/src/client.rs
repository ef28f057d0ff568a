//! The phone's HTTP client for the RA and the relay: JSON in and out, error answers turned back into
//! their stable codes, plain HTTP refused except to loopback addresses.

use kalit_proto::{ApiError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{PhoneError, PhoneResult};

/// A client for one service.
#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    what: &'static str,
    token: Option<String>,
}

impl Client {
    /// A client for `base` (`https://...`, or `http://` on loopback). `KALIT_TLS_CA` may name a PEM file of
    /// extra root certificates (a private deployment or a test CA).
    pub fn new(base: &str, what: &'static str) -> PhoneResult<Client> {
        Client::build(base, what, None)
    }

    /// A client that calls the agent as a web page of `origin` would (an `Origin` header on every request,
    /// long timeouts: a signature waits for the person).
    pub fn page(agent: &str, origin: &str) -> PhoneResult<Client> {
        Client::build(agent, "agent", Some(origin))
    }

    /// Sends `Authorization: Bearer TOKEN` from now on (an agent session's capability).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    fn build(base: &str, what: &'static str, origin: Option<&str>) -> PhoneResult<Client> {
        // The one endpoint rule (https, or plain http to loopback only), then the URL's own syntax.
        let endpoint = kalit_transport::Endpoint::parse(base, what)?;
        reqwest::Url::parse(endpoint.base())
            .map_err(|e| PhoneError::new(ErrorCode::Usage, format!("{what} URL {base:?}: {e}")))?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(o) = origin {
            let v = reqwest::header::HeaderValue::from_str(o)
                .map_err(|_| PhoneError::new(ErrorCode::Usage, format!("origin {o:?}")))?;
            headers.insert(reqwest::header::ORIGIN, v);
        }
        let b = reqwest::blocking::Client::builder()
            .default_headers(headers)
            .timeout(std::time::Duration::from_secs(if origin.is_some() { 900 } else { 30 }))
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("kalit/", env!("CARGO_PKG_VERSION")));
        // The same roots as the tunnel WebSocket: the system's and KALIT_TLS_CA.
        let b = b.tls_backend_preconfigured(kalit_transport::http_tls_config()?);
        let http = b.build().map_err(|e| PhoneError::new(ErrorCode::Internal, format!("HTTP client: {e}")))?;
        Ok(Client { base: endpoint.base().to_string(), http, what, token: None })
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn send(&self, mut req: reqwest::blocking::RequestBuilder) -> PhoneResult<reqwest::blocking::Response> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req.send().map_err(|e| {
            PhoneError::new(
                ErrorCode::Unavailable,
                format!("cannot reach the {} at {}: {}", self.what, self.base, root(&e)),
            )
        })
    }

    fn decode<T: DeserializeOwned>(&self, resp: reqwest::blocking::Response) -> PhoneResult<T> {
        let status = resp.status();
        let bytes = resp.bytes().map_err(|e| {
            PhoneError::new(
                ErrorCode::Unavailable,
                format!("the {} at {} stopped answering: {e}", self.what, self.base),
            )
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                PhoneError::new(
                    ErrorCode::Unavailable,
                    format!("the {} at {} answered something unexpected: {e}", self.what, self.base),
                )
            });
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(ApiError { error }) => {
                Err(PhoneError::new(error.code, format!("the {} refused: {}", self.what, error.message)))
            }
            Err(_) => Err(PhoneError::new(
                ErrorCode::Unavailable,
                format!("the {} at {} answered HTTP {status}, not Kalit's API (wrong URL?)", self.what, self.base),
            )),
        }
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> PhoneResult<T> {
        let r = self.send(self.http.get(format!("{}{path}", self.base)))?;
        self.decode(r)
    }

    /// `POST path` with a JSON body (or none).
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: Option<&B>) -> PhoneResult<T> {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = self.send(req)?;
        self.decode(r)
    }
}

impl Client {
    /// `DELETE path`; any success status is fine.
    pub fn delete(&self, path: &str) -> PhoneResult<()> {
        let r = self.send(self.http.delete(format!("{}{path}", self.base)))?;
        if r.status().is_success() {
            return Ok(());
        }
        self.decode::<serde_json::Value>(r).map(|_| ())
    }
}

fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// A client for signed public data (timestamps, CRLs) at `url`: `http://` or `https://` (the data is
/// signed, so plain HTTP is how it is commonly published), the same roots as Kalit's own services.
fn public_data_client(
    url: &str,
    what: &str,
    code: ErrorCode,
) -> PhoneResult<(reqwest::Url, reqwest::blocking::Client)> {
    let parsed = reqwest::Url::parse(url).map_err(|e| PhoneError::new(code, format!("{what} URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(PhoneError::new(code, format!("{what} URL {url:?}: expected http:// or https://")));
    }
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("kalit/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(kalit_transport::http_tls_config()?)
        .build()
        .map_err(|e| PhoneError::new(ErrorCode::Internal, format!("HTTP client: {e}")))?;
    Ok((parsed, http))
}

/// Asks the RFC 3161 time-stamping authority at `url` (Kalit's RA at `/v1/timestamp`, or any other)
/// for a timestamp over `data`, and checks the answer: the token is over this request's imprint, echoes
/// its nonce and verifies with a TSA certificate. Plain `http://` is allowed here (unlike for Kalit's
/// own services): a token is signed, and the request carries only a digest.
pub fn timestamp(url: &str, data: &[u8]) -> PhoneResult<(Vec<u8>, kalit_core::tsp::TimestampInfo)> {
    use kalit_core::tsp;
    let (parsed, http) = public_data_client(url, "TSA", ErrorCode::Usage)?;
    let req = tsp::TimestampRequest::over(data)?;
    let unavailable = |e: &dyn std::fmt::Display| {
        PhoneError::new(ErrorCode::Unavailable, format!("cannot get a timestamp from {url}: {e}"))
    };
    let resp = http
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, tsp::QUERY_MEDIA_TYPE)
        .body(req.to_der())
        .send()
        .map_err(|e| unavailable(&root(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(unavailable(&format!("HTTP {status}")));
    }
    let mut body = Vec::new();
    use std::io::Read;
    resp.take(tsp::MAX_TSP_LEN as u64 + 1).read_to_end(&mut body).map_err(|e| unavailable(&e))?;
    Ok(tsp::read_response(&body, &req)?)
}

/// Fetches a CRL from a certificate's distribution point (`http://` or `https://`; a CRL is signed by
/// its CA, so plain HTTP is what CAs publish on), at most 16 MiB, checked to be a CRL.
pub fn fetch_crl(url: &str) -> PhoneResult<Vec<u8>> {
    let (parsed, http) = public_data_client(url, "CRL", ErrorCode::InvalidInput)?;
    let unavailable = |e: &dyn std::fmt::Display| {
        PhoneError::new(ErrorCode::Unavailable, format!("cannot fetch the CRL at {url}: {e}"))
    };
    let resp = http.get(parsed).send().map_err(|e| unavailable(&root(&e)))?;
    if !resp.status().is_success() {
        return Err(unavailable(&format!("HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    use std::io::Read;
    resp.take((16 << 20) + 1).read_to_end(&mut body).map_err(|e| unavailable(&e))?;
    if body.len() > 16 << 20 {
        return Err(unavailable(&"larger than 16 MiB"));
    }
    if !kalit_core::x509::is_crl(&body) {
        return Err(PhoneError::new(ErrorCode::InvalidInput, format!("{url} did not answer with a DER CRL")));
    }
    Ok(body)
}
