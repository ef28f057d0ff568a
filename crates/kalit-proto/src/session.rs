//! The signing session: the QR payload, the relay tunnel's control events, the messages inside the
//! end-to-end channel, and the agent's JSON API for web pages.
//!
//! Flow (docs/PROTOCOL.md, paper steps 18-28): the agent makes a QR ([`QrPayload`]) and waits on the
//! relay's tunnel; the phone scans it, joins the tunnel with a device-signed request, runs the Noise
//! handshake, and sends [`ChannelMessage::Hello`]; the agent sends [`ChannelMessage::SignRequest`]s and the
//! phone answers each with [`ChannelMessage::SignResponse`].

use serde::{Deserialize, Serialize};

use crate::relay::SignedAttestation;
use crate::vault::CertInfo;
use crate::{Base64, Base64Url, DeviceId, ErrorBody, ErrorCode, Login, RelayId};

/// Prefix of the QR text.
pub const QR_SCHEME: &str = "kalit:";
/// Version of the QR payload and channel messages. A change that an older peer cannot read bumps it:
/// 2 added [`ChannelMessage::Cancel`], the computer identity in `pk` and the fields of the relay's
/// `joined` and `peer` events (and `Bye.code`, which 1 had gained without a bump).
pub const SESSION_VERSION: u32 = 2;
/// Default lifetime of a QR, seconds.
pub const QR_TTL_SECS: u32 = 60;
/// Longest lifetime an agent may give a QR, seconds.
pub const QR_TTL_MAX_SECS: u32 = 300;
/// Longest QR text accepted.
pub const QR_MAX_LEN: usize = 1024;
/// Largest document that travels to the phone, bytes.
pub const MAX_DOCUMENT: usize = 8 * 1024 * 1024;
/// Largest channel message (JSON, before encryption), bytes: a base64 document plus its fields.
pub const MAX_CHANNEL_MESSAGE: usize = MAX_DOCUMENT / 3 * 4 + 64 * 1024;
/// Largest document a phone takes whole by default: larger than [`MAX_DOCUMENT`] it travels in
/// [`ChannelMessage::DocumentPart`]s and the phone hashes it as it arrives; larger than what the phone
/// offers ([`DocumentSupport::whole`]) it takes the digest path ([`ChannelMessage::SignDigest`]).
pub const MAX_WHOLE_DOCUMENT: u64 = 64 * 1024 * 1024;
/// Document bytes in one [`ChannelMessage::DocumentPart`] (the last may be shorter).
pub const DOCUMENT_PART: usize = 1024 * 1024;
/// The first bytes of a document a phone shows (and receives, on the digest path), at most.
pub const PREVIEW_LEN: usize = 64 * 1024;
/// Largest document the agent signs at all (by its digest), bytes.
pub const MAX_DIGEST_DOCUMENT: u64 = 16 * 1024 * 1024 * 1024;
/// Largest WebSocket frame in the tunnel: one Noise message.
pub const MAX_FRAME: usize = 65535;
/// Accepted clock difference between agent and phone, seconds.
pub const CLOCK_SKEW_SECS: u64 = 10;

/// Whether `s` looks like a tunnel id (64 lowercase hex characters).
pub fn is_tunnel_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Path of the agent's side of a tunnel (`{id}`: the tunnel id).
pub const TUNNEL_WAIT_PATH: &str = "/v1/tunnel/{id}/wait";
/// Path of the phone's side of a tunnel.
pub const TUNNEL_JOIN_PATH: &str = "/v1/tunnel/{id}/join";
/// Path where a web page whose socket dropped (a phone's browser froze its tab) takes its side back.
pub const TUNNEL_RESUME_PATH: &str = "/v1/tunnel/{id}/resume";

/// The first (text) frame on [`TUNNEL_RESUME_PATH`]: the resume secret whose SHA-256 the page gave when
/// it started waiting (`?resume=HEX`) or resumed last, and the hash of the next one (one use each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// The 32-byte secret, base64.
    pub resume: Base64,
    /// SHA-256 of the next secret, 64 hex characters.
    pub next: String,
}

