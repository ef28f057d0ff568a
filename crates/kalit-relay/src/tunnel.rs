//! The blind tunnel (paper steps 18-28 without W reading anything): an agent waits on a tunnel id derived
//! from its QR secret; the first registered phone that joins with a device-signed request is paired with it;
//! from then on the relay forwards opaque binary frames (Noise messages) between the two WebSockets and
//! never interprets them. Tunnels live in this process's memory (a tunnel's two ends must reach the same
//! relay node); the store is used to authenticate the phone and to keep an audit row.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::{IntoResponse, Response};
use kalit_proto::ErrorCode;
use kalit_proto::namespace::TUNNEL_JOIN;
use kalit_proto::relay::DeviceRequest;
use kalit_proto::session::{CLOCK_SKEW_SECS, is_tunnel_id};
use kalit_proto::session::{MAX_FRAME, QR_TTL_MAX_SECS, TunnelEvent};
use kalit_service::ServiceError;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::AppState;

/// Seconds a phone has to send its join request after the WebSocket opened.
const JOIN_REQUEST_SECS: u64 = 10;
/// Read buffer per WebSocket: small, so that thousands of waiting tunnels cost little (axum's default is
/// 128 KiB). Larger frames still arrive; the buffer grows for them.
const READ_BUFFER: usize = 4 * 1024;

/// A phone that joined, handed to the waiting agent's task.
struct Joined {
    socket: WebSocket,
    login: String,
    device_id: String,
}

/// The agent's end of a tunnel, waiting for a phone.
struct Waiting {
    tx: oneshot::Sender<Joined>,
    /// The address the agent's WebSocket came from (shown to the phone).
    addr: Option<IpAddr>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Tunnels waiting for a phone, by tunnel id.
#[derive(Debug, Default)]
pub struct Tunnels {
    waiting: Mutex<HashMap<String, Waiting>>,
}

/// The TCP peer's address, when the server recorded it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_ip(p: &Peer) -> Option<IpAddr> {
    p.as_ref().map(|Extension(ConnectInfo(a))| a.ip().to_canonical())
}

/// Whether two addresses are probably on the same network: the same IPv4 address (one NAT), or the
/// same IPv6 /64.
pub fn same_network(a: IpAddr, b: IpAddr) -> bool {
    match (a.to_canonical(), b.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a == b,
        (IpAddr::V6(a), IpAddr::V6(b)) => a.segments()[..4] == b.segments()[..4],
        _ => false,
    }
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined").finish_non_exhaustive()
    }
}

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many tunnels wait for a phone.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    /// Takes the waiting end of a tunnel: exactly one caller gets it.
    fn take(&self, id: &str) -> Option<Waiting> {
        self.lock().remove(id)
    }
}

/// Removes a waiting tunnel when its agent task ends (or the upgrade never happens).
struct WaitGuard {
    tunnels: Arc<Tunnels>,
    id: String,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.tunnels.lock().remove(&self.id);
    }
}

fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_FRAME)
        .max_message_size(MAX_FRAME + 1024)
        .max_frame_size(MAX_FRAME + 1024)
}

fn event(e: &TunnelEvent) -> Message {
    Message::Text(serde_json::to_string(e).unwrap_or_default().into())
}

fn error_event(code: ErrorCode, message: impl Into<String>) -> Message {
    event(&TunnelEvent::Error { code, message: message.into() })
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: impl Into<String>) {
    let _ = socket.send(error_event(code, message)).await;
    let _ = socket.send(Message::Close(None)).await;
}

fn check_id(id: &str) -> Result<(), ServiceError> {
    if is_tunnel_id(id) { Ok(()) } else { Err(ServiceError::invalid("a tunnel id is 64 lowercase hex characters")) }
}

/// Query of the agent's side.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Seconds to wait for a phone (at most the longest QR lifetime).
    ttl: Option<u64>,
}

