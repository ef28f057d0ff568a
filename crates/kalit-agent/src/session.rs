//! One signing session: the agent's half of the paper's steps 18-28.
//!
//! [`start`] makes the QR, opens the relay tunnel and spawns the session task, which waits for a phone,
//! runs the Noise handshake, checks the phone's hello (certificate chain and the relay's attestation), then
//! carries sign requests one at a time and checks every answer before the page sees it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kalit_core::digest::HashAlg;
use kalit_core::flow::{AgentAction, AgentSession, Failure, Paired, SignDoc};
use kalit_core::session::{AgentSecrets, CLOCK_SKEW_SECS, Qr};
use kalit_core::x509;
use kalit_proto::session::{
    ChannelMessage, DocumentSupport, SessionPhase, SessionState, SignDocResponse, Transfer, TunnelEvent,
};
use kalit_proto::{ErrorBody, ErrorCode};
use kalit_service::ServiceError;
use kalit_transport::{Incoming, Ws, connect_from, next_incoming, send, ws_url};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::AgentState;

/// Seconds a closed session stays visible to status polls.
const KEEP_CLOSED_SECS: u64 = 120;
/// Seconds for the handshake and the phone's hello once a phone joined.
const PAIRING_SECS: u64 = 30;

/// A document the page asked to sign.
pub type Doc = SignDoc;

type Reply = oneshot::Sender<Result<SignDocResponse, ServiceError>>;

#[derive(Debug)]
enum Command {
    Sign(Doc, Reply),
}

#[derive(Debug)]
struct Shared {
    phase: SessionPhase,
    sas: Option<String>,
    login: Option<kalit_proto::Login>,
    chain: Vec<Vec<u8>>,
    documents: Option<DocumentSupport>,
    transfer: Option<Transfer>,
    error: Option<ErrorBody>,
    closed_at: Option<Instant>,
}

/// A session as the API sees it.
#[derive(Debug)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// The origin that created it; only it may use it.
    pub origin: String,
    token_sha256: Vec<u8>,
    /// QR text.
    pub qr: String,
    /// QR SVG.
    pub qr_svg: String,
    /// QR expiry, Unix ms.
    pub expires_at: u64,
    shared: Mutex<Shared>,
    cmd: mpsc::Sender<Command>,
    /// Set (and notified) when the page ends the session: the task sees it even while it waits for the
    /// phone, and a notification is never lost (a permit is kept until the task waits).
    ending: tokio::sync::Notify,
    ended: AtomicBool,
    signing: AtomicBool,
}

/// Clears the session's `signing` flag when the sign request ends in any way, including when the page
/// disconnects and its request future is dropped mid-await.
struct SigningGuard<'a>(&'a AtomicBool);

impl Drop for SigningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Session {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `token` is this session's capability (constant-time).
    pub fn token_ok(&self, token: &str) -> bool {
        let h = HashAlg::Sha256.digest(token.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(&h, &self.token_sha256).is_ok()
    }

    /// The state for status polls.
    pub fn state(&self) -> SessionState {
        let s = self.shared();
        SessionState {
            session: self.id.clone(),
            phase: s.phase,
            sas: s.sas.clone(),
            login: s.login.clone(),
            certificate: s.chain.first().and_then(|c| x509::cert_info(c).ok()),
            error: s.error.clone(),
            documents: (s.phase == SessionPhase::Connected).then(|| DocumentSupport::effective(s.documents)),
            transfer: s.transfer,
        }
    }

    /// The largest document the paired phone takes whole (at least [`MAX_DOCUMENT`]), and whether it
    /// signs larger ones by digest.
    pub fn documents(&self) -> DocumentSupport {
        DocumentSupport::effective(self.shared().documents)
    }

    /// Whether the session ended.
    pub fn closed(&self) -> bool {
        self.shared().phase == SessionPhase::Closed
    }

    fn set_phase(&self, p: SessionPhase) {
        self.shared().phase = p;
    }

    fn close(&self, error: Option<ServiceError>) {
        let mut s = self.shared();
        s.phase = SessionPhase::Closed;
        s.closed_at = Some(Instant::now());
        if s.error.is_none() {
            s.error = error.map(|e| ErrorBody { code: e.code, message: e.message });
        }
    }

    /// Asks the session to end (a request waiting at the phone is withdrawn first).
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.ending.notify_one();
    }

