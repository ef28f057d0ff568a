//! The computer's side of a signing session (paper steps 18-28), without I/O.
//!
//! ```text
//! Waiting --peer--> Handshake --msg1/msg2--> Hello --hello checked--> Connected --end/fail/bye--> Closed
//!                                                                    (sign -> pending -> answer | withdraw)
//! ```
//!
//! The driver feeds [`AgentSession::on_event`] (relay control events), [`AgentSession::on_frame`] (binary
//! tunnel frames), [`AgentSession::sign`], [`AgentSession::withdraw`], [`AgentSession::end`] and
//! [`AgentSession::fail`] (its timers), and performs the [`AgentAction`]s in order. The agent's own check of
//! an approved signature against the document the page sent ([`check_signature`]) is CPU work the driver
//! runs where it likes; a signature that fails it is reported with [`AgentSession::fail`].

use kalit_proto::session::{
    ChannelMessage, DOCUMENT_PART, DocFormat, DocumentSupport, MAX_DOCUMENT, PREVIEW_LEN, SessionPhase, SignAnswer,
    TunnelEvent, formats_signed,
};
use kalit_proto::{DeviceId, ErrorCode, Login, RelayId};

use super::{Failure, answer_keeps_session, bye_frames, remember_withdrawn, seal_frames};
use crate::digest::HashAlg;
use crate::session::{AgentSecrets, CLOCK_SKEW_SECS, Channel, Qr};
use crate::{display, statement, x509};

/// What the agent trusts.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The relay's id.
    pub relay_id: RelayId,
    /// The relay's raw Ed25519 public key (pinned).
    pub relay_public_key: Vec<u8>,
    /// DER trust anchors for the phone's certificate; empty: the relay's attestation alone (the agent
    /// refuses to run so unless told loudly).
    pub anchors: Vec<Vec<u8>>,
}

/// A document the page asked to sign.
#[derive(Debug, Clone)]
pub struct SignDoc {
    /// The document; with `digest`, at least its first [`PREVIEW_LEN`] bytes (all of a prepared PDF, which
    /// the agent completes).
    pub data: Vec<u8>,
    /// Name shown on the phone.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Raw, CMS, or PAdES (`data` is then the prepared PDF).
    pub format: DocFormat,
    /// RSA-PSS.
    pub pss: bool,
    /// For PAdES: the prepared PDF's `/ByteRange` `[0, a, b, c]`, the bytes the CMS must be over
    /// (`data[..a]` and `data[b..b + c]`), as the agent wrote it.
    pub byte_range: Option<[usize; 4]>,
    /// A document too large to travel whole to this phone (CMS and PAdES only): what the agent computed
    /// as it read it. The phone receives these digests and the first bytes ([`ChannelMessage::SignDigest`]).
    pub digest: Option<DocDigest>,
}

/// The length and digests of a document that does not travel (for PAdES: of the prepared PDF's byte
/// ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocDigest {
    /// Length in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: Vec<u8>,
    /// SHA-512.
    pub sha512: Vec<u8>,
}

impl SignDoc {
    /// The document's length in bytes.
    pub fn size(&self) -> u64 {
        self.digest.as_ref().map_or(self.data.len() as u64, |d| d.size)
    }
}

/// Who paired, once the hello is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    /// The short authentication string both screens show.
    pub sas: String,
    /// The login the relay attested.
    pub login: Login,
    /// The phone's certificate chain, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The formats the phone signs (its hello's list, or raw and CMS for a phone that lists none).
    pub formats: Vec<DocFormat>,
    /// Documents larger than [`MAX_DOCUMENT`] the phone takes (its hello's offer).
    pub documents: Option<DocumentSupport>,
}

/// What the driver does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// Send this binary frame into the tunnel.
    Send(Vec<u8>),
    /// The phone is paired and checked: show the SAS; documents may be signed.
    Paired(Paired),
    /// The phone answered request `id`: the signature (not yet checked against the document: run
    /// [`check_signature`]), or why not (the session stays usable unless a [`AgentAction::Closed`] follows).
    Answer {
        /// The request.
        id: u32,
        /// Signature bytes (raw or DER CMS), or the failure to give the page.
        result: Result<Vec<u8>, Failure>,
    },
    /// The phone answered a request the page had withdrawn: refused, never given to anyone.
    LateAnswerRefused {
        /// The withdrawn request.
        id: u32,
    },
    /// The session is over (`None`: ended normally). A request still waiting gets this failure (or
    /// `expired`).
    Closed(Option<Failure>),
}

