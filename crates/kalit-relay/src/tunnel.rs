//! The blind tunnel (paper steps 18-28 without W reading anything): an agent waits on a tunnel id derived
//! from its QR secret; the first registered phone that joins with a device-signed request is paired with it;
//! from then on the relay forwards opaque binary frames (Noise messages) between the two WebSockets and
//! never interprets them. Tunnels live in this process's memory (a tunnel's two ends must reach the same
//! relay node); the store is used to authenticate the phone and to keep an audit row.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use kalit_proto::ErrorCode;
use kalit_proto::namespace::TUNNEL_JOIN;
use kalit_proto::relay::DeviceRequest;
use kalit_proto::session::{CLOCK_SKEW_SECS, is_tunnel_id};
use kalit_proto::session::{MAX_FRAME, QR_TTL_MAX_SECS, QR_TTL_SECS, TunnelEvent};
use kalit_proto::session::{OriginAttestation, ResumeRequest, SignedOriginAttestation};
use kalit_service::ServiceError;
use kalit_service::client::{ClientIp, addr_group};
use kalit_service::error::QueryParams;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use crate::AppState;

/// Seconds a phone has to send its join request after the WebSocket opened.
const JOIN_REQUEST_SECS: u64 = 10;
/// Seconds the nonce of a join socket's challenge is valid: the socket's wait for the join request and a
/// little more (expiries are whole seconds), not the lifetime of a nonce asked for by `POST /v1/nonce`.
/// No join can use it more than 2 s after its socket closed, and the relay remembers a consumed one only this long:
/// at a hundred sessions a second, about 1,200 remembered nonces where 120 s had kept 12,000 (1.3 MiB).
pub const CHALLENGE_NONCE_SECS: u64 = JOIN_REQUEST_SECS + 2;
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
    /// The address the agent's WebSocket came from (shown to the phone; its group is what the
    /// per-address cap counts).
    addr: Option<IpAddr>,
    /// The browser page's origin (direct mode), from its `Origin` header; `None` for an agent.
    origin: Option<String>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").field("addr", &self.addr).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Waiting>,
    /// Waiting tunnels per address group.
    per_group: HashMap<IpAddr, usize>,
}

impl Table {
    fn remove(&mut self, id: &str) -> Option<Waiting> {
        let w = self.by_id.remove(id)?;
        if let Some(g) = w.addr.map(addr_group)
            && let Some(n) = self.per_group.get_mut(&g)
        {
            *n -= 1;
            if *n == 0 {
                self.per_group.remove(&g);
            }
        }
        Some(w)
    }
}

/// A paired tunnel whose web page left (its tab frozen): what it takes to come back.
struct Parked {
    /// SHA-256 of the page's resume secret.
    hash: [u8; 32],
    /// Where the new socket (and the hash of the next secret) goes.
    tx: oneshot::Sender<(WebSocket, [u8; 32])>,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked").finish_non_exhaustive()
    }
}

/// Tunnels waiting for a phone, by tunnel id, the count of paired ones, and paired ones whose page left
/// and may come back.
#[derive(Debug, Default)]
pub struct Tunnels {
    table: Mutex<Table>,
    paired: AtomicUsize,
    parked: Mutex<HashMap<String, Parked>>,
}

/// Why a tunnel cannot wait.
enum Refusal {
    Full,
    AddressFull,
    Taken,
}

/// The client's address ([`ClientIp`]: the TCP peer, or the address a trusted proxy forwarded).
type Peer = Option<Extension<ClientIp>>;

fn peer_ip(p: &Peer) -> Option<IpAddr> {
    p.as_ref().map(|Extension(ClientIp(a))| a.to_canonical())
}

/// Sends one frame, giving up after `within` (a peer that stops reading must not hold a task forever).
async fn send_within(ws: &mut WebSocket, m: Message, within: Duration) -> bool {
    matches!(timeout(within, ws.send(m)).await, Ok(Ok(())))
}

/// How long a control frame (an event, an error, a close) may take to leave.
const CONTROL_SEND: Duration = Duration::from_secs(5);

/// One paired tunnel, counted while it lives.
struct PairedGuard(Arc<Tunnels>);

impl Drop for PairedGuard {
    fn drop(&mut self) {
        self.0.paired.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether two addresses are probably on the same network: the same IPv4 address (one NAT), or the
/// same IPv6 /64.
pub fn same_network(a: IpAddr, b: IpAddr) -> bool {
    addr_group(a) == addr_group(b)
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined").finish_non_exhaustive()
    }
}

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many tunnels wait for a phone.
    pub fn waiting(&self) -> usize {
        self.lock().by_id.len()
    }

