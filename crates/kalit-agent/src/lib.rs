//! The Kalit agent (module 1 of the paper, C_c): a web service on a loopback port that web pages call,
//! through `web/kalit.js`, to hash, sign with the person's phone, and verify.
//!
//! `app(state, port)` builds the router; `kalit agent serve` is a thin binary around [`build`], [`app`] and
//! [`serve`]. The guard ([`guard`]) runs before routing; sessions ([`session`]) talk to the phone through
//! the relay's blind tunnel with the Noise channel of `kalit_core::session`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kalit_core::x509;
use kalit_proto::ErrorCode;
use kalit_proto::relay::{RelayIdentity, WELL_KNOWN_PATH};
use kalit_proto::session::MAX_DOCUMENT;
use kalit_service::{RateLimiter, ServiceError};
use tower_http::timeout::TimeoutLayer;

mod api;
pub mod guard;
pub mod origins;
mod pades;
pub mod session;

pub use origins::{Origins, normalize_origin};

/// The OpenAPI description of the agent's API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");
/// Default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8760";
/// Largest body of the small calls (sessions, status).
const SMALL_BODY: usize = 16 * 1024;
/// Largest body of calls that carry a document.
const DOC_BODY: usize = MAX_DOCUMENT.div_ceil(3) * 4 * 2 + 64 * 1024;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The relay's base URL.
    pub relay: String,
    /// Data directory (origins, pinned relay identity).
    pub data: PathBuf,
    /// CA certificate files: phones' certificates must chain to one.
    pub trust: Vec<PathBuf>,
    /// Seconds the phone has to answer a sign request (approval and PIN).
    pub approval_timeout_secs: u64,
    /// Print QR codes and SAS on the terminal.
    pub print_qr: bool,
    /// New sessions per minute per origin (0: no limit; burst 5).
    pub sessions_per_minute: u32,
    /// Run without trust anchors, relying on the relay's attestations alone (a breached relay could then
    /// vouch for any certificate). Off by default: the agent refuses to start without `trust`.
    pub dangerously_trust_relay_attestations_only: bool,
    /// The RFC 3161 time-stamping authority for PDF signatures of level B-T and above (pages cannot name
    /// one: the agent fetches only what its operator configured).
    pub tsa: Option<String>,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentState {
    /// The relay's base URL.
    pub relay_url: String,
    /// The relay's id.
    pub relay_id: kalit_proto::RelayId,
    /// The relay's Ed25519 attestation key.
    pub relay_public_key: Arc<Vec<u8>>,
    /// DER trust anchors.
    pub anchors: Arc<Vec<Vec<u8>>>,
    /// The origin allow-list.
    pub origins: Arc<Origins>,
    /// Sessions.
    pub sessions: Arc<session::Sessions>,
    /// New sessions per origin.
    pub session_limiter: Arc<RateLimiter>,
    /// See [`AgentConfig::approval_timeout_secs`].
    pub approval_timeout_secs: u64,
    /// See [`AgentConfig::print_qr`].
    pub print_qr: bool,
    /// This computer's long-term identity (the Noise static key the phone remembers).
    pub computer: Arc<kalit_core::session::ComputerKey>,
    /// For a loopback relay: the local address the tunnel connections leave from (the agent's own).
    pub source_ip: Option<std::net::IpAddr>,
    /// See [`AgentConfig::tsa`].
    pub tsa: Option<Arc<str>>,
}

