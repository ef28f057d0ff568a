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
                format!("cannot reach the {} at {}: {}", self.what, self.base, kalit_transport::error_root(&e)),
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
    /// `POST path` with `bytes` as the body (`application/octet-stream`: a document the agent streams).
    pub fn post_bytes<T: DeserializeOwned>(&self, path: &str, bytes: Vec<u8>) -> PhoneResult<T> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        let r = self.send(req)?;
        self.decode(r)
    }

    /// `DELETE path`; any success status is fine.
    pub fn delete(&self, path: &str) -> PhoneResult<()> {
        let r = self.send(self.http.delete(format!("{}{path}", self.base)))?;
        if r.status().is_success() {
            return Ok(());
        }
        self.decode::<serde_json::Value>(r).map(|_| ())
    }
}