/// What the QR carries. Its text form is `kalit:` + base64url(JSON); that exact text is the Noise prologue,
/// so a changed field makes the handshake fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QrPayload {
    /// [`SESSION_VERSION`].
    pub v: u32,
    /// The agent's X25519 public key for this session, base64url (32 bytes).
    pub pk: Base64Url,
    /// The 16-byte session secret, base64url: tunnel id and Noise PSK are derived from it.
    pub s: Base64Url,
    /// The relay's base URL.
    pub relay: String,
    /// The relay's id (the phone must be registered with it).
    pub relay_id: RelayId,
    /// The web origin that asked for the session.
    pub origin: String,
    /// Issue time, Unix seconds.
    pub iat: u64,
    /// Lifetime in seconds.
    pub ttl: u32,
    /// The operation, `sign`.
    pub op: String,
    /// `direct` when a web page made this QR itself, with no agent (kalit.js direct mode): the phone then
    /// requires the relay's statement of the page's origin ([`OriginAttestation`]) and does not ask the
    /// person to name a computer (the page's key lives for one session). Absent for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<QrMode>,
}

/// Who made a QR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum QrMode {
    /// A web page, through the relay (no agent on the computer).
    Direct,
}

/// What the relay vouches for in direct mode: the waiting side of this tunnel is a browser page of this
/// origin (read from the browser's `Origin` header on the WebSocket upgrade, which page scripts cannot
/// set). Signed under `kalit/v1/origin` with the relay's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OriginAttestation {
    /// The relay id.
    pub relay_id: RelayId,
    /// The tunnel id.
    pub tunnel: String,
    /// The origin the browser sent.
    pub origin: String,
    /// Unix time (seconds) the relay signed it.
    pub issued_at: i64,
    /// Unix time (seconds) after which no one may rely on it.
    pub expires_at: i64,
}

/// An [`OriginAttestation`] with the relay's Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedOriginAttestation {
    /// The attested facts.
    pub attestation: OriginAttestation,
    /// Base64 signature.
    pub signature: Base64,
    /// The endorsed signing key that made `signature`; absent when the root key signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_key: Option<Box<crate::relay::EndorsedRelayKey>>,
}

/// A control event the relay sends on a tunnel WebSocket as a text frame. Ciphertext travels as binary
/// frames and is never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TunnelEvent {
    /// To the phone, first, when it opened its end with `?challenge=1`: the nonce its join request signs
    /// over (the same single-use nonce `POST /v1/nonce` hands out, without a request of its own).
    Challenge {
        /// 32 random bytes, base64.
        nonce: Base64,
        /// Unix time (seconds) after which the relay refuses it.
        expires_at: i64,
    },
    /// To the agent: the tunnel is waiting for a phone until `expires_in` seconds from now.
    Ready {
        /// Seconds left.
        expires_in: u64,
    },
    /// To the agent: a registered phone joined; ciphertext follows.
    Peer {
        /// The login the relay authenticated the phone for.
        login: Login,
        /// The device the relay authenticated (the phone's attestation must name it).
        device_id: DeviceId,
    },
    /// To the phone: joined; ciphertext follows.
    Joined {
        /// A fresh attestation for this device, valid for minutes: the phone sends it in its hello.
        attestation: SignedAttestation,
        /// The network address the computer's side came from, as the relay saw it.
        computer_address: String,
        /// Whether it is the phone's own address (IPv6: the same /64), i.e. probably the same network.
        same_network: bool,
        /// When the computer's side is a browser page (it sent an `Origin` header): the relay's signed
        /// statement of that origin for this tunnel. The phone refuses a session whose QR names another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Box<SignedOriginAttestation>>,
    },
    /// To a web page that came back (direct mode, `GET /v1/tunnel/{id}/resume`): the tunnel is its again;
    /// what the phone sent meanwhile follows.
    Resumed,
    /// Either side: the tunnel ends.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
}

/// Output format of a document signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocFormat {
    /// The bare signature over the document.
    #[default]
    Raw,
    /// DER detached CMS SignedData.
    Cms,
    /// A PDF signature (PAdES): the document is a PDF the agent prepared (a signature field and the
    /// hole for the signature), the answer a DER CMS (PAdES profile) over its byte ranges. Sent only to a
    /// phone whose hello lists it in `formats`.
    Pades,
}

impl DocFormat {
    /// `raw` or `cms`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocFormat::Raw => "raw",
            DocFormat::Cms => "cms",
            DocFormat::Pades => "pades",
        }
    }
}

/// The formats a phone of session version 2 signs when its hello lists none (the first phones).
pub const FORMATS_BEFORE_LISTING: [DocFormat; 2] = [DocFormat::Raw, DocFormat::Cms];

/// The formats a phone signs, from its hello's list: the list, or [`FORMATS_BEFORE_LISTING`] when empty.
pub fn formats_signed(listed: &[DocFormat]) -> &[DocFormat] {
    if listed.is_empty() { &FORMATS_BEFORE_LISTING } else { listed }
}

