//! The client transport of the agent and the phone: one [`Endpoint`] rule (https, or plain http to
//! loopback only), one rustls configuration (aws-lc-rs, the system's roots plus `KALIT_TLS_CA`) shared by
//! their HTTP clients and the tunnel WebSocket, and reading and writing the tunnel: relay events, frames,
//! and channel messages over them.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use kalit_core::session::Channel;
use kalit_proto::ErrorCode;
use kalit_proto::session::{ChannelMessage, TunnelEvent};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use kalit_service::ServiceError;

pub mod public_data;

/// The innermost cause of an error (an HTTP client's outer messages say only "error sending request").
pub fn error_root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// A connected tunnel WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub use kalit_proto::is_loopback_host;

/// A service's base URL, checked once by the one rule every client of Kalit follows: `https://`, or
/// plain `http://` to a loopback host only. The relay's HTTP API and its tunnel WebSocket, the RA, and the
/// agent's view of the relay all go through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    tls: bool,
    rest: String,
}

impl Endpoint {
    /// Parses `base`; `what` names the service in messages ("relay", "RA").
    pub fn parse(base: &str, what: &str) -> Result<Endpoint, ServiceError> {
        let base = base.trim_end_matches('/');
        let (scheme, rest) = base
            .split_once("://")
            .ok_or_else(|| ServiceError::new(ErrorCode::Usage, format!("{what} URL {base:?} has no scheme")))?;
        let host = rest.split('/').next().unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        if host.is_empty() {
            return Err(ServiceError::new(ErrorCode::Usage, format!("{what} URL {base:?} has no host")));
        }
        let tls = match scheme {
            "https" => true,
            "http" if is_loopback_host(host) => false,
            "http" => {
                return Err(ServiceError::new(
                    ErrorCode::RefusedByPolicy,
                    format!("refusing plain HTTP to {base}: use https:// (plain HTTP is for loopback only)"),
                ));
            }
            s => return Err(ServiceError::new(ErrorCode::Usage, format!("{what} URL scheme {s:?} (expected https)"))),
        };
        Ok(Endpoint { base: base.to_string(), tls, rest: rest.to_string() })
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP(S) URL of `path`.
    pub fn http(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The WebSocket URL of `path` (`wss://`, or `ws://` on loopback).
    pub fn ws(&self, path: &str) -> String {
        format!("{}://{}{path}", if self.tls { "wss" } else { "ws" }, self.rest)
    }
}

/// The WebSocket URL of `path` on the service at `base` (`https://` -> `wss://`; `http://` only on loopback).
pub fn ws_url(base: &str, path: &str) -> Result<String, ServiceError> {
    Ok(Endpoint::parse(base, "relay")?.ws(path))
}

/// The TLS client configuration of [`tls_config`], for an HTTP client (reqwest's
/// `tls_backend_preconfigured`), so HTTP and WebSocket clients trust exactly the same roots.
pub fn http_tls_config() -> Result<rustls::ClientConfig, ServiceError> {
    Ok((*tls_config()?).clone())
}

/// rustls client configuration: the system's roots and the PEM certificates in `KALIT_TLS_CA`. Built once
/// per process (every session would otherwise reread the system's certificate store).
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, ServiceError> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, ServiceError>> = std::sync::OnceLock::new();
    CONFIG.get_or_init(build_tls_config).clone()
}

fn build_tls_config() -> Result<Arc<rustls::ClientConfig>, ServiceError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(path) = std::env::var_os("KALIT_TLS_CA") {
        let pem = std::fs::read(&path).map_err(|e| {
            ServiceError::new(ErrorCode::Io, format!("KALIT_TLS_CA {}: {e}", std::path::Path::new(&path).display()))
        })?;
        let certs = kalit_core::x509::parse_cert_bundle(&pem)
            .map_err(|e| ServiceError::invalid(format!("KALIT_TLS_CA: {e}")))?;
        for der in certs {
            roots.add(der.into()).map_err(|e| ServiceError::invalid(format!("KALIT_TLS_CA: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::internal(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Opens a WebSocket to `url` (from [`ws_url`]) with frames limited to one Noise message.
pub async fn connect(url: &str) -> Result<Ws, ServiceError> {
    connect_from(url, None).await
}

/// Like [`connect`]; for a plain `ws://` URL to a loopback IP address, the connection leaves from
/// `source` when given (an agent listening on 127.0.0.2 talks to a loopback relay from 127.0.0.2, so the
/// relay sees which local address the computer's side used).
pub async fn connect_from(url: &str, source: Option<std::net::IpAddr>) -> Result<Ws, ServiceError> {
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(kalit_proto::session::MAX_FRAME + 1024))
        .max_frame_size(Some(kalit_proto::session::MAX_FRAME + 1024));
    let connector = if url.starts_with("wss://") { Some(Connector::Rustls(tls_config()?)) } else { None };
    let target = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .and_then(|hp| hp.parse::<std::net::SocketAddr>().ok())
        .filter(|a| a.ip().is_loopback());
    let fut = async {
        match (source.filter(|s| s.is_loopback()), target) {
            (Some(src), Some(dst)) if src.is_ipv4() == dst.is_ipv4() => {
                let sock =
                    if dst.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
                        .map_err(tokio_tungstenite::tungstenite::Error::Io)?;
                sock.bind(std::net::SocketAddr::new(src, 0)).map_err(tokio_tungstenite::tungstenite::Error::Io)?;
                let stream = sock.connect(dst).await.map_err(tokio_tungstenite::tungstenite::Error::Io)?;
                tokio_tungstenite::client_async_tls_with_config(url, stream, Some(cfg), connector).await
            }
            _ => tokio_tungstenite::connect_async_tls_with_config(url, Some(cfg), true, connector).await,
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(15), fut).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let body = resp.body().as_deref().unwrap_or_default();
            let msg = serde_json::from_slice::<kalit_proto::ApiError>(body).ok();
            Err(match msg {
                Some(e) => ServiceError::new(e.error.code, e.error.message),
                None => ServiceError::new(
                    ErrorCode::Unavailable,
                    format!("the relay refused the tunnel (HTTP {}): is this a Kalit relay?", resp.status()),
                ),
            })
        }
        Ok(Err(e)) => Err(ServiceError::new(
            ErrorCode::Unavailable,
            format!("cannot reach the relay at {}: {e}; check the network connection, then try again", origin_of(url)),
        )),
        Err(_) => Err(ServiceError::new(
            ErrorCode::Unavailable,
            format!(
                "the relay at {} did not answer within 15 s; check the network connection, then try again",
                origin_of(url)
            ),
        )),
    }
}

/// A WebSocket URL's scheme, host and port, without the path (a tunnel's path names its tunnel: messages
/// name the relay, not the session).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find(['/', '?']).map_or(url, |end| &url[..after_scheme + end])
}

/// What arrives on a tunnel WebSocket: a relay control event (text) or an opaque frame (binary).
#[derive(Debug)]
pub enum Incoming {
    /// A control event other than `error` (which is returned as the error it names).
    Event(TunnelEvent),
    /// A binary frame: a Noise message.
    Frame(Vec<u8>),
}

fn unavailable(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Unavailable, msg)
}

/// The next event or frame; the relay's `error` event, a close or a broken connection is an error.
pub async fn next_incoming(ws: &mut Ws) -> Result<Incoming, ServiceError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(Incoming::Frame(b.to_vec())),
            Some(Ok(Message::Text(t))) => {
                let e: TunnelEvent = serde_json::from_str(t.as_str())
                    .map_err(|_| unavailable("the relay sent something that is not a tunnel event"))?;
                if let TunnelEvent::Error { code, message } = e {
                    return Err(ServiceError::new(code, format!("relay: {message}")));
                }
                return Ok(Incoming::Event(e));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => return Err(unavailable("the relay closed the tunnel")),
            Some(Err(e)) => return Err(unavailable(format!("the tunnel broke: {e}"))),
        }
    }
}