#[derive(Debug)]
enum Phase {
    Waiting,
    Handshake { login: Login, device_id: DeviceId },
    Hello { login: Login, device_id: DeviceId },
    Connected,
    Closed,
}

/// The computer's side of one session.
#[derive(Debug)]
pub struct AgentSession {
    qr: Qr,
    secrets: Option<AgentSecrets>,
    ephemeral: Option<[u8; 32]>,
    config: AgentConfig,
    phase: Phase,
    channel: Option<Channel>,
    paired: Option<Paired>,
    last_id: u32,
    pending: Option<u32>,
    withdrawn: Vec<u32>,
    /// A document on its way in parts: its request and the bytes sent so far ([`AgentSession::next_part`]).
    streaming: Option<(u32, usize)>,
}

impl AgentSession {
    /// A session for a QR the agent made (`Qr::for_computer`), waiting for a phone.
    pub fn new(qr: Qr, secrets: AgentSecrets, config: AgentConfig) -> AgentSession {
        AgentSession {
            qr,
            secrets: Some(secrets),
            ephemeral: None,
            config,
            phase: Phase::Waiting,
            channel: None,
            paired: None,
            last_id: 0,
            pending: None,
            withdrawn: vec![],
            streaming: None,
        }
    }

    /// The QR.
    pub fn qr(&self) -> &Qr {
        &self.qr
    }

    /// Where the session is, as the page sees it.
    pub fn phase(&self) -> SessionPhase {
        match self.phase {
            Phase::Waiting => SessionPhase::Waiting,
            Phase::Handshake { .. } | Phase::Hello { .. } => SessionPhase::Pairing,
            Phase::Connected => SessionPhase::Connected,
            Phase::Closed => SessionPhase::Closed,
        }
    }

    /// Who paired, once paired.
    pub fn paired(&self) -> Option<&Paired> {
        self.paired.as_ref()
    }

    /// The request waiting at the phone.
    pub fn pending(&self) -> Option<u32> {
        self.pending
    }

    /// A control event from the relay.
    pub fn on_event(&mut self, event: TunnelEvent) -> Vec<AgentAction> {
        match (&self.phase, event) {
            (Phase::Closed, _) => vec![],
            (Phase::Waiting, TunnelEvent::Ready { .. }) => vec![],
            // A page that took its side back (kalit.js direct mode): the channel goes on.
            (Phase::Hello { .. } | Phase::Connected, TunnelEvent::Resumed) => vec![],
            (Phase::Waiting, TunnelEvent::Peer { login, device_id }) => {
                self.phase = Phase::Handshake { login, device_id };
                vec![]
            }
            (_, TunnelEvent::Error { code, message }) => {
                let code = if code == ErrorCode::Unknown { ErrorCode::Unavailable } else { code };
                self.close(Some(Failure::new(
                    code,
                    format!("the relay ended the tunnel: {}", display::field(&message, 200)),
                )))
            }
            _ => self.close(Some(Failure::new(ErrorCode::Unavailable, "the relay broke the tunnel protocol"))),
        }
    }