/// Reads a hello's `formats`, skipping names this version does not know (a newer phone's), so a list
/// can grow without a version bump.
fn known_formats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<DocFormat>, D::Error> {
    let names: Vec<String> = Vec::deserialize(d)?;
    Ok(names
        .iter()
        .filter_map(|n| match n.as_str() {
            "raw" => Some(DocFormat::Raw),
            "cms" => Some(DocFormat::Cms),
            "pades" => Some(DocFormat::Pades),
            _ => None,
        })
        .collect())
}

/// The language of a visible PDF signature's words ("Digitally signed by", "Date", "Reason"): the
/// document's, which the portal knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum BoxLanguage {
    /// English.
    #[default]
    En,
    /// Uzbek, Latin script.
    Uz,
    /// Russian.
    Ru,
}

/// How complete a PDF signature is (ETSI EN 319 142-1 baseline levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PadesLevel {
    /// The signature alone.
    #[default]
    #[serde(rename = "b-b")]
    BB,
    /// With a trusted timestamp over the signature.
    #[serde(rename = "b-t")]
    BT,
    /// B-T, and the certificates and CRLs needed to check it later, in the PDF.
    #[serde(rename = "b-lt")]
    BLt,
    /// B-LT, and a document timestamp over everything.
    #[serde(rename = "b-lta")]
    BLta,
}

impl PadesLevel {
    /// `b-b`, `b-t`, `b-lt` or `b-lta`.
    pub fn as_str(self) -> &'static str {
        match self {
            PadesLevel::BB => "b-b",
            PadesLevel::BT => "b-t",
            PadesLevel::BLt => "b-lt",
            PadesLevel::BLta => "b-lta",
        }
    }

    /// Whether the level needs a time-stamping authority.
    pub fn needs_timestamp(self) -> bool {
        self != PadesLevel::BB
    }
}

/// How the agent makes a PDF signature (`format: "pades"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PadesOptions {
    /// The level (default `b-b`); `b-t` and above need the agent to be configured with a time-stamping
    /// authority (`kalit agent --tsa URL`): a page never names the URLs the agent fetches.
    #[serde(default)]
    pub level: PadesLevel,
    /// `/Reason`, shown by PDF readers (at most 200 characters).
    #[serde(default)]
    pub reason: Option<String>,
    /// A visible signature box, `PAGE,X,Y,WIDTH,HEIGHT` in points from the lower-left corner of the page
    /// as it is shown (e.g. `1,72,72,220,60`); a box that does not fit on the page is refused; absent:
    /// invisible.
    #[serde(default)]
    pub visible: Option<String>,
    /// The name of an empty signature field the PDF already has (a form's "sign here"): the signature
    /// goes into it, in the box its author drew (then give no `visible` box). A name the PDF does not
    /// have makes a new field of that name (1 to 100 characters, no dot; the name of a field of another
    /// kind, such as a text box, is refused); absent: `KalitSignatureN`.
    #[serde(default)]
    pub field: Option<String>,
    /// The language of the visible box's words (default `en`).
    #[serde(default)]
    pub lang: BoxLanguage,
}

