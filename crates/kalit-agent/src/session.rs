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
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use kalit_core::digest::HashAlg;
use kalit_core::session::{AgentSecrets, CLOCK_SKEW_SECS, Channel, Qr, agent_respond};
use kalit_core::{statement, x509};
use kalit_proto::session::{
    ChannelMessage, DocFormat, SessionPhase, SessionState, SignDocResponse, SignStatus, TunnelEvent,
};
use kalit_proto::{ErrorBody, ErrorCode};
use kalit_service::ServiceError;
use kalit_service::ws::{
    Incoming, Ws, connect_from, next_frame, next_incoming, next_message, send, send_message, ws_url,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::AgentState;

/// Seconds a closed session stays visible to status polls.
const KEEP_CLOSED_SECS: u64 = 120;
/// Seconds for the handshake and the phone's hello once a phone joined.
const PAIRING_SECS: u64 = 30;

/// A document the page asked to sign.
#[derive(Debug)]
pub struct Doc {
    /// Bytes.
    pub data: Vec<u8>,
    /// Name shown on the phone.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Raw or CMS.
    pub format: DocFormat,
    /// RSA-PSS.
    pub pss: bool,
}

type Reply = oneshot::Sender<Result<SignDocResponse, ServiceError>>;

#[derive(Debug)]
enum Command {
    Sign(Doc, Reply),
}

#[derive(Debug)]
struct Shared {
    phase: SessionPhase,
    sas: Option<String>,
    login: Option<String>,
    chain: Vec<Vec<u8>>,
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
        }
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
        let r = run(&st2, &task_session, ws, &qr, secrets, rx).await;
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
    qr: &Qr,
    secrets: AgentSecrets,
    mut cmd: mpsc::Receiver<Command>,
) -> Result<(), ServiceError> {
    // 1. Wait for a phone until the QR expires.
    let deadline = Instant::now() + Duration::from_secs(u64::from(qr.payload.ttl) + CLOCK_SKEW_SECS);
    let peer = loop {
        tokio::select! {
            m = next_incoming(&mut ws) => match m? {
                Incoming::Event(TunnelEvent::Peer { login, device_id }) => break (login, device_id),
                _ => return Err(unavailable("the relay broke the tunnel protocol")),
            },
            c = cmd.recv() => match c {
                Some(Command::Sign(_, reply)) => {
                    let _ = reply.send(Err(ServiceError::new(ErrorCode::Expired, "no phone connected yet")));
                }
                None => return Ok(()),
            },
            () = sess.ending.notified() => return Ok(()),
            () = sleep_until(deadline) => {
                return Err(ServiceError::new(ErrorCode::Expired, "no phone scanned the QR before it expired"));
            }
        }
    };
    sess.set_phase(SessionPhase::Pairing);
    // 2. Noise handshake and the phone's hello.
    let pairing = async {
        let msg1 = next_frame(&mut ws).await?;
        let (msg2, mut ch) = agent_respond(qr, &secrets, &msg1).map_err(ServiceError::from)?;
        send(&mut ws, Message::Binary(msg2.into())).await?;
        let hello = next_message(&mut ws, &mut ch).await?;
        Ok::<_, ServiceError>((ch, hello))
    };
    let (mut ch, hello) = timeout(Duration::from_secs(PAIRING_SECS), pairing)
        .await
        .map_err(|_| ServiceError::new(ErrorCode::Expired, "the phone did not finish pairing in time"))??;
    drop(secrets);
    let now_secs = (kalit_service::now_ms() / 1000) as i64;
    let (login, chain) = match check_hello(st, &hello, &peer.0, &peer.1, now_secs) {
        Ok(v) => v,
        Err(e) => {
            let _ =
                send_message(&mut ws, &mut ch, &ChannelMessage::Bye { reason: e.message.clone(), code: Some(e.code) })
                    .await;
            return Err(e);
        }
    };
    {
        let mut s = sess.shared();
        s.phase = SessionPhase::Connected;
        s.sas = Some(ch.sas().to_string());
        s.login = Some(login.clone());
        s.chain = chain.clone();
    }
    if st.print_qr {
        println!("Phone of {login} connected. Check that it shows the code {}", ch.sas());
    }
    // 3. Sign requests, one at a time. Requests the page withdrew stay listed: a late answer to one of
    // them is refused, never delivered.
    let mut next_id = 0u32;
    let mut withdrawn: Vec<u32> = vec![];
    loop {
        if sess.ended.load(Ordering::SeqCst) {
            return end_session(&mut ws, &mut ch).await;
        }
        tokio::select! {
            c = cmd.recv() => match c {
                Some(Command::Sign(doc, mut reply)) => {
                    next_id += 1;
                    let r = sign_one(st, sess, &mut ws, &mut ch, next_id, doc, &chain, &login, &mut reply).await;
                    let r = match r {
                        Outcome::Answer(r) => *r,
                        Outcome::Withdrawn(why) => {
                            withdrawn.push(next_id);
                            let cancel = ChannelMessage::Cancel { id: next_id, reason: why.to_string() };
                            send_message(&mut ws, &mut ch, &cancel).await?;
                            tracing::info!(session = %sess.id, request = next_id, "request withdrawn: {why}");
                            let _ = reply.send(Err(ServiceError::new(ErrorCode::Expired, format!("the request was withdrawn: {why}"))));
                            continue;
                        }
                    };
                    // The phone's answers about one document (declined, refused, a wrong PIN) leave the
                    // session usable; anything else ends it.
                    let fatal = matches!(&r, Err(e) if !matches!(
                        e.code,
                        ErrorCode::Declined
                            | ErrorCode::RefusedByPolicy
                            | ErrorCode::WrongPin
                            | ErrorCode::TryLater
                            | ErrorCode::InvalidInput
                    ));
                    let err = r.as_ref().err().cloned();
                    let _ = reply.send(r);
                    if fatal {
                        let reason = err.as_ref().map(|e| e.message.clone()).unwrap_or_default();
                        let code = err.as_ref().map(|e| e.code);
                        let _ = send_message(&mut ws, &mut ch, &ChannelMessage::Bye { reason, code }).await;
                        return Err(err.unwrap_or_else(|| ServiceError::internal("session")));
                    }
                }
                None => return end_session(&mut ws, &mut ch).await,
            },
            () = sess.ending.notified() => return end_session(&mut ws, &mut ch).await,
            m = next_message(&mut ws, &mut ch) => match m? {
                ChannelMessage::Bye { .. } => {
                    return Err(ServiceError::new(ErrorCode::Declined, "the phone ended the session"));
                }
                ChannelMessage::SignResponse { id, .. } if withdrawn.contains(&id) => {
                    tracing::info!(session = %sess.id, request = id, "an answer to a withdrawn request was refused");
                }
                _ => return Err(ServiceError::new(ErrorCode::Channel, "the phone sent a message out of turn")),
            },
        }
    }
}

