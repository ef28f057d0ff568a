//! The phone's side of a signing session (paper steps 18-28), without I/O.
//!
//! ```text
//! new (QR checked) --joined (attestation checked)--> Handshake --msg2--> Ready (hello sent)
//! Ready --sign request (checked)--> Prompting(id) --answer | cancel--> Ready ... --bye/fail--> Closed
//! ```
//!
//! The driver joins the tunnel with [`PhoneSession::join_statement`] signed by the device key, then feeds
//! [`PhoneSession::on_event`] and [`PhoneSession::on_frame`], asks the person when a [`PhoneAction::Prompt`]
//! comes, and gives their decision to [`PhoneSession::answer`]. Before it unlocks the key for an approved
//! request it feeds the frames that already arrived and asks [`PhoneSession::is_withdrawn`]: a request the
//! computer withdrew is never signed, and an answer to it is refused here too.

use kalit_proto::namespace::TUNNEL_JOIN;
use kalit_proto::relay::SignedAttestation;
use kalit_proto::session::{
    ChannelMessage, DOCUMENT_PART, DocFormat, DocumentSupport, MAX_DOCUMENT, PREVIEW_LEN, QrMode, SignAnswer,
    SignedOriginAttestation, TunnelEvent, formats_signed,
};
use kalit_proto::{DeviceId, ErrorCode, Login, RelayId};

use super::{Failure, bye_frames, remember_withdrawn, seal_frames};
use crate::digest::{HashAlg, Hasher};
use crate::session::{CLOCK_SKEW_SECS, Channel, PhoneHandshake, Qr};
use crate::statement::{self, Statement};
use crate::{display, purpose};

/// This phone's registration with the relay the QR names.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The relay's id.
    pub relay_id: RelayId,
    /// The relay's raw Ed25519 public key (pinned at registration).
    pub relay_public_key: Vec<u8>,
    /// The login.
    pub login: Login,
    /// This device's id at the relay.
    pub device_id: DeviceId,
    /// The signing certificate chain, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The formats this phone signs, listed in its hello. Empty: none listed, which the computer reads as
    /// raw and CMS (what the first phones of session version 2 signed); a PDF signature needs `pades` here.
    pub formats: Vec<DocFormat>,
    /// Documents larger than [`MAX_DOCUMENT`] this phone takes, offered in its hello (`None`: none).
    pub documents: Option<DocumentSupport>,
}

/// A sign request that passed the phone's rules, for the person to decide. Every string came from the
/// computer: show it by the display rules (`crate::display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Request id (give it back to [`PhoneSession::answer`]).
    pub id: u32,
    /// The origin (the QR's, checked to be an origin).
    pub origin: String,
    /// Document name.
    pub name: String,
    /// Media type, normalised (a checked type/subtype token).
    pub media_type: String,
    /// The document; when `digests` is set, only its first bytes (at most [`PREVIEW_LEN`]).
    pub data: Vec<u8>,
    /// The document's length in bytes.
    pub size: u64,
    /// Set when the phone does not hold the whole document: the digests the signature is made over.
    pub digests: Option<Digests>,
    /// Raw, CMS or PAdES (`data` is then a prepared PDF: the signer inspects it before it asks).
    pub format: DocFormat,
    /// RSA-PSS.
    pub pss: bool,
    /// SHA-256 of the document, hex.
    pub sha256: String,
    /// A raw signature over bytes the phone cannot show: needs a separate confirmation.
    pub blind: bool,
    /// The phone received only the computer's digests and the first bytes (the digest path): it could not
    /// check the rest, says so, and needs a separate confirmation.
    pub unchecked: bool,
    /// The content does not look like its claimed type.
    pub type_warning: Option<String>,
}

/// The digests of a document the phone does not hold whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256 of what is signed.
    pub sha256: Vec<u8>,
    /// SHA-512 of the same (an Ed25519 key's CMS carries it); empty when the phone's key does not need it.
    pub sha512: Vec<u8>,
    /// Computed by the phone as the document streamed in (`false`: the computer's word, the digest path).
    pub computed_here: bool,
}