/// A message inside the encrypted channel (JSON, split into Noise messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelMessage {
    /// Phone -> agent, first: who is signing.
    Hello {
        /// The login.
        login: Login,
        /// The phone's name at the relay.
        device_name: String,
        /// Certificate chain, leaf first, base64 DER.
        chain: Vec<Base64>,
        /// The relay's attestation binding the leaf certificate to the login.
        attestation: SignedAttestation,
        /// The formats this phone signs; empty (absent): [`FORMATS_BEFORE_LISTING`]. Names this version
        /// does not know are skipped when read.
        #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "known_formats")]
        #[cfg_attr(feature = "schema", schemars(with = "Vec<DocFormat>"))]
        formats: Vec<DocFormat>,
        /// Documents larger than [`MAX_DOCUMENT`] this phone takes (absent: none, as the first phones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        documents: Option<DocumentSupport>,
    },
    /// Agent -> phone: please sign this document.
    SignRequest {
        /// Request number in this session.
        id: u32,
        /// The requesting web origin.
        origin: String,
        /// Document name.
        name: String,
        /// Media type, e.g. `application/pdf`.
        media_type: String,
        /// The document, base64.
        data: Base64,
        /// Raw signature, CMS, or a PDF signature over the prepared PDF in `data`.
        format: DocFormat,
        /// RSA-PSS instead of PKCS#1 v1.5 (RSA keys only).
        pss: bool,
    },
    /// Agent -> phone: please sign a document larger than [`MAX_DOCUMENT`] (only to a phone whose hello
    /// offers it, up to [`DocumentSupport::whole`]). Its `size` bytes follow in
    /// [`ChannelMessage::DocumentPart`]s; the phone hashes them as they arrive and asks once all came.
    SignStart {
        /// Request number in this session.
        id: u32,
        /// The requesting web origin.
        origin: String,
        /// Document name.
        name: String,
        /// Media type.
        media_type: String,
        /// Raw, CMS or PAdES.
        format: DocFormat,
        /// RSA-PSS instead of PKCS#1 v1.5.
        pss: bool,
        /// The document's length in bytes.
        size: u64,
    },
    /// Agent -> phone: the next bytes of the document of [`ChannelMessage::SignStart`] `id`, in order.
    DocumentPart {
        /// The request.
        id: u32,
        /// At most [`DOCUMENT_PART`] bytes, base64.
        data: Base64,
    },
    /// Agent -> phone: please sign a document too large to travel (only to a phone whose hello sets
    /// [`DocumentSupport::digest`]; CMS and PAdES only, never raw). The phone receives the computer's digests
    /// and the first bytes, says plainly that it cannot check the rest, and asks a separate confirmation.
    SignDigest {
        /// Request number in this session.
        id: u32,
        /// The requesting web origin.
        origin: String,
        /// Document name.
        name: String,
        /// Media type.
        media_type: String,
        /// CMS or PAdES (the digests are then over the prepared PDF's byte ranges).
        format: DocFormat,
        /// RSA-PSS instead of PKCS#1 v1.5.
        pss: bool,
        /// The document's length in bytes, as the computer says.
        size: u64,
        /// SHA-256 of what is signed, as the computer computed it (32 bytes, base64).
        sha256: Base64,
        /// SHA-512 of the same (64 bytes, base64): the digest an Ed25519 key's CMS carries.
        sha512: Base64,
        /// The first bytes of the document, at most [`PREVIEW_LEN`], for the screen.
        preview: Base64,
    },
    /// Phone -> agent: the answer to a [`ChannelMessage::SignRequest`].
    SignResponse {
        /// The request's id.
        id: u32,
        /// Approved with the signature, declined, or failed with its code.
        #[serde(flatten)]
        answer: SignAnswer,
    },
    /// Agent -> phone: the page withdrew request `id` (it ended the session or gave up waiting). The phone
    /// dismisses the prompt and signs nothing for it; an answer the phone sends anyway is refused by the
    /// agent and never reaches the page.
    Cancel {
        /// The withdrawn request's id.
        id: u32,
        /// Why, for the screen.
        reason: String,
    },
    /// Either side: the session ends.
    Bye {
        /// Why.
        reason: String,
        /// Set when the session ends on an error (for example the agent refused the phone's certificate).
        #[serde(default)]
        code: Option<ErrorCode>,
    },
}

/// What a phone's hello offers beyond [`MAX_DOCUMENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DocumentSupport {
    /// The largest document it takes whole, in parts, bytes (it hashes as they arrive).
    pub whole: u64,
    /// Whether it signs a larger document by the computer's digest ([`ChannelMessage::SignDigest`]),
    /// after telling the person it cannot check it.
    pub digest: bool,
}

impl DocumentSupport {
    /// What a hello's offer (or its absence: the first phones) means: the largest document the phone
    /// takes whole, never less than [`MAX_DOCUMENT`] (which every phone takes in one message), and whether
    /// it signs a larger one by digest.
    pub fn effective(offer: Option<DocumentSupport>) -> DocumentSupport {
        let o = offer.unwrap_or(DocumentSupport { whole: 0, digest: false });
        DocumentSupport { whole: o.whole.max(MAX_DOCUMENT as u64), digest: o.digest }
    }
}

/// The phone's answer to one sign request, on the wire as `status` with its fields beside it:
/// `{"status": "approved", "signature": ...}`, `{"status": "declined"}`,
/// `{"status": "failed", "code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignAnswer {
    /// Approved and signed.
    Approved {
        /// Signature (raw) or DER CMS, base64.
        signature: Base64,
    },
    /// The person declined.
    Declined,
    /// Approved, but signing failed (a wrong PIN, a locked vault, a document the vault refuses...).
    Failed {
        /// The stable code, which reaches the page as itself. Absent from the first phones of session
        /// version 2, whose `message` starts `code: `.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
        /// Why, for people (`code: message`, which older agents read).
        #[serde(default)]
        message: String,
    },
}