/// Loads this computer's identity from `DATA/computer-key` (32 bytes, 0600), creating it on first use.
pub fn computer_key(data: &Path) -> Result<kalit_core::session::ComputerKey, ServiceError> {
    use kalit_core::session::ComputerKey;
    let path = data.join("computer-key");
    match std::fs::read(&path) {
        Ok(b) => ComputerKey::from_private(&kalit_core::SecretBytes::new(b))
            .map_err(|e| ServiceError::new(ErrorCode::Corrupt, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data).map_err(io(data))?;
            let key = ComputerKey::generate().map_err(ServiceError::from)?;
            kalit_service::files::atomic_write(&path, key.private().expose_secret()).map_err(io(&path))?;
            Ok(key)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// Runs CPU-bound work (decoding, encoding, hashing, verifying documents) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ServiceError::internal(format!("worker: {e}")))?
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |e| ServiceError::new(ErrorCode::Io, format!("{}: {e}", what.display()))
}

/// Fetches the relay's identity and pins it in `data/relay.json` on first use; a later change of key is
/// refused (delete the file to accept a relay that really changed its key). Returns it with its raw key.
pub async fn relay_identity(relay: &str, data: &Path) -> Result<(RelayIdentity, Vec<u8>), ServiceError> {
    // The same endpoint rule and the same TLS roots (the system's and KALIT_TLS_CA) as the tunnel.
    let url = kalit_transport::Endpoint::parse(relay, "relay")?.http(WELL_KNOWN_PATH);
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(kalit_transport::http_tls_config()?)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| ServiceError::internal(format!("HTTP client: {e}")))?;
    let unreachable =
        |e: String| ServiceError::new(ErrorCode::Unavailable, format!("cannot reach the relay at {relay}: {e}"));
    let resp = client.get(&url).send().await.map_err(|e| unreachable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(unreachable(format!("HTTP {} from {url}: is this a Kalit relay?", resp.status())));
    }
    let id: RelayIdentity = resp.json().await.map_err(|e| unreachable(format!("not a Kalit relay identity: {e}")))?;
    // The key must be the one the id names (the same check as the phone's).
    let public_key = kalit_core::ceremony::check_relay_identity(&id)?;
    let pin = data.join("relay.json");
    match std::fs::read(&pin) {
        Ok(b) => {
            let pinned: RelayIdentity = serde_json::from_slice(&b)
                .map_err(|e| ServiceError::new(ErrorCode::Corrupt, format!("{}: {e}", pin.display())))?;
            if pinned.public_key != id.public_key || pinned.relay_id != id.relay_id {
                return Err(ServiceError::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "the relay at {relay} now has another identity than the one pinned in {} (relay id {} -> {}). If the operator really changed it, delete that file",
                        pin.display(),
                        pinned.relay_id,
                        id.relay_id
                    ),
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data).map_err(io(data))?;
            // The pin is the root key (the relay id's); the signing keys come with each attestation.
            let pinned = RelayIdentity { signing_keys: vec![], ..id.clone() };
            let json = serde_json::to_vec_pretty(&pinned).map_err(|e| ServiceError::internal(e.to_string()))?;
            kalit_service::files::atomic_write(&pin, &json).map_err(io(&pin))?;
        }
        Err(e) => return Err(io(&pin)(e)),
    }
    Ok((id, public_key))
}

impl AgentState {
    /// What a session's state machine trusts: this relay and the trust anchors.
    pub fn session_config(&self) -> kalit_core::flow::AgentConfig {
        kalit_core::flow::AgentConfig {
            relay_id: self.relay_id.clone(),
            relay_public_key: self.relay_public_key.to_vec(),
            anchors: self.anchors.to_vec(),
        }
    }
}

/// Builds the state: relay identity (pinned), trust anchors, origin list.
pub async fn build(cfg: &AgentConfig) -> Result<AgentState, ServiceError> {
    let (id, public_key) = relay_identity(&cfg.relay, &cfg.data).await?;
    let mut anchors = vec![];
    for f in &cfg.trust {
        let bytes = std::fs::read(f).map_err(io(f))?;
        anchors.extend(
            x509::parse_cert_bundle(&bytes)
                .map_err(|e| ServiceError::invalid(format!("trust file {}: {e}", f.display())))?,
        );
    }
    if anchors.is_empty() {
        if !cfg.dangerously_trust_relay_attestations_only {
            return Err(ServiceError::new(
                ErrorCode::Usage,
                "the agent needs the CA certificates that phones' certificates must chain to (--trust CA.pem); to rely on the relay's attestations alone, say so with --dangerously-trust-relay-attestations-only",
            ));
        }
        tracing::warn!(
            "DANGER: no trust anchors; phones' certificates are checked only through the relay's attestations (a breached relay could vouch for any certificate)"
        );
    }
    if let Some(t) = &cfg.tsa
        && !(t.starts_with("http://") || t.starts_with("https://"))
    {
        return Err(ServiceError::new(ErrorCode::Usage, format!("TSA URL {t:?}: expected http:// or https://")));
    }
    Ok(AgentState {
        relay_url: cfg.relay.trim_end_matches('/').to_string(),
        relay_id: id.relay_id,
        relay_public_key: Arc::new(public_key),
        anchors: Arc::new(anchors),
        origins: Arc::new(Origins::new(&cfg.data)),
        sessions: Arc::new(session::Sessions::default()),
        session_limiter: Arc::new(RateLimiter::new(cfg.sessions_per_minute, 5)),
        approval_timeout_secs: cfg.approval_timeout_secs,
        print_qr: cfg.print_qr,
        computer: Arc::new(computer_key(&cfg.data)?),
        source_ip: None,
        tsa: cfg.tsa.as_deref().map(Arc::from),
    })
}

/// The agent's router for a server listening on `addr` (used for the `Host` check and its own origin).
pub fn app(state: AgentState, addr: SocketAddr) -> Router {
    let host = addr.to_string();
    let g = guard::Guard {
        hosts: Arc::new(vec![host.clone()]),
        own: Arc::new(vec![format!("http://{host}")]),
        origins: state.origins.clone(),
        max_body: DOC_BODY as u64,
    };
    let short = Router::new()
        .route("/", get(api::page))
        .route("/local/sessions", get(api::local_sessions))
        .route("/openapi.json", get(api::openapi))
        .route("/v1/status", get(api::status))
        .route("/v1/sessions", post(api::create_session))
        .route("/v1/sessions/{id}", get(api::session_state).delete(api::end_session))
        .layer(DefaultBodyLimit::max(SMALL_BODY))
        .merge(
            Router::new()
                .route("/v1/hash", post(api::hash))
                .route("/v1/verify", post(api::verify))
                .route("/v1/verify/pdf", post(api::verify_pdf))
                .layer(DefaultBodyLimit::max(DOC_BODY)),
        )
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)));
    let long = Router::new()
        .route("/v1/sessions/{id}/sign", post(api::sign))
        .layer(DefaultBodyLimit::max(DOC_BODY))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.approval_timeout_secs + 30),
        ));
    short
        .merge(long)
        .fallback(kalit_service::error::not_found)
        .layer(axum::middleware::from_fn_with_state(g, guard::guard))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Refuses any address that is not loopback: the agent is for pages in this computer's browser only.
pub fn check_loopback(addr: SocketAddr) -> Result<(), ServiceError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::RefusedByPolicy,
            format!("the agent listens on loopback only (127.0.0.1 or [::1]), not {addr}"),
        ))
    }
}

/// Binds `listen` (loopback only), builds the state and serves until a shutdown signal.
pub async fn serve(cfg: AgentConfig, listen: SocketAddr) -> Result<(), ServiceError> {
    check_loopback(listen)?;
    let listener = kalit_service::serve::bind(listen)?;
    let addr = listener.local_addr().map_err(|e| ServiceError::new(ErrorCode::Io, e.to_string()))?;
    let mut state = build(&cfg).await?;
    // A loopback relay sees the tunnel connections come from the agent's own address.
    state.source_ip = Some(addr.ip());
    let router = app(state, addr);
    // Loopback only: the caps keep a runaway local program from using up the agent's descriptors.
    let limits = kalit_service::client::ConnLimits { total: 512, per_address: 0 };
    let policy = kalit_service::serve::ConnectionPolicy::new(Duration::from_secs(10), limits);
    kalit_service::serve::serve_bound("kalit agent", router, listener, None, policy).await
}