    /// How many tunnels are paired (sessions under way).
    pub fn paired(&self) -> usize {
        self.paired.load(Ordering::Relaxed)
    }

    /// Registers a waiting tunnel under both caps.
    fn insert(&self, id: &str, w: Waiting, total: usize, per_address: usize) -> Result<(), Refusal> {
        let mut t = self.lock();
        if t.by_id.len() >= total {
            return Err(Refusal::Full);
        }
        if t.by_id.contains_key(id) {
            return Err(Refusal::Taken);
        }
        if let Some(g) = w.addr.map(addr_group) {
            let n = t.per_group.entry(g).or_insert(0);
            if *n >= per_address {
                return Err(Refusal::AddressFull);
            }
            *n += 1;
        }
        t.by_id.insert(id.to_string(), w);
        Ok(())
    }

    /// Takes the waiting end of a tunnel: exactly one caller gets it.
    fn take(&self, id: &str) -> Option<Waiting> {
        self.lock().remove(id)
    }

    fn parked_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many paired tunnels wait for their page to come back.
    pub fn parked(&self) -> usize {
        self.parked_lock().len()
    }

    /// Counts one more paired tunnel, unless `max` are paired already.
    fn pair(self: &Arc<Self>, max: usize) -> Option<PairedGuard> {
        let counted = self.paired.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1));
        counted.ok().map(|_| PairedGuard(self.clone()))
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

/// The relay's settings for every tunnel WebSocket: a small read buffer, no write buffering, and the
/// frame and message caps. Public so that `kalit bench forwarder`, the baseline, reads and writes its
/// sockets the same way (with axum's defaults it zeroed 128 KiB per socket, work the relay does not do).
pub fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
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
    if send_within(&mut socket, error_event(code, message), CONTROL_SEND).await {
        send_within(&mut socket, Message::Close(None), CONTROL_SEND).await;
    }
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
    /// SHA-256 of a resume secret, 64 hex (a web page that may be frozen and come back; direct mode).
    resume: Option<String>,
}

/// 64 hex characters as 32 bytes.
fn hash_of_hex(h: &str) -> Option<[u8; 32]> {
    let v = hex::decode(h).ok()?;
    if h.len() != 64 || h.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    v.try_into().ok()
}

/// `GET /v1/tunnel/{id}/wait` (WebSocket): the agent's end.
pub(crate) async fn wait(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<WaitQuery>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    let origin = match s.direct_origins.of_request(&headers) {
        Ok(o) => o,
        Err(e) => {
            s.metrics.inc("tunnel", "origin_refused");
            return e.into_response();
        }
    };
    let resume = match q.resume.as_deref().map(hash_of_hex) {
        None => None,
        Some(Some(h)) => Some(h),
        Some(None) => {
            return ServiceError::invalid("resume must be a SHA-256, 64 lowercase hex characters").into_response();
        }
    };
    // A QR lives QR_TTL_SECS unless the agent asks for longer (at most QR_TTL_MAX_SECS).
    let ttl = q.ttl.unwrap_or(u64::from(QR_TTL_SECS)).clamp(1, u64::from(QR_TTL_MAX_SECS)) + CLOCK_SKEW_SECS;
    let (tx, rx) = oneshot::channel();
    let l = &s.limits;
    let waiting = Waiting { tx, addr: peer_ip(&peer), origin };
    match s.tunnels.insert(&id, waiting, l.max_waiting_tunnels, l.max_waiting_tunnels_per_address) {
        Ok(()) => {}
        Err(Refusal::Full) => {
            s.metrics.inc("tunnel", "full");
            return ServiceError::new(
                ErrorCode::Unavailable,
                "the relay is at its limit of waiting tunnels; retry soon",
            )
            .into_response();
        }
        Err(Refusal::AddressFull) => {
            s.metrics.inc("tunnel", "address_full");
            return ServiceError::new(
                ErrorCode::RateLimited,
                format!(
                    "this address already has {} QR codes waiting for a phone; close some or wait for them to expire",
                    l.max_waiting_tunnels_per_address
                ),
            )
            .into_response();
        }
        Err(Refusal::Taken) => {
            return ServiceError::new(ErrorCode::AlreadyExists, "this tunnel id is already waiting").into_response();
        }
    }
    let guard = WaitGuard { tunnels: s.tunnels.clone(), id };
    configure(ws).on_upgrade(move |socket| agent_side(s, socket, rx, guard, ttl, resume))
}