// ---- The agent's JSON API for web pages (see crates/kalit-agent/openapi.json). ----

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentStatus {
    /// `kalit-agent`.
    pub service: String,
    /// Version of Kalit.
    pub version: String,
    /// API version, [`SESSION_VERSION`].
    pub api: u32,
    /// The relay's base URL.
    pub relay: String,
    /// The relay's id.
    pub relay_id: RelayId,
    /// Whether the calling origin is on the allow-list.
    pub origin_allowed: bool,
}

/// `POST /v1/hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HashRequest {
    /// The data, base64.
    pub data: Base64,
    /// `sha256` (default), `sha384` or `sha512`.
    #[serde(default)]
    pub alg: Option<String>,
}

/// Answer to [`HashRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HashResponse {
    /// The algorithm.
    pub alg: String,
    /// Hex digest.
    pub digest: String,
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// QR lifetime in seconds (default [`QR_TTL_SECS`], at most [`QR_TTL_MAX_SECS`]).
    #[serde(default)]
    pub ttl: Option<u32>,
}

/// A new session: show `qr_svg` (or `qr`) to the person, then poll its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionCreated {
    /// Session id.
    pub session: String,
    /// Capability token: `Authorization: Bearer TOKEN` on every later call for this session.
    pub token: String,
    /// The QR text (`kalit:...`).
    pub qr: String,
    /// The QR as an SVG image.
    pub qr_svg: String,
    /// When the QR expires, Unix milliseconds.
    pub expires_at: u64,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionPhase {
    /// The QR is waiting for a phone.
    Waiting,
    /// A phone joined; the handshake and its hello are under way.
    Pairing,
    /// Paired: compare the SAS; documents may be signed.
    Connected,
    /// Ended (by the page, the phone, a timeout or an error).
    Closed,
}

/// `GET /v1/sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionState {
    /// Session id.
    pub session: String,
    /// Phase.
    pub phase: SessionPhase,
    /// Six-digit short authentication string, once paired: the phone shows the same.
    pub sas: Option<String>,
    /// The phone's login, once paired.
    pub login: Option<Login>,
    /// The phone's signing certificate, once paired.
    pub certificate: Option<CertInfo>,
    /// Why the session closed, when it closed on an error.
    pub error: Option<ErrorBody>,
    /// Once paired: the largest document the phone takes whole, and whether it signs larger ones by digest
    /// (CMS and PAdES; a raw signature needs the whole document on the phone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<DocumentSupport>,
    /// While a large document travels to the phone: how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

/// How much of a document has gone to the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Transfer {
    /// Bytes sent.
    pub sent: u64,
    /// Bytes in all.
    pub total: u64,
}

/// `POST /v1/sessions/{id}/sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignDocRequest {
    /// The document, base64.
    pub data: Base64,
    /// Name shown on the phone.
    pub name: String,
    /// Media type (default `application/octet-stream`).
    #[serde(default)]
    pub media_type: Option<String>,
    /// `raw` (default), `cms`, or `pades` (`data` is a PDF; the answer carries the signed PDF).
    #[serde(default)]
    pub format: DocFormat,
    /// RSA-PSS instead of PKCS#1 v1.5.
    #[serde(default)]
    pub pss: bool,
    /// For `pades`: level, reason and visible box.
    #[serde(default)]
    pub pades: Option<PadesOptions>,
}

/// Answer to [`SignDocRequest`]: checked by the agent before it is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SignDocResponse {
    /// `raw`, `cms` or `pades`.
    pub format: DocFormat,
    /// Signature or DER CMS (for `pades`, the CMS inside the signed PDF), base64.
    pub signature: Base64,
    /// For `pades`: the signed PDF (the page's PDF with the signature appended as an incremental
    /// update), checked by the agent before it is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Base64>,
    /// For `pades`: the level reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PadesLevel>,
    /// The scheme, e.g. `ecdsa-p256-sha256`.
    pub scheme: String,
    /// SHA-256 of the document as the agent computed it, hex.
    pub sha256: String,
    /// The signer's certificate chain, PEM, leaf first.
    pub certificate_pem: String,
    /// The signer's certificate.
    pub signer: CertInfo,
    /// The signer's login at the relay.
    pub login: Login,
}

/// `POST /v1/verify/pdf`: every signature and document timestamp in a PDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyPdfRequest {
    /// The PDF, base64.
    pub data: Base64,
}

/// `POST /v1/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The document, base64.
    pub data: Base64,
    /// Signature or DER CMS, base64.
    pub signature: Base64,
    /// `raw` (default) or `cms` (a PDF goes to `/v1/verify/pdf`).
    #[serde(default)]
    pub format: DocFormat,
    /// Signer certificate (PEM; required for `raw`, optional for `cms`).
    #[serde(default)]
    pub certificate: Option<String>,
}