/// `GET /v1/tunnel/{id}/wait` (WebSocket): the agent's end.
pub(crate) async fn wait(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
    peer: Peer,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    let ttl = q.ttl.unwrap_or(u64::from(QR_TTL_MAX_SECS)).clamp(1, u64::from(QR_TTL_MAX_SECS)) + CLOCK_SKEW_SECS;
    let (tx, rx) = oneshot::channel();
    {
        let mut map = s.tunnels.lock();
        if map.len() >= s.limits.max_waiting_tunnels {
            s.metrics.inc("tunnel", "full");
            return ServiceError::new(
                ErrorCode::Unavailable,
                "the relay is at its limit of waiting tunnels; retry soon",
            )
            .into_response();
        }
        if map.contains_key(&id) {
            return ServiceError::new(ErrorCode::AlreadyExists, "this tunnel id is already waiting").into_response();
        }
        map.insert(id.clone(), Waiting { tx, addr: peer_ip(&peer) });
    }
    let guard = WaitGuard { tunnels: s.tunnels.clone(), id };
    configure(ws).on_upgrade(move |socket| agent_side(s, socket, rx, guard, ttl))
}

async fn agent_side(s: AppState, mut agent: WebSocket, rx: oneshot::Receiver<Joined>, guard: WaitGuard, ttl: u64) {
    if agent.send(event(&TunnelEvent::Ready { expires_in: ttl })).await.is_err() {
        return;
    }
    let joined = tokio::select! {
        j = rx => j,
        () = sleep(Duration::from_secs(ttl)) => {
            drop(guard);
            s.metrics.inc("tunnel", "expired");
            refuse(agent, ErrorCode::Expired, "no phone joined before the QR expired").await;
            return;
        }
        _ = agent.recv() => {
            // The agent left, or spoke before a phone joined: either way the tunnel is over.
            return;
        }
    };
    drop(guard);
    let Ok(Joined { socket: phone, login, device_id }) = joined else { return };
    if agent.send(event(&TunnelEvent::Peer { login: login.into(), device_id: device_id.into() })).await.is_err() {
        refuse(phone, ErrorCode::Unavailable, "the computer left").await;
        return;
    }
    s.metrics.inc("tunnel", "paired");
    let outcome = bridge(&s, agent, phone).await;
    s.metrics.inc("tunnel_end", outcome);
}

/// `GET /v1/tunnel/{id}/join` (WebSocket): the phone's end. Its first text frame is a [`DeviceRequest`]
/// with action `tunnel-join` and target the tunnel id.
pub(crate) async fn join(
    State(s): State<AppState>,
    Path(id): Path<String>,
    peer: Peer,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    let addr = peer_ip(&peer);
    configure(ws).on_upgrade(move |socket| phone_side(s, id, socket, addr))
}