async fn agent_side(
    s: AppState,
    mut agent: WebSocket,
    rx: oneshot::Receiver<Joined>,
    guard: WaitGuard,
    ttl: u64,
    resume: Option<[u8; 32]>,
) {
    let id = guard.id.clone();
    if !send_within(&mut agent, event(&TunnelEvent::Ready { expires_in: ttl }), CONTROL_SEND).await {
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
    let Some(_paired) = s.tunnels.pair(s.limits.max_paired_tunnels) else {
        s.metrics.inc("tunnel", "paired_full");
        let busy = "the relay is at its limit of signing sessions; retry soon";
        refuse(phone, ErrorCode::Unavailable, busy).await;
        refuse(agent, ErrorCode::Unavailable, busy).await;
        return;
    };
    let peer = event(&TunnelEvent::Peer { login: login.into(), device_id: device_id.into() });
    if !send_within(&mut agent, peer, CONTROL_SEND).await {
        refuse(phone, ErrorCode::Unavailable, "the computer left").await;
        return;
    }
    s.metrics.inc("tunnel", "paired");
    let outcome = bridge(&s, &id, agent, phone, resume).await;
    s.metrics.inc("tunnel_end", outcome);
}

/// The query of a phone's join socket.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinQuery {
    /// `1`: send a [`TunnelEvent::Challenge`] first, the nonce the join request signs over, so that the
    /// phone needs no `POST /v1/nonce` (one connection, and over TLS one handshake, less per signature).
    challenge: Option<u8>,
}

/// `GET /v1/tunnel/{id}/join` (WebSocket): the phone's end. Its first text frame is a [`DeviceRequest`]
/// with action `tunnel-join` and target the tunnel id; with `?challenge=1` the relay first sends the
/// nonce to sign over.
pub(crate) async fn join(
    State(s): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<JoinQuery>,
    peer: Peer,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    let challenge = match q.challenge {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => return ServiceError::invalid("challenge is 0 or 1").into_response(),
    };
    let addr = peer_ip(&peer);
    configure(ws).on_upgrade(move |socket| phone_side(s, id, socket, addr, challenge))
}

/// The first frame on a socket: a text frame holding JSON `T`, within [`JOIN_REQUEST_SECS`]; otherwise
/// the code and reason to refuse with.
async fn first_request<T: serde::de::DeserializeOwned>(
    ws: &mut WebSocket,
    what: &str,
) -> Result<T, (ErrorCode, String)> {
    match timeout(Duration::from_secs(JOIN_REQUEST_SECS), ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => {
            serde_json::from_str(t.as_str()).map_err(|e| (ErrorCode::InvalidInput, format!("malformed {what}: {e}")))
        }
        Ok(_) => Err((ErrorCode::InvalidInput, format!("expected a {what}"))),
        Err(_) => Err((ErrorCode::Expired, format!("no {what} within {JOIN_REQUEST_SECS} s"))),
    }
}