/// A large document arriving in parts.
#[derive(Debug)]
struct Receiving {
    req: Request,
    received: u64,
    sha256: Hasher,
    sha512: Option<Hasher>,
    /// The whole document (raw: the key signs it; PAdES: the phone inspects it) or its first bytes (CMS:
    /// the digest is all the key needs).
    kept: Vec<u8>,
    keep_all: bool,
}

/// The person's decision on a [`Prompt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneAnswer {
    /// Approved and signed: the signature (raw) or DER CMS.
    Approved(Vec<u8>),
    /// Declined.
    Declined,
    /// Approved, but signing failed (wrong PIN, locked vault, refused by the vault...).
    Failed(Failure),
}

/// What the driver does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneAction {
    /// Send this binary frame into the tunnel.
    Send(Vec<u8>),
    /// The relay let the phone in: where the computer's side connects from (show it).
    Network {
        /// As the relay saw it.
        computer_address: String,
        /// The phone's own network (IPv6: the same /64).
        same_network: bool,
    },
    /// The relay vouches (with its signature, checked) that the computer's side is a browser page of the
    /// QR's origin: a page in direct mode, with no agent. Show who vouches for the origin.
    OriginAttested {
        /// The relay that vouches.
        relay_id: String,
    },
    /// The handshake proved the computer holds the key the QR names; the hello is on its way. Show the
    /// SAS; the computer may be remembered now.
    Connected {
        /// The short authentication string.
        sas: String,
    },
    /// Ask the person.
    Prompt(Prompt),
    /// A request refused before asking anything (a protocol statement, a DER structure asked for raw);
    /// the computer has been told; the session goes on.
    Refused {
        /// The request.
        id: u32,
        /// Its origin.
        origin: String,
        /// Why.
        failure: Failure,
    },
    /// The computer withdrew request `id` (`prompted`: it is the one being asked; dismiss the prompt).
    Withdrawn {
        /// The request.
        id: u32,
        /// Why, as the computer says (escaped).
        reason: String,
        /// Whether it was waiting for the person.
        prompted: bool,
    },
    /// The computer said goodbye without an error (escaped reason).
    Ended {
        /// Why.
        reason: String,
    },
    /// The session is over (`None`: normally).
    Closed(Option<Failure>),
}

enum Phase {
    Joining,
    Handshake(Box<PhoneHandshake>),
    Ready,
    Receiving(Box<Receiving>),
    Prompting(u32),
    Closed,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Joining => "Joining",
            Phase::Handshake(_) => "Handshake",
            Phase::Ready => "Ready",
            Phase::Receiving(_) => "Receiving",
            Phase::Prompting(_) => "Prompting",
            Phase::Closed => "Closed",
        })
    }
}

/// The phone's side of one session.
#[derive(Debug)]
pub struct PhoneSession {
    qr: Qr,
    config: PhoneConfig,
    ephemeral: Option<[u8; 32]>,
    phase: Phase,
    channel: Option<Channel>,
    attestation: Option<SignedAttestation>,
    last_id: u32,
    withdrawn: Vec<u32>,
    /// When the session started (Unix seconds): the relay's origin statement must be fresh then.
    started: u64,
    /// Whether a CMS by this key carries a SHA-512 digest (Ed25519, RFC 8419; also when the leaf cannot be
    /// read here): only then does a streamed document get hashed twice.
    needs_sha512: bool,
}