    /// A binary frame from the tunnel; `now_secs` (Unix) for the checks of the hello.
    pub fn on_frame(&mut self, frame: &[u8], now_secs: i64) -> Vec<AgentAction> {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Closed => vec![],
            Phase::Waiting => {
                self.close(Some(Failure::new(ErrorCode::Unavailable, "the relay broke the tunnel protocol")))
            }
            Phase::Handshake { login, device_id } => {
                let Some(secrets) = self.secrets.take() else {
                    return self.close(Some(Failure::channel("handshake state lost")));
                };
                let r = match &self.ephemeral {
                    Some(e) => crate::session::hazmat::danger_agent_respond(&self.qr, &secrets, frame, e),
                    None => crate::session::agent_respond(&self.qr, &secrets, frame),
                };
                // The session secret and the static key's copy are dropped here, after the handshake.
                drop(secrets);
                match r {
                    Ok((msg2, channel)) => {
                        self.channel = Some(channel);
                        self.phase = Phase::Hello { login, device_id };
                        vec![AgentAction::Send(msg2)]
                    }
                    Err(e) => self.close(Some(e.into())),
                }
            }
            Phase::Hello { login, device_id } => match self.open(frame) {
                Err(e) => self.close(Some(e)),
                Ok(None) => {
                    self.phase = Phase::Hello { login, device_id };
                    vec![]
                }
                Ok(Some(hello)) => match check_hello(&self.config, &hello, &login, &device_id, now_secs) {
                    Ok((login, chain)) => {
                        let sas = self.channel.as_ref().map(|c| c.sas().to_string()).unwrap_or_default();
                        let (formats, documents) = match &hello {
                            ChannelMessage::Hello { formats, documents, .. } => {
                                (formats_signed(formats).to_vec(), *documents)
                            }
                            _ => (formats_signed(&[]).to_vec(), None),
                        };
                        let p = Paired { sas, login, chain, formats, documents };
                        self.paired = Some(p.clone());
                        self.phase = Phase::Connected;
                        vec![AgentAction::Paired(p)]
                    }
                    Err(e) => {
                        self.phase = Phase::Hello { login, device_id };
                        self.fail(e)
                    }
                },
            },
            Phase::Connected => {
                self.phase = Phase::Connected;
                match self.open(frame) {
                    Err(e) => self.close(Some(e)),
                    Ok(None) => vec![],
                    Ok(Some(m)) => self.on_message(m),
                }
            }
        }
    }

    fn open(&mut self, frame: &[u8]) -> Result<Option<ChannelMessage>, Failure> {
        let ch = self.channel.as_mut().ok_or_else(|| Failure::channel("no channel"))?;
        ch.open(frame).map_err(Failure::from)
    }

    fn on_message(&mut self, m: ChannelMessage) -> Vec<AgentAction> {
        match m {
            ChannelMessage::SignResponse { id, .. } if self.withdrawn.contains(&id) => {
                self.withdrawn.retain(|w| *w != id);
                vec![AgentAction::LateAnswerRefused { id }]
            }
            ChannelMessage::SignResponse { id, answer } if self.pending == Some(id) => {
                self.pending = None;
                let result = phone_answer(answer);
                match &result {
                    Err(e) if !answer_keeps_session(e.code) => {
                        let e = e.clone();
                        let mut out = vec![AgentAction::Answer { id, result }];
                        out.extend(self.fail(e));
                        out
                    }
                    _ => vec![AgentAction::Answer { id, result }],
                }
            }
            ChannelMessage::SignResponse { .. } => self.fail(Failure::channel("the phone answered another request")),
            ChannelMessage::Bye { reason, code } => {
                let reason = display::field(&reason, 300);
                let code = code.filter(|c| *c != ErrorCode::Unknown).unwrap_or(ErrorCode::Declined);
                self.close(Some(Failure::new(code, format!("the phone ended the session: {reason}"))))
            }
            _ => self.fail(Failure::channel("the phone sent a message out of turn")),
        }
    }

    /// Sends a document to the phone; returns its request id. One request at a time.
    pub fn sign(&mut self, doc: &SignDoc) -> Result<(u32, Vec<AgentAction>), Failure> {
        match self.phase {
            Phase::Connected => {}
            Phase::Closed => return Err(Failure::new(ErrorCode::Expired, "the session ended")),
            _ => return Err(Failure::new(ErrorCode::Expired, "no phone connected yet")),
        }
        if self.pending.is_some() {
            return Err(Failure::new(ErrorCode::Busy, "a signature is already waiting for approval in this session"));
        }
        if let Some(p) = &self.paired
            && !p.formats.contains(&doc.format)
        {
            return Err(Failure::new(
                ErrorCode::InvalidInput,
                format!(
                    "the Kalit on this phone does not make {} signatures (it makes {}); update it, or ask for another format",
                    doc.format.as_str(),
                    p.formats.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if doc.format == DocFormat::Pades && doc.byte_range.is_none() {
            return Err(Failure::new(ErrorCode::Internal, "a PDF signature request without its byte range"));
        }
        let id = self.last_id.checked_add(1).ok_or_else(|| Failure::new(ErrorCode::Expired, "too many requests"))?;
        let origin = self.qr.payload.origin.clone();
        let offer = DocumentSupport::effective(self.paired.as_ref().and_then(|p| p.documents));
        let (name, media_type, format, pss) = (doc.name.clone(), doc.media_type.clone(), doc.format, doc.pss);
        let mb = |n: u64| n.div_ceil(1024 * 1024);
        let frames = if let Some(d) = &doc.digest {
            if format == DocFormat::Raw {
                return Err(Failure::new(
                    ErrorCode::TooLarge,
                    "a raw signature is made over the whole document, which is too large to travel to the phone: ask for cms",
                ));
            }
            if !offer.digest {
                return Err(Failure::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the document ({} MiB) is larger than the Kalit on this phone takes (up to {} MiB), and it does not sign by digest; update it",
                        mb(d.size),
                        mb(offer.whole)
                    ),
                ));
            }
            let preview = &doc.data[..doc.data.len().min(PREVIEW_LEN)];
            self.seal(&ChannelMessage::SignDigest {
                id,
                origin,
                name,
                media_type,
                format,
                pss,
                size: d.size,
                sha256: d.sha256.as_slice().into(),
                sha512: d.sha512.as_slice().into(),
                preview: preview.into(),
            })?
        } else if doc.data.len() > MAX_DOCUMENT {
            let size = doc.data.len() as u64;
            if size > offer.whole {
                return Err(Failure::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the document ({} MiB) is larger than the Kalit on this phone takes whole (up to {} MiB)",
                        mb(size),
                        mb(offer.whole)
                    ),
                ));
            }
            // The parts follow from [`AgentSession::next_part`], one at a time: sealed as they are sent.
            let frames = self.seal(&ChannelMessage::SignStart { id, origin, name, media_type, format, pss, size })?;
            self.streaming = Some((id, 0));
            frames
        } else {
            self.seal(&ChannelMessage::SignRequest {
                id,
                origin,
                name,
                media_type,
                data: doc.data.as_slice().into(),
                format,
                pss,
            })?
        };
        self.last_id = id;
        self.pending = Some(id);
        Ok((id, frames))
    }

    /// Whether a document is still on its way in parts (call [`AgentSession::next_part`]).
    pub fn streaming(&self) -> bool {
        self.streaming.is_some()
    }

    /// How many bytes of the document in parts have been sealed so far (`None`: none on its way).
    pub fn streamed(&self) -> Option<usize> {
        self.streaming.map(|(_, n)| n)
    }

    /// The next part of the document that [`AgentSession::sign`] started streaming (`doc` must be that
    /// document): its frames, or nothing once all are sent (or the request was withdrawn, or the session
    /// ended). Sealed one part at a time, so the agent never holds the whole document twice and the relay
    /// and the phone work while the next part is sealed.
    pub fn next_part(&mut self, doc: &SignDoc) -> Vec<AgentAction> {
        let Some((id, sent)) = self.streaming else { return vec![] };
        if self.pending != Some(id) || matches!(self.phase, Phase::Closed) {
            self.streaming = None;
            return vec![];
        }
        let end = doc.data.len().min(sent + DOCUMENT_PART);
        let Some(part) = doc.data.get(sent..end).filter(|p| !p.is_empty()) else {
            self.streaming = None;
            return vec![];
        };
        self.streaming = (end < doc.data.len()).then_some((id, end));
        match self.seal(&ChannelMessage::DocumentPart { id, data: part.into() }) {
            Ok(frames) => frames,
            Err(e) => self.fail(e),
        }
    }

    /// The page withdrew the waiting request (it gave up or ends the session): the phone is told, and a
    /// late answer will be refused.
    pub fn withdraw(&mut self, reason: &str) -> Vec<AgentAction> {
        self.streaming = None;
        let Some(id) = self.pending.take() else { return vec![] };
        remember_withdrawn(&mut self.withdrawn, id);
        match self.seal(&ChannelMessage::Cancel { id, reason: reason.to_string() }) {
            Ok(frames) => frames,
            Err(e) => self.close(Some(e)),
        }
    }

    /// The page ends the session: a waiting request is withdrawn, then goodbye.
    pub fn end(&mut self, reason: &str) -> Vec<AgentAction> {
        if matches!(self.phase, Phase::Closed) {
            return vec![];
        }
        let mut out = self.withdraw(reason);
        out.extend(self.goodbye(reason, None));
        out
    }

    /// The session fails (a timer ran out, the agent's check of a signature failed, the link broke): the
    /// phone is told why when the channel is up.
    pub fn fail(&mut self, e: Failure) -> Vec<AgentAction> {
        if matches!(self.phase, Phase::Closed) {
            return vec![];
        }
        let reason = e.message.clone();
        self.goodbye(&reason, Some(e))
    }

    /// Says goodbye (with the failure's code, if any) when the channel is up, then closes.
    fn goodbye(&mut self, reason: &str, failure: Option<Failure>) -> Vec<AgentAction> {
        let code = failure.as_ref().map(|f| f.code);
        let mut out: Vec<AgentAction> =
            bye_frames(&mut self.channel, reason, code).into_iter().map(AgentAction::Send).collect();
        out.extend(self.close(failure));
        out
    }

    fn seal(&mut self, m: &ChannelMessage) -> Result<Vec<AgentAction>, Failure> {
        Ok(seal_frames(&mut self.channel, m)?.into_iter().map(AgentAction::Send).collect())
    }

    fn close(&mut self, e: Option<Failure>) -> Vec<AgentAction> {
        self.phase = Phase::Closed;
        self.pending = None;
        self.streaming = None;
        self.secrets = None;
        vec![AgentAction::Closed(e)]
    }

    pub(crate) fn danger_seal(&mut self, m: &ChannelMessage) -> Result<Vec<Vec<u8>>, Failure> {
        seal_frames(&mut self.channel, m)
    }

    /// For conformance vectors only: the handshake's ephemeral key.
    pub(crate) fn set_ephemeral(&mut self, e: [u8; 32]) {
        self.ephemeral = Some(e);
    }
}