async fn phone_side(s: AppState, id: String, mut phone: WebSocket, phone_addr: Option<IpAddr>) {
    let first = timeout(Duration::from_secs(JOIN_REQUEST_SECS), phone.recv()).await;
    let req: DeviceRequest = match first {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(t.as_str()) {
            Ok(r) => r,
            Err(e) => return refuse(phone, ErrorCode::InvalidInput, format!("malformed join request: {e}")).await,
        },
        Ok(_) => return refuse(phone, ErrorCode::InvalidInput, "expected a join request").await,
        Err(_) => return refuse(phone, ErrorCode::Expired, "no join request within 10 s").await,
    };
    if req.target != id {
        return refuse(phone, ErrorCode::InvalidInput, "the join request is for another tunnel").await;
    }
    let (login, device) = match crate::api::authorize_device(&s, &req, TUNNEL_JOIN).await {
        Ok(l) => l,
        Err(e) => {
            s.metrics.inc("tunnel_join", e.code.as_str());
            return refuse(phone, e.code, e.message).await;
        }
    };
    let Some(waiting) = s.tunnels.take(&id) else {
        s.metrics.inc("tunnel_join", "gone");
        return refuse(
            phone,
            ErrorCode::Expired,
            "no computer is waiting with this QR: it expired, was ended, or another phone took it",
        )
        .await;
    };
    if let Err(e) = s.store.audit(s.clock.now_ms(), "tunnel_joined", &login, &req.device_id).await {
        tracing::warn!(error = %e.message, "audit row not written");
    }
    // A fresh, short-lived attestation naming this device: the agent checks it against the device the
    // relay authenticated here, so a removed device's old attestation is worth nothing.
    let attestation = match crate::api::attest(
        &s,
        login.clone(),
        device.cert_fingerprint.clone(),
        device.device_id.clone(),
        &device.device_key,
        s.clock.now_ms(),
    ) {
        Ok(a) => a,
        Err(e) => return refuse(phone, e.code, e.message).await,
    };
    let (computer_address, same) = match (waiting.addr, phone_addr) {
        (Some(a), Some(p)) => (a.to_string(), same_network(a, p)),
        (Some(a), None) => (a.to_string(), false),
        (None, _) => ("unknown".to_string(), false),
    };
    let joined = TunnelEvent::Joined { attestation, computer_address, same_network: same };
    if phone.send(event(&joined)).await.is_err() {
        return;
    }
    let device_id = device.device_id;
    if let Err(Joined { socket, .. }) = waiting.tx.send(Joined { socket: phone, login, device_id }) {
        refuse(socket, ErrorCode::Unavailable, "the computer left").await;
    }
}

/// What a frame from one side means for the tunnel.
enum Step {
    Forward(Message),
    Skip,
    End(&'static str),
}

fn classify(m: Option<Result<Message, axum::Error>>) -> Step {
    match m {
        Some(Ok(Message::Binary(b))) if !b.is_empty() && b.len() <= MAX_FRAME => Step::Forward(Message::Binary(b)),
        Some(Ok(Message::Binary(_))) => Step::End("bad_frame"),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::Skip,
        Some(Ok(Message::Text(_))) => Step::End("text_after_pairing"),
        Some(Ok(Message::Close(_))) | None => Step::End("closed"),
        Some(Err(_)) => Step::End("error"),
    }
}

/// Forwards binary frames both ways until one side leaves, a limit is hit, or the session times out.
async fn bridge(s: &AppState, mut agent: WebSocket, mut phone: WebSocket) -> &'static str {
    let l = &s.limits;
    let deadline = Instant::now() + Duration::from_secs(l.tunnel_session_secs);
    let idle = Duration::from_secs(l.tunnel_idle_secs);
    let mut frames: u32 = 0;
    let outcome = loop {
        let step = tokio::select! {
            m = agent.recv() => (classify(m), true),
            m = phone.recv() => (classify(m), false),
            () = sleep_until(deadline) => (Step::End("session_timeout"), true),
            () = sleep(idle) => (Step::End("idle_timeout"), true),
        };
        match step {
            (Step::Skip, _) => {}
            (Step::End(why), _) => break why,
            (Step::Forward(m), from_agent) => {
                frames += 1;
                if frames > l.tunnel_max_frames {
                    break "too_many_frames";
                }
                let to = if from_agent { &mut phone } else { &mut agent };
                if to.send(m).await.is_err() {
                    break "closed";
                }
            }
        }
    };
    let message = match outcome {
        "closed" => "the other side left the session",
        "session_timeout" | "idle_timeout" => "the session timed out",
        "too_many_frames" => "the session sent more frames than the relay allows",
        _ => "the other side broke the tunnel protocol",
    };
    let code = if outcome.ends_with("timeout") { ErrorCode::Expired } else { ErrorCode::Unavailable };
    for mut ws in [agent, phone] {
        let _ = ws.send(error_event(code, message)).await;
        let _ = ws.send(Message::Close(None)).await;
    }
    outcome
}