impl PhoneSession {
    /// Checks the QR (version, expiry against `now_secs`, origin syntax, the relay this phone is
    /// registered with) and prepares the session. Nothing has been sent yet.
    pub fn new(qr_text: &str, now_secs: u64, config: PhoneConfig) -> Result<PhoneSession, Failure> {
        let qr = Qr::parse(qr_text)?;
        qr.check_fresh(now_secs)?;
        display::origin(&qr.payload.origin)?;
        if qr.payload.relay_id != config.relay_id {
            return Err(Failure::new(ErrorCode::NotFound, "the QR names another relay than this registration"));
        }
        if config.chain.is_empty() {
            return Err(Failure::new(ErrorCode::NotFound, "this registration's key has no certificate"));
        }
        let needs_sha512 = !matches!(
            crate::x509::cert_spki(&config.chain[0]).and_then(|spki| crate::x509::default_scheme_of(&spki)),
            Ok(s) if s != crate::alg::SignScheme::Ed25519
        );
        Ok(PhoneSession {
            qr,
            config,
            ephemeral: None,
            phase: Phase::Joining,
            channel: None,
            attestation: None,
            last_id: 0,
            withdrawn: vec![],
            started: now_secs,
            needs_sha512,
        })
    }

    /// The QR.
    pub fn qr(&self) -> &Qr {
        &self.qr
    }

    /// The tunnel to join.
    pub fn tunnel_id(&self) -> Result<String, Failure> {
        Ok(self.qr.tunnel_id()?)
    }

    /// What the device key signs to join the tunnel, over the relay's fresh `nonce`.
    pub fn join_statement(&self, nonce: &[u8]) -> Result<Statement, Failure> {
        let c = &self.config;
        Ok(Statement::device_request(&c.relay_id, nonce, &c.login, &c.device_id, TUNNEL_JOIN, &self.tunnel_id()?))
    }

    /// Whether the session is over.
    pub fn closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the computer withdrew request `id`.
    pub fn is_withdrawn(&self, id: u32) -> bool {
        self.withdrawn.contains(&id)
    }

    /// A control event from the relay.
    pub fn on_event(&mut self, event: TunnelEvent) -> Vec<PhoneAction> {
        match (&self.phase, event) {
            (Phase::Closed, _) => vec![],
            (Phase::Joining, TunnelEvent::Joined { attestation, computer_address, same_network, origin }) => {
                // The relay's fresh attestation for this device: the agent checks it; so do we, before
                // sending it.
                if statement::verify_attestation(&self.config.relay_public_key, &attestation).is_err() {
                    return self.close(Some(Failure::new(
                        ErrorCode::Unavailable,
                        "the relay's attestation does not verify with its pinned key",
                    )));
                }
                let a = &attestation.attestation;
                if a.device_id != self.config.device_id || a.login != self.config.login {
                    return self.close(Some(Failure::new(
                        ErrorCode::Unavailable,
                        "the relay's attestation is for another device or login",
                    )));
                }
                let vouched = match self.check_origin(origin.as_deref()) {
                    Ok(v) => v,
                    Err(e) => return self.close(Some(e)),
                };
                self.attestation = Some(attestation);
                let started = match &self.ephemeral {
                    Some(e) => crate::session::hazmat::danger_phone_start(&self.qr, e),
                    None => PhoneHandshake::start(&self.qr),
                };
                match started {
                    Ok((hs, msg1)) => {
                        self.phase = Phase::Handshake(Box::new(hs));
                        let mut out: Vec<PhoneAction> =
                            vouched.map(|relay_id| PhoneAction::OriginAttested { relay_id }).into_iter().collect();
                        out.push(PhoneAction::Network {
                            computer_address: display::field(&computer_address, 60),
                            same_network,
                        });
                        out.push(PhoneAction::Send(msg1));
                        out
                    }
                    Err(e) => self.close(Some(e.into())),
                }
            }
            (_, TunnelEvent::Error { code, message }) => {
                let code = if code == ErrorCode::Unknown { ErrorCode::Unavailable } else { code };
                self.close(Some(Failure::new(code, format!("the relay: {}", display::field(&message, 200)))))
            }
            _ => self.close(Some(Failure::new(ErrorCode::Unavailable, "the relay broke the tunnel protocol"))),
        }
    }