/// The phone's answer as the page will see it.
fn phone_answer(answer: SignAnswer) -> Result<Vec<u8>, Failure> {
    match answer {
        SignAnswer::Approved { signature } => {
            match statement::bounded("signature", &signature, crate::cms::MAX_CMS_LEN) {
                Ok(_) => Ok(signature.into_vec()),
                Err(e) => Err(Failure::new(ErrorCode::InvalidSignature, e.to_string())),
            }
        }
        SignAnswer::Declined => Err(Failure::new(ErrorCode::Declined, "the person declined on the phone")),
        SignAnswer::Failed { code, message } => {
            // The code the phone names (a wrong PIN, a locked vault, a refused document) reaches the page as
            // itself; the first phones of version 2 say it as `code: message`. Never internal or io from
            // the other side.
            let named = code.or_else(|| {
                message
                    .split_once(':')
                    .and_then(|(c, _)| ErrorCode::ALL.iter().copied().find(|k| k.as_str() == c.trim()))
            });
            let code = named
                .filter(|c| !matches!(c, ErrorCode::Internal | ErrorCode::Io | ErrorCode::Unknown))
                .unwrap_or(ErrorCode::Declined);
            let why = display::field(&message, 300);
            Err(Failure::new(code, format!("the phone could not sign: {why}")))
        }
    }
}