async fn end_session(ws: &mut Ws, ch: &mut Channel) -> Result<(), ServiceError> {
    let bye = ChannelMessage::Bye { reason: "the page ended the session".into(), code: None };
    let _ = send_message(ws, ch, &bye).await;
    let _ = ws.close(None).await;
    Ok(())
}

/// What became of one sign request.
enum Outcome {
    /// The phone answered (or the exchange failed).
    Answer(Box<Result<SignDocResponse, ServiceError>>),
    /// The page withdrew it before the phone answered (why, for the phone's screen).
    Withdrawn(&'static str),
}

/// Checks the phone's hello: a chain to the agent's anchors (when it has any), and the relay's signed,
/// unexpired attestation binding that certificate to the login and the device the relay authenticated
/// when the phone joined (a removed device's old attestation names a device the relay no longer lets in).
pub fn check_hello(
    st: &AgentState,
    hello: &ChannelMessage,
    peer_login: &str,
    peer_device: &str,
    now_secs: i64,
) -> Result<(String, Vec<Vec<u8>>), ServiceError> {
    let ChannelMessage::Hello { login, chain, attestation, .. } = hello else {
        return Err(ServiceError::new(ErrorCode::Channel, "the phone did not start with its hello"));
    };
    if chain.is_empty() || chain.len() > 8 {
        return Err(ServiceError::invalid("the phone sent no certificate, or too many"));
    }
    let chain: Vec<Vec<u8>> = chain
        .iter()
        .map(|c| statement::b64("certificate", c, 16 * 1024))
        .collect::<Result<_, _>>()
        .map_err(ServiceError::from)?;
    if !st.anchors.is_empty() {
        x509::check_chain(&chain[0], &chain[1..], &st.anchors, time::OffsetDateTime::now_utc())
            .map_err(ServiceError::from)?;
    }
    let unauthorized = |why: &str| ServiceError::new(ErrorCode::Unauthorized, format!("the phone's attestation {why}"));
    statement::verify_attestation(&st.relay_public_key, attestation)
        .map_err(|_| unauthorized("is not signed by the relay"))?;
    let a = &attestation.attestation;
    let login = statement::normalize_login(login).map_err(ServiceError::from)?;
    if a.relay_id != st.relay_id {
        return Err(unauthorized("is for another relay"));
    }
    if a.login != login || a.login != peer_login {
        return Err(unauthorized("is for another login"));
    }
    if a.cert_fingerprint != statement::cert_fingerprint(&chain[0]) {
        return Err(unauthorized("is for another certificate"));
    }
    if a.device_id != peer_device {
        return Err(unauthorized("is for another device than the one the relay let in"));
    }
    if now_secs > a.expires_at + CLOCK_SKEW_SECS as i64 {
        return Err(unauthorized("has expired"));
    }
    if a.issued_at > now_secs + CLOCK_SKEW_SECS as i64 || a.expires_at < a.issued_at {
        return Err(unauthorized("has impossible times"));
    }
    Ok((login, chain))
}

#[allow(clippy::too_many_arguments)]
async fn sign_one(
    st: &AgentState,
    sess: &Session,
    ws: &mut Ws,
    ch: &mut Channel,
    id: u32,
    doc: Doc,
    chain: &[Vec<u8>],
    login: &str,
    reply: &mut Reply,
) -> Outcome {
    let doc = Arc::new(doc);
    // Encoding up to 8 MiB is CPU work: on the blocking pool, like the checks of the answer.
    let d = doc.clone();
    let data = match crate::blocking(move || Ok(B64.encode(&d.data))).await {
        Ok(data) => data,
        Err(e) => return Outcome::Answer(Box::new(Err(e))),
    };
    let req = ChannelMessage::SignRequest {
        id,
        origin: sess.origin.clone(),
        name: doc.name.clone(),
        media_type: doc.media_type.clone(),
        data,
        format: doc.format,
        pss: doc.pss,
    };
    // The request goes out whole (a half-sent message would break the channel); then, while the phone
    // decides, the page may end the session or drop its request: either withdraws it.
    if let Err(e) = send_message(ws, ch, &req).await {
        return Outcome::Answer(Box::new(Err(e)));
    }
    tokio::select! {
        r = await_answer(st, ws, ch, id, &doc, chain, login) => Outcome::Answer(Box::new(r)),
        () = reply.closed() => Outcome::Withdrawn("the page stopped waiting"),
        // The session loop sees `ended` next and says goodbye after the cancel.
        () = sess.ending.notified() => Outcome::Withdrawn("the page ended the session"),
    }
}

async fn await_answer(
    st: &AgentState,
    ws: &mut Ws,
    ch: &mut Channel,
    id: u32,
    doc: &Arc<Doc>,
    chain: &[Vec<u8>],
    login: &str,
) -> Result<SignDocResponse, ServiceError> {
    let answer = timeout(Duration::from_secs(st.approval_timeout_secs), next_message(ws, ch))
        .await
        .map_err(|_| ServiceError::new(ErrorCode::Expired, "the phone did not answer in time"))??;
    let ChannelMessage::SignResponse { id: rid, status, signature, message } = answer else {
        return Err(ServiceError::new(ErrorCode::Channel, "the phone answered with something other than a signature"));
    };
    if rid != id {
        return Err(ServiceError::new(ErrorCode::Channel, "the phone answered another request"));
    }
    match status {
        SignStatus::Approved => {}
        SignStatus::Declined => {
            return Err(ServiceError::new(ErrorCode::Declined, "the person declined on the phone"));
        }
        SignStatus::Failed => {
            // The phone says `code: message`; a code it names (for example refused_by_policy when the
            // vault refuses a document that is a protocol statement) reaches the page as that code.
            let why = message.unwrap_or_default();
            let code = why
                .split_once(':')
                .and_then(|(c, _)| ErrorCode::ALL.iter().copied().find(|k| k.as_str() == c.trim()))
                .filter(|c| !matches!(c, ErrorCode::Internal | ErrorCode::Io))
                .unwrap_or(ErrorCode::Declined);
            let why = kalit_core::display::field(&why, 300);
            return Err(ServiceError::new(code, format!("the phone could not sign: {why}")));
        }
    }
    let sig = statement::b64("signature", signature.as_deref().unwrap_or(""), kalit_core::cms::MAX_CMS_LEN)
        .map_err(ServiceError::from)?;
    let leaf = &chain[0];
    // Verifying (and hashing) up to 8 MiB: on the blocking pool, so other pages' requests carry on.
    let (d, l, sg) = (doc.clone(), leaf.clone(), sig.clone());
    let (scheme, sha256) = crate::blocking(move || {
        check_signature(&d, &sg, &l).map(|scheme| (scheme, hex::encode(HashAlg::Sha256.digest(&d.data))))
    })
    .await?;
    Ok(SignDocResponse {
        format: doc.format,
        signature: B64.encode(&sig),
        scheme,
        sha256,
        certificate_pem: chain.iter().map(|c| x509::cert_pem(c)).collect(),
        signer: x509::cert_info(leaf).map_err(ServiceError::from)?,
        login: login.to_string(),
    })
}

/// The agent's own check before a signature goes to the page: it verifies with the paired certificate over
/// the document *the page sent* (so a phone, relay or anything between that signed something else is
/// caught), with the padding the page asked for; a CMS must be signed by that very certificate.
pub fn check_signature(doc: &Doc, sig: &[u8], leaf: &[u8]) -> Result<String, ServiceError> {
    let bad = |why: String| {
        ServiceError::new(
            ErrorCode::InvalidSignature,
            format!("the phone's answer does not verify over the document this page sent ({why}); it was not returned"),
        )
    };
    match doc.format {
        DocFormat::Raw => {
            let spki = x509::cert_spki(leaf).map_err(ServiceError::from)?;
            let scheme = x509::verify_raw(&spki, &doc.data, sig).map_err(|e| bad(e.to_string()))?;
            if scheme.name().contains("pss") != doc.pss {
                return Err(bad("a different padding than requested".into()));
            }
            Ok(scheme.name().to_string())
        }
        DocFormat::Cms => {
            let mut digest_of = |h: HashAlg| Ok(h.digest(&doc.data));
            let v = kalit_core::cms::verify_detached(sig, &mut digest_of, &[]).map_err(|e| bad(e.to_string()))?;
            if v.signer_cert != leaf {
                return Err(bad("signed with another certificate".into()));
            }
            Ok(v.scheme)
        }
    }
}