    /// Sends a document to the phone and waits for its checked signature. One at a time per session.
    pub async fn sign(&self, doc: Doc) -> Result<SignDocResponse, ServiceError> {
        if self.shared().phase != SessionPhase::Connected {
            return Err(ServiceError::new(
                ErrorCode::Expired,
                "this session is not connected to a phone (not yet paired, or already closed)",
            ));
        }
        if self.signing.swap(true, Ordering::SeqCst) {
            return Err(ServiceError::new(
                ErrorCode::Busy,
                "a signature is already waiting for approval in this session",
            ));
        }
        let _guard = SigningGuard(&self.signing);
        // If this future is dropped (the page disconnected), `rx` is dropped with it: the session task
        // sees its reply channel close and withdraws the request at the phone.
        let (tx, rx) = oneshot::channel();
        match self.cmd.send(Command::Sign(doc, tx)).await {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(ServiceError::new(ErrorCode::Unavailable, "the session ended"))),
            Err(_) => Err(ServiceError::new(ErrorCode::Expired, "the session ended")),
        }
    }
}

/// All sessions of this agent.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A session by id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// Sessions that are still open (for the local page).
    pub fn open(&self) -> Vec<Arc<Session>> {
        self.lock().values().filter(|s| !s.closed()).cloned().collect()
    }

    /// Forgets long-closed sessions and ends the open one of `origin` (at most one per origin).
    fn make_room(&self, origin: &str) {
        let mut m = self.lock();
        m.retain(|_, s| {
            let closed_at = s.shared().closed_at;
            closed_at.is_none_or(|t| t.elapsed() < Duration::from_secs(KEEP_CLOSED_SECS))
        });
        for s in m.values().filter(|s| s.origin == origin && !s.closed()) {
            s.end();
        }
    }
}

fn unavailable(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Unavailable, msg)
}