    /// The relay's statement of the page's origin, when it sent one: signed with its pinned key, for this
    /// relay and tunnel, fresh, and naming the QR's origin. A QR a page made itself (direct mode) needs
    /// one. Returns the relay that vouches.
    fn check_origin(&self, origin: Option<&SignedOriginAttestation>) -> Result<Option<String>, Failure> {
        let direct = self.qr.payload.mode == Some(QrMode::Direct);
        let Some(signed) = origin else {
            return if direct {
                Err(Failure::new(
                    ErrorCode::RefusedByPolicy,
                    "this QR comes from a web page, but the relay did not vouch for the page's origin; nothing was signed",
                ))
            } else {
                Ok(None)
            };
        };
        let bad = |why: &str| Failure::new(ErrorCode::Unavailable, format!("the relay's origin statement {why}"));
        statement::verify_origin_attestation(&self.config.relay_public_key, signed)
            .map_err(|_| bad("does not verify with its pinned key"))?;
        let a = &signed.attestation;
        if a.relay_id != self.config.relay_id {
            return Err(bad("is for another relay"));
        }
        if a.tunnel != self.tunnel_id()? {
            return Err(bad("is for another session"));
        }
        let now = self.started as i64;
        let skew = CLOCK_SKEW_SECS as i64;
        if now > a.expires_at.saturating_add(skew) || a.issued_at > now.saturating_add(skew) {
            return Err(bad("is not valid now"));
        }
        if a.origin != self.qr.payload.origin {
            return Err(Failure::new(
                ErrorCode::RefusedByPolicy,
                format!(
                    "the page that made this QR is {}, but the QR claims {}; nothing was signed",
                    display::field(&a.origin, 120),
                    display::field(&self.qr.payload.origin, 120)
                ),
            ));
        }
        Ok(Some(a.relay_id.to_string()))
    }