async fn phone_side(s: AppState, id: String, mut phone: WebSocket, phone_addr: Option<IpAddr>, challenge: bool) {
    if challenge {
        let n = match crate::api::issue_nonce(&s, CHALLENGE_NONCE_SECS.min(s.limits.nonce_ttl_secs)) {
            Ok(n) => n,
            Err(e) => return refuse(phone, e.code, e.message).await,
        };
        let ev = TunnelEvent::Challenge { nonce: n.nonce, expires_at: n.expires_at };
        if !send_within(&mut phone, event(&ev), CONTROL_SEND).await {
            return;
        }
    }
    let req: DeviceRequest = match first_request(&mut phone, "join request").await {
        Ok(r) => r,
        Err((code, why)) => return refuse(phone, code, why).await,
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
    // A browser page's side (direct mode): the relay vouches for the origin its browser sent.
    let origin = match &waiting.origin {
        None => None,
        Some(o) => match origin_statement(&s, &id, o) {
            Ok(a) => Some(Box::new(a)),
            Err(e) => return refuse(phone, e.code, e.message).await,
        },
    };
    let joined = TunnelEvent::Joined { attestation, computer_address, same_network: same, origin };
    if !send_within(&mut phone, event(&joined), CONTROL_SEND).await {
        return;
    }
    let device_id = device.device_id;
    if let Err(Joined { socket, .. }) = waiting.tx.send(Joined { socket: phone, login, device_id }) {
        refuse(socket, ErrorCode::Unavailable, "the computer left").await;
    }
}

/// The relay's signed statement that tunnel `id` waits on a page of `origin`, valid as long as the
/// attestation the phone gets with it.
fn origin_statement(s: &AppState, id: &str, origin: &str) -> Result<SignedOriginAttestation, ServiceError> {
    let issued_at = s.clock.now_ms() / 1000;
    let a = OriginAttestation {
        relay_id: s.identity.id().into(),
        tunnel: id.to_string(),
        origin: origin.to_string(),
        issued_at,
        expires_at: issued_at + s.limits.attestation_ttl_secs as i64,
    };
    s.identity.attest_origin(a)
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
/// The limits hold while a send waits on a side that stopped reading: a send may take until the idle
/// limit or the session's end, whichever comes first, and then the tunnel ends (`stalled`). A web page
/// that gave a resume hash and leaves is waited for ([`park`]): it may take its side back.
async fn bridge(
    s: &AppState,
    id: &str,
    mut agent: WebSocket,
    mut phone: WebSocket,
    mut resume: Option<[u8; 32]>,
) -> &'static str {
    let l = &s.limits;
    let deadline = Instant::now() + Duration::from_secs(l.tunnel_session_secs);
    let idle = Duration::from_secs(l.tunnel_idle_secs);
    let mut frames: u32 = 0;
    // The two timers live as long as the session and are polled, not made, per frame (making and dropping
    // them each frame was two registrations in the runtime's timer wheel per frame). A frame only notes
    // when it came; the idle timer, when it fires, re-arms to the last frame's time plus `idle` unless
    // that time has passed.
    let session_end = sleep_until(deadline);
    let idle_end = sleep(idle);
    tokio::pin!(session_end, idle_end);
    let mut last_frame = Instant::now();
    let outcome = 'session: loop {
        let (outcome, agent_left) = loop {
            let step = tokio::select! {
                m = agent.recv() => (classify(m), true),
                m = phone.recv() => (classify(m), false),
                () = &mut session_end => (Step::End("session_timeout"), false),
                () = &mut idle_end => {
                    let due = last_frame + idle;
                    if due > Instant::now() {
                        idle_end.as_mut().reset(due);
                        continue;
                    }
                    (Step::End("idle_timeout"), false)
                }
            };
            match step {
                (Step::Skip, _) => {}
                (Step::End(why), from_agent) => break (why, from_agent && matches!(why, "closed" | "error")),
                (Step::Forward(m), from_agent) => {
                    frames += 1;
                    if frames > l.tunnel_max_frames {
                        break ("too_many_frames", false);
                    }
                    let to = if from_agent { &mut phone } else { &mut agent };
                    match timeout_at(deadline.min(Instant::now() + idle), to.send(m)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break ("closed", !from_agent),
                        Err(_) => break ("stalled", false),
                    }
                }
            }
            last_frame = Instant::now();
        };
        let Some(hash) = resume.filter(|_| agent_left && l.tunnel_resume_secs > 0) else { break outcome };
        s.metrics.inc("tunnel", "parked");
        match park(s, id, &mut phone, hash, deadline, &mut frames).await {
            Err(why) => break why,
            Ok(back) => {
                s.metrics.inc("tunnel", "resumed");
                agent = back.socket;
                resume = Some(back.next);
                last_frame = Instant::now();
                if !send_within(&mut agent, event(&TunnelEvent::Resumed), CONTROL_SEND).await {
                    break "closed";
                }
                for b in back.buffered {
                    if !send_within(&mut agent, Message::Binary(b), CONTROL_SEND).await {
                        break 'session "closed";
                    }
                }
                if let Some(why) = back.phone_ended {
                    break why;
                }
            }
        }
    };
    let message = match outcome {
        "closed" => "the other side left the session",
        "session_timeout" | "idle_timeout" | "resume_timeout" => "the session timed out",
        "stalled" => "the other side stopped reading",
        "too_many_frames" => "the session sent more frames than the relay allows",
        "parked_too_much" => "the phone sent more than the relay keeps for a page that left",
        _ => "the other side broke the tunnel protocol",
    };
    let code = if outcome.ends_with("timeout") { ErrorCode::Expired } else { ErrorCode::Unavailable };
    // Both farewells at once, each bounded: a side that stopped reading does not hold up the other.
    tokio::join!(refuse(agent, code, message), refuse(phone, code, message));
    outcome
}