/// Checks the phone's hello: a chain to the anchors (when there are any), and the relay's signed,
/// unexpired attestation binding that certificate to the login and the device the relay authenticated
/// when the phone joined (a removed device's old attestation names a device the relay no longer lets in).
/// Returns the normalised login and the chain.
pub fn check_hello(
    config: &AgentConfig,
    hello: &ChannelMessage,
    peer_login: &str,
    peer_device: &str,
    now_secs: i64,
) -> Result<(Login, Vec<Vec<u8>>), Failure> {
    let ChannelMessage::Hello { login, chain, attestation, .. } = hello else {
        return Err(Failure::channel("the phone did not start with its hello"));
    };
    if chain.is_empty() || chain.len() > 8 {
        return Err(Failure::new(ErrorCode::InvalidInput, "the phone sent no certificate, or too many"));
    }
    let chain: Vec<Vec<u8>> = chain
        .iter()
        .map(|c| statement::bounded("certificate", c, 16 * 1024).map(<[u8]>::to_vec))
        .collect::<Result<_, _>>()?;
    if !config.anchors.is_empty() {
        let now = time::OffsetDateTime::from_unix_timestamp(now_secs)
            .map_err(|_| Failure::new(ErrorCode::Internal, "the clock is out of range"))?;
        x509::check_chain(&chain[0], &chain[1..], &config.anchors, now)?;
    }
    let unauthorized = |why: &str| Failure::new(ErrorCode::Unauthorized, format!("the phone's attestation {why}"));
    statement::verify_attestation(&config.relay_public_key, attestation)
        .map_err(|_| unauthorized("is not signed by the relay"))?;
    let a = &attestation.attestation;
    let login = statement::normalize_login(login)?;
    if a.relay_id != config.relay_id {
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
    if now_secs > a.expires_at.saturating_add(CLOCK_SKEW_SECS as i64) {
        return Err(unauthorized("has expired"));
    }
    if a.issued_at > now_secs.saturating_add(CLOCK_SKEW_SECS as i64) || a.expires_at < a.issued_at {
        return Err(unauthorized("has impossible times"));
    }
    Ok((login.into(), chain))
}

/// The agent's own check before a signature goes to the page: it verifies with the paired certificate
/// over the document *the page sent* (so a phone, relay or anything between that signed something else is
/// caught), with the padding the page asked for; a CMS must be signed by that very certificate. Returns
/// the scheme's name.
pub fn check_signature(doc: &SignDoc, sig: &[u8], leaf: &[u8]) -> Result<String, Failure> {
    let bad = |why: String| {
        Failure::new(
            ErrorCode::InvalidSignature,
            format!("the phone's answer does not verify over the document this page sent ({why}); it was not returned"),
        )
    };
    match doc.format {
        DocFormat::Raw if doc.digest.is_some() => Err(bad("a raw signature cannot be checked against a digest".into())),
        DocFormat::Raw => {
            let spki = x509::cert_spki(leaf)?;
            let scheme = x509::verify_raw(&spki, &doc.data, sig).map_err(|e| bad(e.to_string()))?;
            if scheme.name().contains("pss") != doc.pss {
                return Err(bad("a different padding than requested".into()));
            }
            Ok(scheme.name().to_string())
        }
        DocFormat::Cms | DocFormat::Pades => {
            // A PDF signature is over the prepared PDF's byte ranges (everything but the hole).
            let parts: [&[u8]; 2] = match (doc.format, doc.byte_range) {
                (DocFormat::Pades, Some([0, a, b, c])) if a <= b && b.checked_add(c) == Some(doc.data.len()) => {
                    [&doc.data[..a], &doc.data[b..]]
                }
                (DocFormat::Pades, _) => return Err(bad("the PDF's byte range is not the agent's".into())),
                _ => [&doc.data, &[]],
            };
            // A document that did not travel is checked against the digests the agent computed as it read it.
            let mut digest_of = |h: HashAlg| match (&doc.digest, h) {
                (Some(d), HashAlg::Sha256) => Ok(d.sha256.clone()),
                (Some(d), HashAlg::Sha512) => Ok(d.sha512.clone()),
                (Some(_), other) => {
                    Err(crate::CoreError::Unsupported(format!("a {other} digest of a document that did not travel")))
                }
                (None, h) => {
                    let mut hasher = crate::digest::Hasher::new(h);
                    parts.iter().for_each(|p| hasher.update(p));
                    Ok(hasher.finish())
                }
            };
            let v = crate::cms::verify_detached(sig, &mut digest_of, &[]).map_err(|e| bad(e.to_string()))?;
            if v.signer_cert != leaf {
                return Err(bad("signed with another certificate".into()));
            }
            Ok(v.scheme)
        }
    }
}