    /// A binary frame from the tunnel.
    pub fn on_frame(&mut self, frame: &[u8]) -> Vec<PhoneAction> {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Closed => vec![],
            Phase::Joining => {
                self.close(Some(Failure::new(ErrorCode::Unavailable, "the relay broke the tunnel protocol")))
            }
            Phase::Handshake(hs) => match hs.finish(frame) {
                Err(e) => self.close(Some(e.into())),
                Ok(channel) => {
                    let sas = channel.sas().to_string();
                    self.channel = Some(channel);
                    self.phase = Phase::Ready;
                    let Some(attestation) = self.attestation.clone() else {
                        return self.close(Some(Failure::channel("no attestation")));
                    };
                    let hello = ChannelMessage::Hello {
                        login: self.config.login.clone(),
                        device_name: self.config.device_id.to_string(),
                        chain: self.config.chain.iter().map(|c| c.as_slice().into()).collect(),
                        attestation,
                        formats: self.config.formats.clone(),
                        documents: self.config.documents,
                    };
                    let mut out = vec![PhoneAction::Connected { sas }];
                    match self.seal(&hello) {
                        Ok(frames) => out.extend(frames),
                        Err(e) => out.extend(self.close(Some(e))),
                    }
                    out
                }
            },
            phase @ (Phase::Ready | Phase::Receiving(_) | Phase::Prompting(_)) => {
                self.phase = phase;
                let opened = match self.channel.as_mut() {
                    Some(ch) => ch.open(frame).map_err(Failure::from),
                    None => Err(Failure::channel("no channel")),
                };
                match opened {
                    Err(e) => self.close(Some(e)),
                    Ok(None) => vec![],
                    Ok(Some(m)) => self.on_message(m),
                }
            }
        }
    }

    fn on_message(&mut self, m: ChannelMessage) -> Vec<PhoneAction> {
        match m {
            ChannelMessage::SignRequest { id, origin, name, media_type, data, format, pss } => {
                let media_type = match self.begin(id, &origin, &media_type) {
                    Ok(m) => m,
                    Err(out) => return out,
                };
                if let Err(e) = statement::bounded("document", &data, MAX_DOCUMENT) {
                    return self.fail(Failure::new(ErrorCode::InvalidInput, format!("{e}; nothing was signed")));
                }
                let data = data.into_vec();
                let size = data.len() as u64;
                let sha256 = HashAlg::Sha256.digest(&data);
                self.ask(Request { id, origin, name, media_type, format, pss, size }, sha256, None, data)
            }
            ChannelMessage::SignStart { id, origin, name, media_type, format, pss, size } => {
                let media_type = match self.begin(id, &origin, &media_type) {
                    Ok(m) => m,
                    Err(out) => return out,
                };
                let whole = self.config.documents.map_or(0, |d| d.whole);
                if size == 0 || size > whole {
                    return self.fail(Failure::new(
                        ErrorCode::TooLarge,
                        format!("the computer sent a document of {size} bytes; this phone takes up to {whole} whole"),
                    ));
                }
                // CMS needs only the digest: the phone keeps the first bytes for the screen. A raw signature
                // is over the bytes themselves, and a PDF is inspected whole.
                let keep_all = format != DocFormat::Cms;
                self.phase = Phase::Receiving(Box::new(Receiving {
                    req: Request { id, origin, name, media_type, format, pss, size },
                    received: 0,
                    sha256: Hasher::new(HashAlg::Sha256),
                    sha512: (!keep_all && self.needs_sha512).then(|| Hasher::new(HashAlg::Sha512)),
                    kept: Vec::with_capacity(if keep_all { size as usize } else { PREVIEW_LEN }),
                    keep_all,
                }));
                vec![]
            }
            ChannelMessage::DocumentPart { id, data } => {
                let Phase::Receiving(r) = &mut self.phase else {
                    return self.fail(Failure::channel("the computer sent part of a document it had not announced"));
                };
                if id != r.req.id || data.is_empty() || data.len() > DOCUMENT_PART {
                    return self
                        .fail(Failure::channel("the computer sent a part of another request, or of a wrong size"));
                }
                let n = data.len() as u64;
                if r.received + n > r.req.size {
                    return self.fail(Failure::channel("the computer sent more of the document than it announced"));
                }
                r.sha256.update(&data);
                if let Some(h) = r.sha512.as_mut() {
                    h.update(&data);
                }
                if r.keep_all {
                    r.kept.extend_from_slice(&data);
                } else if r.kept.len() < PREVIEW_LEN {
                    let room = PREVIEW_LEN - r.kept.len();
                    r.kept.extend_from_slice(&data[..data.len().min(room)]);
                }
                r.received += n;
                if r.received < r.req.size {
                    return vec![];
                }
                let Phase::Receiving(r) = std::mem::replace(&mut self.phase, Phase::Ready) else {
                    return self.fail(Failure::channel("receiving state lost"));
                };
                let r = *r;
                let sha256 = r.sha256.finish();
                // A CMS keeps only the first bytes: it is signed by these digests, never over what was kept.
                let digests = (!r.keep_all).then(|| Digests {
                    sha256: sha256.clone(),
                    sha512: r.sha512.map(Hasher::finish).unwrap_or_default(),
                    computed_here: true,
                });
                self.ask(r.req, sha256, digests, r.kept)
            }
            ChannelMessage::SignDigest { id, origin, name, media_type, format, pss, size, sha256, sha512, preview } => {
                let media_type = match self.begin(id, &origin, &media_type) {
                    Ok(m) => m,
                    Err(out) => return out,
                };
                let offer = DocumentSupport::effective(self.config.documents);
                if !offer.digest || format == DocFormat::Raw {
                    return self.fail(Failure::new(
                        ErrorCode::InvalidInput,
                        "the computer asked to sign a document by its digest, which this phone did not offer for it",
                    ));
                }
                if size <= offer.whole
                    || sha256.len() != 32
                    || sha512.len() != 64
                    || preview.len() > PREVIEW_LEN
                    || preview.len() as u64 > size
                {
                    return self.fail(Failure::new(
                        ErrorCode::InvalidInput,
                        "the computer's digest request is malformed (a small document, a wrong digest length or preview); nothing was signed",
                    ));
                }
                let sha256 = sha256.into_vec();
                let digests = Some(Digests { sha256: sha256.clone(), sha512: sha512.into_vec(), computed_here: false });
                let req = Request { id, origin, name, media_type, format, pss, size };
                self.ask(req, sha256, digests, preview.into_vec())
            }
            ChannelMessage::Cancel { id, reason } => {
                let prompted = matches!(self.phase, Phase::Prompting(p) if p == id);
                let receiving = matches!(&self.phase, Phase::Receiving(r) if r.req.id == id);
                if prompted || receiving {
                    remember_withdrawn(&mut self.withdrawn, id);
                    self.phase = Phase::Ready;
                }
                vec![PhoneAction::Withdrawn { id, reason: display::field(&reason, 200), prompted }]
            }
            ChannelMessage::Bye { reason, code } => {
                let reason = display::field(&reason, 300);
                match code {
                    Some(code) => {
                        let code = if code == ErrorCode::Unknown { ErrorCode::Channel } else { code };
                        self.close(Some(Failure::new(code, format!("the computer ended the session: {reason}"))))
                    }
                    None => {
                        let mut out = vec![PhoneAction::Ended { reason }];
                        out.extend(self.close(None));
                        out
                    }
                }
            }
            _ => self.close(Some(Failure::channel("the computer sent a message out of turn"))),
        }
    }

    /// The checks every request passes before anything else: one at a time, a new id, the QR's origin, a
    /// media type token. Returns the normalised media type, or the actions that end the session.
    fn begin(&mut self, id: u32, origin: &str, media_type: &str) -> Result<String, Vec<PhoneAction>> {
        if !matches!(self.phase, Phase::Ready) {
            return Err(self.fail(Failure::channel("the computer sent a second request before this one was answered")));
        }
        if id <= self.last_id {
            return Err(self.fail(Failure::channel("the computer reused a request id")));
        }
        self.last_id = id;
        if origin != self.qr.payload.origin || display::origin(origin).is_err() {
            return Err(self.fail(Failure::new(
                ErrorCode::RefusedByPolicy,
                "the computer named another origin than the QR; nothing was signed",
            )));
        }
        display::media_type(media_type)
            .map_err(|e| self.fail(Failure::new(ErrorCode::InvalidInput, format!("{e}; nothing was signed"))))
    }

    /// A request whose document is all here (or, on the digest path, all the phone will get): refused
    /// before anything is asked, or put to the person.
    fn ask(&mut self, req: Request, sha256: Vec<u8>, digests: Option<Digests>, data: Vec<u8>) -> Vec<PhoneAction> {
        let Request { id, origin, name, media_type, format, pss, size } = req;
        // A format this phone did not offer, a document that is a protocol statement, or a DER structure
        // asked for raw, is refused before anything is asked (the vault refuses the last two too, whatever
        // the front end).
        let refusal = if formats_signed(&self.config.formats).contains(&format) {
            purpose::check_document(&data, format == DocFormat::Raw).err().map(Failure::from)
        } else {
            Some(Failure::new(
                ErrorCode::InvalidInput,
                format!("this phone does not make {} signatures; nothing was signed", format.as_str()),
            ))
        };
        if let Some(failure) = refusal {
            let answer = failed_response(id, &failure);
            let mut out = match self.seal(&answer) {
                Ok(frames) => frames,
                Err(e) => return self.close(Some(e)),
            };
            out.push(PhoneAction::Refused { id, origin, failure });
            return out;
        }
        let unchecked = digests.as_ref().is_some_and(|d| !d.computed_here);
        let prompt = Prompt {
            id,
            origin,
            name,
            blind: format == DocFormat::Raw && purpose::needs_blind_confirmation(&data),
            unchecked,
            type_warning: display::type_mismatch(&media_type, &data),
            sha256: hex::encode(sha256),
            media_type,
            data,
            size,
            digests,
            format,
            pss,
        };
        self.phase = Phase::Prompting(id);
        vec![PhoneAction::Prompt(prompt)]
    }

    /// The person's decision on request `id`. Refused (and nothing sent) when the computer withdrew it.
    pub fn answer(&mut self, id: u32, answer: PhoneAnswer) -> Result<Vec<PhoneAction>, Failure> {
        if self.is_withdrawn(id) {
            return Err(Failure::new(ErrorCode::Expired, "the computer withdrew this request; no answer was sent"));
        }
        if !matches!(self.phase, Phase::Prompting(p) if p == id) {
            return Err(Failure::new(ErrorCode::InvalidInput, format!("no request {id} is waiting for an answer")));
        }
        let m = match answer {
            PhoneAnswer::Approved(sig) => {
                ChannelMessage::SignResponse { id, answer: SignAnswer::Approved { signature: sig.into() } }
            }
            PhoneAnswer::Declined => ChannelMessage::SignResponse { id, answer: SignAnswer::Declined },
            PhoneAnswer::Failed(f) => failed_response(id, &f),
        };
        let frames = self.seal(&m)?;
        self.phase = Phase::Ready;
        Ok(frames)
    }

    /// The phone ends the session with an error the computer should know.
    pub fn fail(&mut self, e: Failure) -> Vec<PhoneAction> {
        if self.closed() {
            return vec![];
        }
        let reason = e.message.clone();
        self.goodbye(&reason, Some(e))
    }

    /// Says goodbye (with the failure's code, if any) when the channel is up, then closes.
    fn goodbye(&mut self, reason: &str, failure: Option<Failure>) -> Vec<PhoneAction> {
        let code = failure.as_ref().map(|f| f.code);
        let mut out: Vec<PhoneAction> =
            bye_frames(&mut self.channel, reason, code).into_iter().map(PhoneAction::Send).collect();
        out.extend(self.close(failure));
        out
    }

    /// The person ends the session.
    pub fn end(&mut self, reason: &str) -> Vec<PhoneAction> {
        if self.closed() {
            return vec![];
        }
        self.goodbye(reason, None)
    }

    fn seal(&mut self, m: &ChannelMessage) -> Result<Vec<PhoneAction>, Failure> {
        Ok(seal_frames(&mut self.channel, m)?.into_iter().map(PhoneAction::Send).collect())
    }

    fn close(&mut self, e: Option<Failure>) -> Vec<PhoneAction> {
        self.phase = Phase::Closed;
        vec![PhoneAction::Closed(e)]
    }

    pub(crate) fn danger_seal(&mut self, m: &ChannelMessage) -> Result<Vec<Vec<u8>>, Failure> {
        seal_frames(&mut self.channel, m)
    }

    /// For conformance vectors only: the handshake's ephemeral key.
    pub(crate) fn set_ephemeral(&mut self, e: [u8; 32]) {
        self.ephemeral = Some(e);
    }
}

/// A request to sign, as checked by [`PhoneSession::begin`] (the media type normalised), whichever way
/// its document travels.
#[derive(Debug)]
struct Request {
    id: u32,
    origin: String,
    name: String,
    media_type: String,
    format: DocFormat,
    pss: bool,
    /// The document's length in bytes.
    size: u64,
}

fn failed_response(id: u32, f: &Failure) -> ChannelMessage {
    ChannelMessage::SignResponse {
        id,
        answer: SignAnswer::Failed { code: Some(f.code), message: format!("{}: {}", f.code, f.message) },
    }
}