/// The most a parked tunnel keeps of what the phone sends for a page that left: a whole signature
/// answer (the largest CMS, base64, in frames) with room to spare.
const MAX_PARKED_BYTES: usize = 3 * 1024 * 1024;

/// A page that came back.
struct Back {
    socket: WebSocket,
    next: [u8; 32],
    /// What the phone sent meanwhile, in order.
    buffered: Vec<axum::body::Bytes>,
    /// The phone left meanwhile (after sending `buffered`).
    phone_ended: Option<&'static str>,
}

/// Removes a parked tunnel when its wait ends, however it ends.
struct ParkGuard<'a> {
    tunnels: &'a Tunnels,
    id: &'a str,
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        self.tunnels.parked_lock().remove(self.id);
    }
}

/// Waits (at most `tunnel_resume_secs`, never past the session's end) for the page of tunnel `id` to come
/// back with the secret whose hash is `hash`, keeping what the phone sends meanwhile within the frame
/// limit and [`MAX_PARKED_BYTES`].
async fn park(
    s: &AppState,
    id: &str,
    phone: &mut WebSocket,
    hash: [u8; 32],
    deadline: Instant,
    frames: &mut u32,
) -> Result<Back, &'static str> {
    let (tx, mut rx) = oneshot::channel();
    s.tunnels.parked_lock().insert(id.to_string(), Parked { hash, tx });
    let _guard = ParkGuard { tunnels: &s.tunnels, id };
    let until = deadline.min(Instant::now() + Duration::from_secs(s.limits.tunnel_resume_secs));
    let (mut buffered, mut bytes, mut phone_ended) = (vec![], 0usize, None);
    loop {
        tokio::select! {
            back = &mut rx => {
                let Ok((socket, next)) = back else { return Err("closed") };
                return Ok(Back { socket, next, buffered, phone_ended });
            }
            m = phone.recv(), if phone_ended.is_none() => match classify(m) {
                Step::Forward(Message::Binary(b)) => {
                    *frames += 1;
                    bytes += b.len();
                    if *frames > s.limits.tunnel_max_frames {
                        return Err("too_many_frames");
                    }
                    if bytes > MAX_PARKED_BYTES {
                        return Err("parked_too_much");
                    }
                    buffered.push(b);
                }
                Step::Forward(_) | Step::Skip => {}
                // The phone is done: what it sent still waits for the page.
                Step::End(why) => phone_ended = Some(why),
            },
            () = sleep_until(until) => return Err("resume_timeout"),
        }
    }
}

/// `GET /v1/tunnel/{id}/resume` (WebSocket): a web page whose socket dropped takes its side of a paired
/// tunnel back. Its first text frame is a [`ResumeRequest`].
pub(crate) async fn resume(State(s): State<AppState>, Path(id): Path<String>, ws: WebSocketUpgrade) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    configure(ws).on_upgrade(move |socket| resume_side(s, id, socket))
}

async fn resume_side(s: AppState, id: String, mut page: WebSocket) {
    let req: ResumeRequest = match first_request(&mut page, "resume request").await {
        Ok(r) => r,
        Err((code, why)) => return refuse(page, code, why).await,
    };
    let (Ok(secret), Some(next)) = (kalit_core::statement::bounded("resume", &req.resume, 32), hash_of_hex(&req.next))
    else {
        return refuse(page, ErrorCode::InvalidInput, "a resume secret is 32 bytes and next a SHA-256 in hex").await;
    };
    let given = kalit_core::digest::HashAlg::Sha256.digest(secret);
    let parked = {
        let mut t = s.tunnels.parked_lock();
        match t.get(&id) {
            None => None,
            // Compared in constant time; a wrong secret leaves the tunnel waiting for the right one.
            Some(p) if aws_lc_rs::constant_time::verify_slices_are_equal(&given, &p.hash).is_err() => Some(None),
            Some(_) => t.remove(&id).map(Some),
        }
    };
    match parked {
        None => {
            s.metrics.inc("tunnel_resume", "gone");
            refuse(page, ErrorCode::Expired, "nothing to resume: the session ended or its time ran out").await;
        }
        Some(None) => {
            s.metrics.inc("tunnel_resume", "unauthorized");
            refuse(page, ErrorCode::Unauthorized, "this resume secret is not this session's (or was used already)")
                .await;
        }
        Some(Some(p)) => {
            if let Err((socket, _)) = p.tx.send((page, next)) {
                refuse(socket, ErrorCode::Expired, "nothing to resume: the session ended").await;
            }
        }
    }
}