/// Creates a session for `origin`: QR, tunnel, task. Returns the session and its capability token (kept
/// only as a hash).
pub async fn start(st: &AgentState, origin: &str, ttl: u32) -> Result<(Arc<Session>, String), ServiceError> {
    st.sessions.make_room(origin);
    let now = kalit_service::now_ms().max(0) as u64;
    let (qr, secrets) = Qr::for_computer(&st.computer, &st.relay_url, &st.relay_id, origin, ttl, now / 1000)
        .map_err(ServiceError::from)?;
    let tunnel = secrets.tunnel_id().map_err(ServiceError::from)?;
    let url = ws_url(&st.relay_url, &format!("/v1/tunnel/{tunnel}/wait?ttl={}", qr.payload.ttl))?;
    let mut ws = connect_from(&url, st.source_ip).await?;
    match timeout(Duration::from_secs(10), next_incoming(&mut ws)).await {
        Ok(Ok(Incoming::Event(TunnelEvent::Ready { .. }))) => {}
        Ok(Err(e)) => return Err(e),
        _ => return Err(unavailable("the relay did not open the tunnel")),
    }
    let svg = qrcode::QrCode::new(qr.text().as_bytes())
        .map_err(|e| ServiceError::internal(format!("QR: {e}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    let token = B64URL.encode(kalit_core::seal::random::<32>().map_err(ServiceError::from)?);
    let id = hex::encode(kalit_core::seal::random::<12>().map_err(ServiceError::from)?);
    let (tx, rx) = mpsc::channel(1);
    let session = Arc::new(Session {
        id: id.clone(),
        origin: origin.to_string(),
        token_sha256: HashAlg::Sha256.digest(token.as_bytes()),
        qr: qr.text().to_string(),
        qr_svg: svg,
        expires_at: (qr.payload.iat + u64::from(qr.payload.ttl)) * 1000,
        shared: Mutex::new(Shared {
            phase: SessionPhase::Waiting,
            sas: None,
            login: None,
            chain: vec![],
            error: None,
            documents: None,
            transfer: None,
            closed_at: None,
        }),
        cmd: tx,
        ending: tokio::sync::Notify::new(),
        ended: AtomicBool::new(false),
        signing: AtomicBool::new(false),
    });
    st.sessions.lock().insert(id, session.clone());
    if st.print_qr
        && let Some(t) = terminal_qr(qr.text(), origin)
    {
        println!("{t}");
    }
    let task_session = session.clone();
    let st2 = st.clone();
    tokio::spawn(async move {
        let r = run(&st2, &task_session, ws, qr, secrets, rx).await;
        if let Err(e) = &r {
            tracing::info!(session = %task_session.id, code = %e.code, "session ended: {}", e.message);
        }
        task_session.close(r.err());
    });
    Ok((session, token))
}

/// What the agent prints on its terminal for a new session: the QR drawn with Unicode half blocks, and
/// the command to type on the phone.
pub fn terminal_qr(qr_text: &str, origin: &str) -> Option<String> {
    let code = qrcode::QrCode::new(qr_text.as_bytes()).ok()?;
    let art = code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
    Some(format!(
        "\nSigning request from {origin}. Scan with the Kalit phone app, or run on the phone:\n\n{art}\n  kalit vault pair '{qr_text}'\n"
    ))
}

async fn run(
    st: &AgentState,
    sess: &Session,
    mut ws: Ws,
    qr: Qr,
    secrets: AgentSecrets,
    mut cmd: mpsc::Receiver<Command>,
) -> Result<(), ServiceError> {
    // Every session rule is in the state machine; this task moves frames, keeps the timers and answers
    // the page.
    let mut m = Some(AgentSession::new(qr, secrets, st.session_config()));
    let ttl = m.as_ref().map_or(0, |m| u64::from(m.qr().payload.ttl));
    let mut deadline = Instant::now() + Duration::from_secs(ttl + CLOCK_SKEW_SECS);
    let mut pending: Option<Pending> = None;
    loop {
        let Some(mach) = m.as_mut() else { return Err(ServiceError::internal("session state lost")) };
        let actions = if sess.ended.load(Ordering::SeqCst) {
            mach.end("the page ended the session")
        } else {
            let timed = deadline_applies(mach, &pending);
            let reply_closed = async {
                match pending.as_mut() {
                    Some(p) => p.reply.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                inc = next_incoming(&mut ws) => match inc {
                    Ok(Incoming::Event(ev)) => {
                        let was_waiting = mach.phase() == SessionPhase::Waiting;
                        let a = mach.on_event(ev);
                        if was_waiting && mach.phase() == SessionPhase::Pairing {
                            sess.set_phase(SessionPhase::Pairing);
                            deadline = Instant::now() + Duration::from_secs(PAIRING_SECS);
                        }
                        a
                    }
                    Ok(Incoming::Frame(f)) => mach.on_frame(&f, (kalit_service::now_ms() / 1000) as i64),
                    Err(e) => mach.fail(Failure::new(e.code, e.message)),
                },
                c = cmd.recv() => match c {
                    Some(Command::Sign(doc, reply)) => {
                        sess.shared().transfer = None;
                        // Encoding and sealing up to 8 MiB is CPU work: on the blocking pool, with the machine.
                        let Some(mach) = m.take() else { continue };
                        let doc = Arc::new(doc);
                        let d = doc.clone();
                        let (back, r) = crate::blocking(move || {
                            let mut mach = mach;
                            let r = mach.sign(&d);
                            Ok((mach, r))
                        })
                        .await?;
                        m = Some(back);
                        match r {
                            Ok((id, a)) => {
                                pending = Some(Pending { id, doc, reply });
                                deadline = Instant::now() + Duration::from_secs(st.approval_timeout_secs);
                                a
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e.into()));
                                continue;
                            }
                        }
                    }
                    None => mach.end("the page ended the session"),
                },
                () = sess.ending.notified() => mach.end("the page ended the session"),
                () = reply_closed => {
                    let id = pending.take().map(|p| p.id).unwrap_or_default();
                    tracing::info!(session = %sess.id, request = id, "request withdrawn: the page stopped waiting");
                    mach.withdraw("the page stopped waiting")
                }
                () = sleep_until(deadline), if timed => {
                    mach.fail(Failure::new(ErrorCode::Expired, match mach.phase() {
                        SessionPhase::Waiting => "no phone scanned the QR before it expired",
                        SessionPhase::Pairing => "the phone did not finish pairing in time",
                        _ => "the phone did not answer in time",
                    }))
                }
            }
        };
        let mut queue: std::collections::VecDeque<AgentAction> = actions.into();
        loop {
            let Some(action) = queue.pop_front() else {
                // A large document goes out part by part, each sealed when the last is on its way (the
                // relay and the phone work meanwhile); the page sees how far it got, and the phone's time to
                // answer starts when it is all there.
                let Some((mach, p)) = m.as_mut().zip(pending.as_ref()).filter(|(mach, _)| mach.streaming()) else {
                    break;
                };
                let doc = p.doc.clone();
                queue.extend(mach.next_part(&doc));
                let total = doc.size();
                let sent = mach.streamed().map_or(total, |n| n as u64);
                sess.shared().transfer = Some(Transfer { sent, total });
                if !mach.streaming() {
                    deadline = Instant::now() + Duration::from_secs(st.approval_timeout_secs);
                }
                continue;
            };
            match action {
                AgentAction::Send(frame) => {
                    if let Err(e) = send(&mut ws, Message::Binary(frame.into())).await
                        && let Some(mach) = m.as_mut()
                    {
                        queue.extend(mach.fail(Failure::new(e.code, e.message)));
                    }
                }
                AgentAction::Paired(p) => {
                    if st.print_qr {
                        println!("Phone of {} connected. Check that it shows the code {}", p.login, p.sas);
                    }
                    let mut s = sess.shared();
                    s.phase = SessionPhase::Connected;
                    s.sas = Some(p.sas);
                    s.login = Some(p.login);
                    s.chain = p.chain;
                    s.documents = p.documents;
                }
                AgentAction::Answer { id, result } => {
                    let Some(p) = pending.take().filter(|p| p.id == id) else { continue };
                    let paired = m.as_ref().and_then(|m| m.paired().cloned());
                    let answer = match (result, paired) {
                        (Ok(sig), Some(paired)) => checked_answer(&p.doc, sig, paired).await,
                        (Ok(_), None) => Err(ServiceError::internal("answer before pairing")),
                        (Err(e), _) => Err(e.into()),
                    };
                    if let Err(e) = &answer
                        && e.code == ErrorCode::InvalidSignature
                        && let Some(mach) = m.as_mut()
                    {
                        queue.extend(mach.fail(Failure::new(e.code, e.message.clone())));
                    }
                    let _ = p.reply.send(answer);
                }
                AgentAction::LateAnswerRefused { id } => {
                    tracing::info!(session = %sess.id, request = id, "an answer to a withdrawn request was refused");
                }
                AgentAction::Closed(err) => {
                    let err: Option<ServiceError> = err.map(Into::into);
                    if let Some(p) = pending.take() {
                        let e =
                            err.clone().unwrap_or_else(|| ServiceError::new(ErrorCode::Expired, "the session ended"));
                        let _ = p.reply.send(Err(e));
                    }
                    // Goodbye frames queued before this were sent; the connection ends here.
                    while let Some(AgentAction::Send(frame)) = queue.pop_front() {
                        let _ = send(&mut ws, Message::Binary(frame.into())).await;
                    }
                    let _ = ws.close(None).await;
                    return err.map_or(Ok(()), Err);
                }
            }
        }
    }
}

/// The request waiting at the phone, with the page's reply channel.
struct Pending {
    id: u32,
    doc: Arc<Doc>,
    reply: Reply,
}

/// Timers: until a phone pairs, and while a request waits at the phone.
fn deadline_applies(m: &AgentSession, pending: &Option<Pending>) -> bool {
    match m.phase() {
        SessionPhase::Waiting | SessionPhase::Pairing => true,
        SessionPhase::Connected => pending.is_some(),
        SessionPhase::Closed => false,
    }
}

/// The agent's own check of an approved signature (on the blocking pool: hashing and verifying up to
/// 8 MiB), then the answer the page receives.
async fn checked_answer(doc: &Arc<Doc>, sig: Vec<u8>, paired: Paired) -> Result<SignDocResponse, ServiceError> {
    let leaf = paired.chain.first().cloned().ok_or_else(|| ServiceError::internal("no certificate"))?;
    let (d, l, sg) = (doc.clone(), leaf.clone(), sig.clone());
    let (scheme, sha256) = crate::blocking(move || {
        let sha256 = match &d.digest {
            Some(g) => hex::encode(&g.sha256),
            None => hex::encode(HashAlg::Sha256.digest(&d.data)),
        };
        check_signature(&d, &sg, &l).map(|scheme| (scheme, sha256))
    })
    .await?;
    Ok(SignDocResponse {
        format: doc.format,
        signature: sig.into(),
        document: None,
        level: None,
        scheme,
        sha256,
        certificate_pem: paired.chain.iter().map(|c| x509::cert_pem(c)).collect(),
        signer: x509::cert_info(&leaf).map_err(ServiceError::from)?,
        login: paired.login,
    })
}

/// Checks the phone's hello against this agent's trust (`kalit_core::flow::agent::check_hello`).
pub fn check_hello(
    st: &AgentState,
    hello: &ChannelMessage,
    peer_login: &str,
    peer_device: &str,
    now_secs: i64,
) -> Result<(kalit_proto::Login, Vec<Vec<u8>>), ServiceError> {
    Ok(kalit_core::flow::agent::check_hello(&st.session_config(), hello, peer_login, peer_device, now_secs)?)
}

/// The agent's own check before a signature goes to the page (`kalit_core::flow::agent::check_signature`).
pub fn check_signature(doc: &Doc, sig: &[u8], leaf: &[u8]) -> Result<String, ServiceError> {
    Ok(kalit_core::flow::agent::check_signature(doc, sig, leaf)?)
}