/// The next binary frame of a paired tunnel (any event is an error there).
pub async fn next_frame(ws: &mut Ws) -> Result<Vec<u8>, ServiceError> {
    match next_incoming(ws).await? {
        Incoming::Frame(f) => Ok(f),
        Incoming::Event(_) => Err(unavailable("unexpected relay event in a paired tunnel")),
    }
}

/// Sends one frame or event.
pub async fn send(ws: &mut Ws, m: Message) -> Result<(), ServiceError> {
    ws.send(m).await.map_err(|e| unavailable(format!("the tunnel broke: {e}")))
}

/// The next whole channel message (reading as many frames as it spans).
pub async fn next_message(ws: &mut Ws, ch: &mut Channel) -> Result<ChannelMessage, ServiceError> {
    loop {
        let f = next_frame(ws).await?;
        if let Some(m) = ch.open(&f)? {
            return Ok(m);
        }
    }
}

/// Encrypts and sends a channel message.
pub async fn send_message(ws: &mut Ws, ch: &mut Channel, m: &ChannelMessage) -> Result<(), ServiceError> {
    for f in ch.seal(m)? {
        send(ws, Message::Binary(f.into())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn a_relay_is_named_by_its_origin_never_by_the_tunnel_path() {
        assert_eq!(origin_of("ws://127.0.0.1:8080/v1/tunnel/abc/join?challenge=1"), "ws://127.0.0.1:8080");
        assert_eq!(origin_of("wss://relay.example/v1/tunnel/abc/wait"), "wss://relay.example");
        assert_eq!(origin_of("wss://relay.example?x=1"), "wss://relay.example");
        assert_eq!(origin_of("wss://relay.example"), "wss://relay.example");
        assert_eq!(origin_of("relay.example/v1/x"), "relay.example");
    }
}
