//! The phone's half of a signing session (paper steps 18-28): a tokio driver of
//! `kalit_core::flow::PhoneSession` over the relay's tunnel, with the person behind [`PhoneUi`].
//!
//! The phone checks the QR (version, expiry, origin syntax, a relay it is registered with), shows which
//! computer asks (by the name the person gave its key, or the full warning for a computer never seen,
//! which must be named first), only then asks the PIN and joins the relay's tunnel with a device-signed
//! request, shows the network the computer came from, runs the Noise handshake (which proves the computer
//! holds the key), shows the SAS, sends its hello (certificate chain and the relay's fresh attestation),
//! then for each sign request shows what is signed by the display rules of `kalit_core::display`, asks
//! approval (and a separate confirmation for raw bytes it cannot show), then the PIN, signs and answers,
//! or declines. History records the origin.

use std::collections::VecDeque;

use kalit_core::flow::{Failure, PhoneAction, PhoneAnswer, PhoneConfig, PhoneSession, Prompt};
use kalit_core::session::Qr;
use kalit_core::statement::Statement;
use kalit_core::x509;
use kalit_core::{SecretString, ceremony, display, purpose};
use kalit_proto::relay::DeviceRequest;
use kalit_proto::session::{DocFormat, DocumentSupport, MAX_WHOLE_DOCUMENT, TunnelEvent};
use kalit_proto::{Base64, ErrorCode};
use kalit_service::ServiceError;
use kalit_transport::{Incoming, Ws, connect, next_incoming, send, ws_url};
use kalit_vault::{DeviceRecord, Digested, DocumentToSign, SignFormat, SignOutcome, Vault};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Client;
use crate::{PhoneError, PhoneResult};

/// Who is asking: the computer (by the key the handshake authenticates) and where it connects from.
#[derive(Debug, Clone)]
pub struct Computer {
    /// Its id (`kalit_core::session::computer_id`).
    pub id: String,
    /// The name the person gave it.
    pub name: String,
    /// Sessions before this one (0: the first time).
    pub uses_before: u64,
    /// What the relay said of its network, once joined.
    pub network: Option<String>,
    /// A web page with no agent (direct mode): its key lives for this session only, so it is neither
    /// named nor remembered.
    pub page: bool,
    /// The relay that vouched (with its signature) for the page's origin, once joined.
    pub origin_vouched_by: Option<String>,
}

impl Computer {
    /// A computer this phone knows, or one the person just named.
    pub fn known(id: String, name: String, uses_before: u64) -> Computer {
        Computer { id, name, uses_before, network: None, page: false, origin_vouched_by: None }
    }

    /// A web page that made its QR itself (direct mode).
    pub fn page(id: String) -> Computer {
        let name = "a browser with no Kalit agent (direct mode)".to_string();
        Computer { id, name, uses_before: 0, network: None, page: true, origin_vouched_by: None }
    }

    /// Who vouches for the origin, after it on every screen.
    pub fn origin_source(&self) -> String {
        match &self.origin_vouched_by {
            Some(relay) => format!("the relay {} vouches for this origin", display::field(relay, 80)),
            None if self.page => "not yet vouched for by the relay".to_string(),
            None => "as this computer says; only as true as the computer".to_string(),
        }
    }

    /// The line every screen shows.
    pub fn line(&self) -> String {
        let seen = match self.uses_before {
            _ if self.page => "its key is new for this session".to_string(),
            0 => "first time".to_string(),
            1 => "used once before".to_string(),
            n => format!("used {n} times before"),
        };
        let mut s = format!("Computer:   {} ({seen})", display::field(&self.name, 60));
        if let Some(n) = &self.network {
            s.push_str(&format!("\n  Network:    {n}"));
        }
        s
    }
}

/// A size as people read it, as the phone app shows it: bytes below 1 KB, then KB or MB (of 1,024) with
/// one decimal below 10, rounded down so that it is never shown larger than it is, and the exact count.
fn size_text(n: u64) -> String {
    fn grouped(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
    let exact = if n == 1 { "1 byte".to_string() } else { format!("{} bytes", grouped(n)) };
    if n < 1024 {
        return exact;
    }
    let (unit, per) = if n < 1 << 20 { ("KB", 1u64 << 10) } else { ("MB", 1u64 << 20) };
    let tenths = u128::from(n) * 10 / u128::from(per);
    let value = if tenths < 100 { format!("{}.{}", tenths / 10, tenths % 10) } else { grouped(n / per) };
    format!("{value} {unit} ({exact})")
}

/// A sign request as the person sees it. Every string in it comes from the computer and is shown by the
/// display rules of `kalit_core::display`.
#[derive(Debug)]
pub struct SignPrompt<'a> {
    /// The computer.
    pub computer: &'a Computer,
    /// The requesting origin (checked to be an origin).
    pub origin: &'a str,
    /// Document name.
    pub name: &'a str,
    /// Media type (checked to be a type/subtype token).
    pub media_type: &'a str,
    /// The document, or (when it is larger than the phone holds) its first bytes.
    pub data: &'a [u8],
    /// The document's length in bytes.
    pub size: u64,
    /// The phone received only the computer's digest and the first bytes: it could not check the rest.
    pub unchecked: bool,
    /// Raw, CMS or PAdES.
    pub format: DocFormat,
    /// SHA-256 of the document, hex.
    pub sha256: String,
    /// For PAdES: what the phone's own check of the prepared PDF found (pages, title, first page).
    pub pdf: Option<&'a kalit_core::pdf::Inspection>,
}

/// The lines that show a prepared PDF: pages, title, earlier signatures, the first page's text and the
/// field, each label padded to `width`. Every string came from the PDF: escaped by the display rules.
pub fn describe_pdf(seen: &kalit_core::pdf::Inspection, width: usize) -> String {
    let mut s = String::new();
    let mut line = |label: &str, value: &str| s.push_str(&format!("  {:<width$}{value}\n", format!("{label}:")));
    line("Pages", &seen.pages.to_string());
    if let Some(t) = &seen.title {
        line("Title", &display::field(t, 120));
    }
    if seen.earlier_signatures > 0 {
        line("Signed before", &format!("{} earlier signature(s) stay as they are", seen.earlier_signatures));
    }
    let words: Vec<&str> = seen.first_page_text.split_whitespace().collect();
    let text = display::field(&words.join(" "), 300);
    if !text.is_empty() {
        line("Page 1 text", &text);
    }
    let field = display::field(&seen.field, 60);
    match seen.field_page {
        Some(n) => line("Field", &format!("{field} (page {n})")),
        None => line("Field", &format!("{field} (on no page)")),
    }
    s
}

/// A signature format as the screen says it: the wire's name, then what it is in words.
fn format_text(f: DocFormat) -> String {
    let what = match f {
        DocFormat::Raw => "a plain signature of the bytes",
        DocFormat::Cms => "a CMS signature, .p7s",
        DocFormat::Pades => "a signature inside the PDF",
    };
    format!("{} ({what})", f.as_str())
}

impl SignPrompt<'_> {
    /// What the phone screen shows.
    pub fn describe(&self) -> String {
        let fp: Vec<String> =
            self.sha256.as_bytes().chunks(8).take(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let mut s = format!(
            "\nSign request from {origin} ({source})\n  {computer}\n  Document:   {name}\n  Size:       {size}\n  Type:       {ty}\n  Format:     {format}\n  SHA-256:    {fp} ...\n",
            origin = display::escape(self.origin),
            source = self.computer.origin_source(),
            computer = self.computer.line(),
            name = display::field(self.name, 120),
            size = size_text(self.size),
            ty = display::escape(self.media_type),
            format = format_text(self.format),
            fp = fp.join(" ")
        );
        if let Some(seen) = self.pdf {
            s.push_str(&describe_pdf(seen, 12));
        } else if let Some(w) = display::type_mismatch(self.media_type, self.data) {
            s.push_str(&format!("  WARNING:    {w}\n"));
        }
        if self.unchecked {
            s.push_str(&format!(
                "  WARNING:    this document is too large to send to the phone: the phone received only the computer's\n              SHA-256 and the first {} bytes, and CANNOT CHECK THE REST. Sign only if you trust this computer.\n",
                self.data.len()
            ));
        } else if self.size > kalit_proto::session::MAX_DOCUMENT as u64 {
            s.push_str(&format!(
                "  Checked:    the phone received all {} bytes and computed the SHA-256 itself\n",
                self.size
            ));
        }
        if self.format == DocFormat::Raw && purpose::needs_blind_confirmation(self.data) {
            s.push_str(
                "  WARNING:    this is not text the phone can show you; a raw signature over it can mean anything\n",
            );
        }
        if self.pdf.is_none()
            && (display::is_text_type(self.media_type) || display::sniff(self.data) == display::Sniffed::Text)
            && let Some(lines) = display::preview(self.data, 100, 24)
        {
            s.push_str("  Preview:\n");
            for line in lines {
                s.push_str(&format!("    | {line}\n"));
            }
        }
        s
    }
}

/// What the phone does at each point that needs the person; the terminal asks, the demo and the benchmark
/// answer by themselves.
pub trait PhoneUi {
    /// What this phone offers beyond 8 MiB: the largest document it takes whole, and whether it signs a
    /// larger one by the computer's digest (only a UI that asks [`PhoneUi::confirm_unchecked`] for real
    /// should). Default: 64 MiB, and by digest.
    fn documents(&self) -> DocumentSupport {
        DocumentSupport { whole: MAX_WHOLE_DOCUMENT, digest: true }
    }
    /// Shows a line of information.
    fn show(&mut self, text: &str);
    /// A computer this phone has never seen asks: warn, and ask the person to name it (`None`: stop).
    fn name_new_computer(&mut self, computer_id: &str, origin: &str) -> PhoneResult<Option<String>>;
    /// A raw signature over bytes that cannot be shown: the separate confirmation.
    fn confirm_blind(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool>;
    /// A document the phone received only as the computer's digest (too large to travel): the separate
    /// confirmation that the person signs what the phone could not check.
    fn confirm_unchecked(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool>;
    /// What signs the join request with the device key `device_id` (the terminal asks the PIN to unlock
    /// first). Called before the join socket opens; used once, when the relay's challenge arrives.
    fn join_signer<'s>(&'s mut self, vault: &'s Vault, device_id: &'s str) -> PhoneResult<JoinSigner<'s>>;
    /// Asks whether to sign.
    fn approve(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool>;
    /// Asks the PIN for an approved request (`None`: the vault is open already, as in the demo). The driver
    /// looks for a withdrawal after the person has typed it and before anything is signed.
    fn pin(&mut self, vault: &Vault) -> PhoneResult<Option<SecretString>>;
    /// Signs an approved document with the PIN `pin` gave.
    fn sign(
        &mut self,
        vault: &Vault,
        pin: Option<&SecretString>,
        label: &str,
        doc: &DocumentToSign<'_>,
    ) -> PhoneResult<SignOutcome>;
}

/// The full-screen warning for a computer the phone has never seen.
pub fn new_computer_warning(computer_id: &str, origin: &str) -> String {
    let bar = "=".repeat(72);
    format!(
        "{bar}\n  A COMPUTER THIS PHONE HAS NEVER SEEN\n\n  Is this the computer in front of you? Only continue if you started this on it yourself.\n  Someone else's computer can show you a QR code and claim to be any web site.\n\n  It says it asks for: {origin}\n  Computer id:          {computer_id}\n{bar}",
        origin = display::escape(origin),
    )
}

/// What a pairing did.
#[derive(Debug, Default)]
pub struct PairSummary {
    /// Signatures made.
    pub signed: usize,
    /// Requests declined.
    pub declined: usize,
    /// Requests the computer withdrew before the person answered.
    pub withdrawn: usize,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Runs one pairing from QR text to the end of the session.
pub fn pair(vault: &Vault, qr_text: &str, login: Option<&str>, ui: &mut dyn PhoneUi) -> PhoneResult<PairSummary> {
    // The QR's own checks come first (version, expiry, origin), before any registration is looked up.
    let qr = Qr::parse(qr_text)?;
    qr.check_fresh(now_secs())?;
    display::origin(&qr.payload.origin)?;
    let me = crate::net::find_registration(vault, &qr.payload.relay_id, login, || {
        format!(
            "this phone is not registered with the relay in the QR ({}, id {}): register first (kalit vault register)",
            qr.payload.relay, qr.payload.relay_id
        )
    })?;
    let chain = vault.certificate_chain(&me.key_label)?;
    if chain.is_empty() {
        return Err(PhoneError::new(ErrorCode::NotFound, format!("key {:?} has no certificate", me.key_label)));
    }
    let signer_subject = x509::cert_info(&chain[0])?.subject;
    let config = PhoneConfig {
        relay_id: me.relay_id.clone().into(),
        relay_public_key: Base64::decode(&me.relay_public_key)
            .map_err(|_| PhoneError::new(ErrorCode::InvalidInput, "the device record's relay key is not base64"))?
            .into_vec(),
        login: me.login.clone().into(),
        device_id: me.device_id.clone().into(),
        chain,
        // The vault checks a prepared PDF itself (`kalit_core::pdf::inspect_prepared`) before it signs.
        formats: vec![DocFormat::Raw, DocFormat::Cms, DocFormat::Pades],
        // Up to 64 MiB whole (or what the person set), hashed as it streams in; larger ones by the
        // computer's digest, with a separate confirmation.
        documents: Some(ui.documents()),
    };
    let mut session = PhoneSession::new(qr_text, now_secs(), config)?;
    // The registered URL, not the QR's: the QR only names which relay (by id).
    if qr.payload.relay != me.relay_url.trim_end_matches('/') {
        ui.show(&format!(
            "Note: the QR names {} for this relay; using the registered address {}.",
            display::field(&qr.payload.relay, 100),
            me.relay_url
        ));
    }
    let tunnel = session.tunnel_id()?;
    // The relay sends the nonce the join request signs over on the join socket itself (`challenge=1`): no
    // request of its own, so one connection (and over TLS one handshake) less per signature.
    let url = ws_url(&me.relay_url, &format!("/v1/tunnel/{tunnel}/join?challenge=1"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PhoneError::new(ErrorCode::Internal, format!("async runtime: {e}")))?;
    // The join socket opens before the person is asked anything: a relay that cannot be reached is known
    // before they name the computer or type the PIN, not after.
    let opened = std::time::Instant::now();
    let slow = || ui.show(&format!("Connecting to the relay at {} ...", me.relay_url));
    let first = rt.block_on(connect_saying_when_slow(&url, SLOW_CONNECT, slow))?;
    // Who is asking, before the PIN: a known computer by its name, a new one with the full warning and a
    // name the person gives it (nothing else happens until then).
    // A page in direct mode has a key for this session only: the relay's statement of its origin is what
    // the phone goes by (the session requires it), not a name.
    let computer_id = qr.computer_id();
    let page = qr.payload.mode == Some(kalit_proto::session::QrMode::Direct);
    let (mut computer, new_name) = match vault.computer(&computer_id)? {
        _ if page => (Computer::page(computer_id.clone()), None),
        Some(k) => (Computer::known(computer_id.clone(), k.name, k.uses), None),
        None => {
            let Some(name) = ui.name_new_computer(&computer_id, &qr.payload.origin)? else {
                return Err(PhoneError::new(ErrorCode::Declined, "you did not name the computer; nothing was signed"));
            };
            let name = kalit_vault::check_computer_name(&name)?;
            (Computer::known(computer_id.clone(), name.clone(), 0), Some(name))
        }
    };
    ui.show(&format!(
        "  {}\n  Asks for:   {} ({})",
        computer.line(),
        display::escape(&qr.payload.origin),
        if page { "the relay must vouch for it" } else { "as the computer says" }
    ));
    let mut driver = Driver {
        vault,
        me: &me,
        signer_subject: &signer_subject,
        computer: &mut computer,
        new_name: new_name.as_deref(),
        ui,
    };
    rt.block_on(driver.run(&mut session, (first, opened), &url, &tunnel))
}

/// The first frame on a tunnel's join socket: this registration's device asks to join `tunnel`, over the
/// relay's `nonce`, with `signature` (its device key over `Statement::device_request(.., TUNNEL_JOIN,
/// tunnel)`).
pub fn join_request(me: &DeviceRecord, tunnel: &str, nonce: &[u8], signature: &[u8]) -> DeviceRequest {
    DeviceRequest {
        login: me.login.clone().into(),
        device_id: me.device_id.clone().into(),
        nonce: Base64::of(nonce),
        relay_id: me.relay_id.clone().into(),
        target: tunnel.to_string(),
        signature: Base64::of(signature),
        proof: None,
    }
}

/// How long the phone waits for the join socket's challenge before it asks `POST /v1/nonce` (a relay older
/// than the challenge sends nothing and waits 10 s for the join request).
const CHALLENGE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The nonce the join request signs over: the relay's challenge, the socket's first event; or, when none
/// came within `wait`, one from `fallback` (then `true`: a challenge may still arrive, late, and is passed
/// over). Any other first event ends the session.
async fn join_nonce<F, Fut>(ws: &mut Ws, wait: std::time::Duration, fallback: F) -> PhoneResult<(Vec<u8>, bool)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = PhoneResult<Vec<u8>>>,
{
    match tokio::time::timeout(wait, next_incoming(ws)).await {
        Ok(Ok(Incoming::Event(TunnelEvent::Challenge { nonce, .. }))) => Ok((ceremony::check_nonce(&nonce)?, false)),
        Ok(Ok(_)) => Err(PhoneError::new(ErrorCode::Unavailable, "the relay did not send the join's challenge first")),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Ok((fallback().await?, true)),
    }
}

/// Whether the relay's event `ev` is passed over: the challenge of a relay that was only slow, after the
/// phone asked for its nonce the old way and sent its join request (`late`). Only the relay's first event
/// after that may be it; any later challenge goes to the session, which ends on it.
fn passes_over(late: &mut bool, ev: &TunnelEvent) -> bool {
    let pass = *late && matches!(ev, TunnelEvent::Challenge { .. });
    *late = false;
    pass
}

/// How long a connection to the relay may take before the person is told the phone is still connecting.
const SLOW_CONNECT: std::time::Duration = std::time::Duration::from_secs(1);

/// [`connect`] to `url`, calling `slow` once if it takes longer than `after` (a relay that answers slowly
/// is then not mistaken for a phone that hangs; the connection itself gives up after 15 s).
async fn connect_saying_when_slow(url: &str, after: std::time::Duration, slow: impl FnOnce()) -> PhoneResult<Ws> {
    let connecting = connect(url);
    tokio::pin!(connecting);
    if let Ok(r) = tokio::time::timeout(after, &mut connecting).await {
        return Ok(r?);
    }
    slow();
    Ok(connecting.await?)
}

/// How long after it opened a join socket still takes the join request. The relay waits
/// `JOIN_REQUEST_SECS` (10 s) for it; a person who took longer to name the computer or to type the PIN gets
/// a fresh socket, with a challenge of its own.
const JOIN_SOCKET_FRESH: std::time::Duration = std::time::Duration::from_secs(7);

/// The socket to send the join request on: `first`, opened at `opened` before the person was asked
/// anything, while it is younger than `fresh`; otherwise a new one to `url` (the old one is dropped).
async fn join_socket(first: Ws, opened: std::time::Instant, fresh: std::time::Duration, url: &str) -> PhoneResult<Ws> {
    if opened.elapsed() < fresh {
        return Ok(first);
    }
    drop(first);
    Ok(connect(url).await?)
}

/// Signs one statement with a device key: the join request's, once.
pub type JoinSigner<'s> = Box<dyn FnOnce(&Statement) -> PhoneResult<Vec<u8>> + 's>;

/// Drives a [`PhoneSession`] over the relay's tunnel: moves frames, keeps timers, asks the person.
struct Driver<'a> {
    vault: &'a Vault,
    me: &'a DeviceRecord,
    signer_subject: &'a str,
    computer: &'a mut Computer,
    new_name: Option<&'a str>,
    ui: &'a mut dyn PhoneUi,
}

/// Seconds to wait for the relay's answer to the join, and for the computer's handshake.
const JOIN_SECS: u64 = 15;

impl Driver<'_> {
    async fn run(
        &mut self,
        s: &mut PhoneSession,
        (first, opened): (Ws, std::time::Instant),
        url: &str,
        tunnel: &str,
    ) -> PhoneResult<PairSummary> {
        // The device key is unlocked (the terminal asks the PIN) before the join request is made. The
        // relay waits only a short while for it: a socket that waited longer than that is replaced.
        let sign = self.ui.join_signer(self.vault, &self.me.device_id)?;
        let mut ws = join_socket(first, opened, JOIN_SOCKET_FRESH, url).await?;
        let relay_url = self.me.relay_url.clone();
        let (nonce, mut late_challenge) = join_nonce(&mut ws, CHALLENGE_WAIT, move || async move {
            // The phone's HTTP client blocks: off the runtime's thread.
            tokio::task::spawn_blocking(move || crate::net::nonce(&Client::new(&relay_url, "relay")?))
                .await
                .map_err(|e| PhoneError::new(ErrorCode::Internal, format!("nonce request: {e}")))?
        })
        .await?;
        let st = s.join_statement(&nonce)?;
        let join = join_request(self.me, tunnel, &nonce, &sign(&st)?);
        let join_json =
            serde_json::to_string(&join).map_err(|e| PhoneError::new(ErrorCode::Internal, e.to_string()))?;
        send(&mut ws, Message::Text(join_json.into())).await?;
        let mut summary = PairSummary::default();
        let mut queue: VecDeque<PhoneAction> = VecDeque::new();
        let mut connected = false;
        loop {
            let Some(action) = queue.pop_front() else {
                // Nothing left to do: wait for the relay or the computer.
                let wait = if connected { None } else { Some(std::time::Duration::from_secs(JOIN_SECS)) };
                let next = match wait {
                    Some(w) => tokio::time::timeout(w, next_incoming(&mut ws)).await.unwrap_or_else(|_| {
                        Err(ServiceError::new(
                            ErrorCode::Unavailable,
                            "the relay or the computer did not answer in time",
                        ))
                    }),
                    None => next_incoming(&mut ws).await,
                };
                match next {
                    Ok(Incoming::Event(ev)) if passes_over(&mut late_challenge, &ev) => {}
                    Ok(Incoming::Event(ev)) => queue.extend(s.on_event(ev)),
                    Ok(Incoming::Frame(f)) => queue.extend(s.on_frame(&f)),
                    // The link is gone after the person answered something: the session simply ended.
                    Err(e) if e.code == ErrorCode::Unavailable && summary.signed + summary.declined > 0 => {
                        self.ui.show("The session ended.");
                        return Ok(summary);
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            };
            match action {
                PhoneAction::Send(frame) => send(&mut ws, Message::Binary(frame.into())).await?,
                PhoneAction::OriginAttested { relay_id } => {
                    let relay = if relay_id == self.me.relay_id { self.me.relay_url.clone() } else { relay_id };
                    self.computer.origin_vouched_by = Some(relay);
                }
                PhoneAction::Network { computer_address, same_network } => {
                    self.computer.network = Some(if same_network {
                        "same network as this phone".to_string()
                    } else {
                        format!("another network: {computer_address}")
                    });
                }
                PhoneAction::Connected { sas } => {
                    connected = true;
                    // The handshake proved the computer holds the key this phone knows it by: remember it now
                    // (a page's key is for this session only).
                    if !self.computer.page {
                        self.vault.record_computer(&self.computer.id, self.new_name)?;
                    }
                    self.ui.show(&format!(
                        "Connected to the computer for {origin} ({source}).\n  {computer}\n  Code:       {sas}   (the computer must show the same code; if not, stop)\n  Signing as: {login} ({subject})",
                        origin = display::escape(&s.qr().payload.origin),
                        source = self.computer.origin_source(),
                        computer = self.computer.line(),
                        login = self.me.login,
                        subject = display::escape(self.signer_subject)
                    ));
                }
                PhoneAction::Prompt(p) => {
                    let answer = self.ask(s, &mut ws, &mut queue, &p, &mut summary).await?;
                    if let Some(answer) = answer {
                        match s.answer(p.id, answer) {
                            Ok(a) => {
                                // The answer goes before anything that arrived meanwhile is handled.
                                for f in a {
                                    queue.push_front(f);
                                }
                            }
                            Err(e) => self.ui.show(&format!("Not sent: {}", e.message)),
                        }
                    }
                }
                PhoneAction::Refused { origin, failure, .. } => {
                    self.ui.show(&format!(
                        "Refused a request from {}: {}",
                        display::escape(&origin),
                        display::terminal_text(&failure.message)
                    ));
                }
                PhoneAction::Withdrawn { id, reason, prompted } => {
                    if prompted {
                        summary.withdrawn += 1;
                    }
                    self.ui.show(&format!("The computer withdrew request {id}: {reason}"));
                }
                PhoneAction::Ended { reason } => self.ui.show(&format!("The computer ended the session: {reason}")),
                PhoneAction::Closed(failure) => {
                    for a in queue.drain(..) {
                        if let PhoneAction::Send(frame) = a {
                            let _ = send(&mut ws, Message::Binary(frame.into())).await;
                        }
                    }
                    let _ = ws.close(None).await;
                    return match failure {
                        // The link is gone after the person answered something: the session simply ended.
                        Some(f) if f.code == ErrorCode::Unavailable && summary.signed + summary.declined > 0 => {
                            self.ui.show("The session ended.");
                            Ok(summary)
                        }
                        Some(f) => Err(PhoneError::new(f.code, f.message)),
                        None => Ok(summary),
                    };
                }
            }
        }
    }

    /// Asks the person about one request; `None` when the computer withdrew it meanwhile (nothing is
    /// signed then).
    async fn ask(
        &mut self,
        s: &mut PhoneSession,
        ws: &mut kalit_transport::Ws,
        queue: &mut VecDeque<PhoneAction>,
        p: &Prompt,
        summary: &mut PairSummary,
    ) -> PhoneResult<Option<PhoneAnswer>> {
        // A PDF signature: the phone checks the computer's prepared PDF itself (one new unsigned field, a
        // byte range over everything but the hole, nothing else changed) and shows what it found. A PDF
        // that fails is refused before anything is asked.
        // A PDF too large to travel (the digest path) cannot be inspected: the warning says so instead.
        let pdf = match p.format {
            DocFormat::Pades if !p.unchecked => match kalit_core::pdf::inspect_prepared(&p.data) {
                Ok(seen) => Some(seen),
                Err(e) => {
                    let failure = Failure::new(
                        ErrorCode::InvalidInput,
                        format!("the computer's PDF failed the phone's check: {e}; nothing was signed"),
                    );
                    self.ui.show(&format!(
                        "Refused a request from {}: {}",
                        display::escape(&p.origin),
                        display::terminal_text(&failure.message)
                    ));
                    return Ok(Some(PhoneAnswer::Failed(failure)));
                }
            },
            _ => None,
        };
        let prompt = SignPrompt {
            computer: self.computer,
            origin: &p.origin,
            name: &p.name,
            media_type: &p.media_type,
            data: &p.data,
            size: p.size,
            unchecked: p.unchecked,
            format: p.format,
            sha256: p.sha256.clone(),
            pdf: pdf.as_ref(),
        };
        let approved = self.ui.approve(&prompt)?
            && (!p.blind || self.ui.confirm_blind(&prompt)?)
            && (!p.unchecked || self.ui.confirm_unchecked(&prompt)?);
        // The person may have answered after the computer withdrew the request: look before the PIN...
        if approved {
            read_arrived(s, ws, queue).await?;
        }
        if self.withdrawn(s, queue, p, summary) {
            return Ok(None);
        }
        if !approved {
            summary.declined += 1;
            self.ui.show(&format!("Declined \"{}\".", display::field(&p.name, 60)));
            return Ok(Some(PhoneAnswer::Declined));
        }
        // ... and again after the PIN, which the computer may have withdrawn the request during.
        let pin = match self.ui.pin(self.vault) {
            Ok(pin) => pin,
            Err(e) => return Ok(Some(self.failed(e))),
        };
        read_arrived(s, ws, queue).await?;
        if self.withdrawn(s, queue, p, summary) {
            return Ok(None);
        }
        let digests = p.digests.as_ref().map(|d| Digested {
            size: p.size,
            sha256: &d.sha256,
            sha512: &d.sha512,
            computed_here: d.computed_here,
        });
        let doc = DocumentToSign {
            name: &p.name,
            data: &p.data,
            digests,
            format: match p.format {
                DocFormat::Raw => SignFormat::Raw,
                DocFormat::Cms => SignFormat::Cms,
                DocFormat::Pades => SignFormat::Pades,
            },
            pss: p.pss,
            origin: Some(&p.origin),
            blind_confirmed: p.blind || p.unchecked,
        };
        Ok(Some(match self.ui.sign(self.vault, pin.as_ref(), &self.me.key_label, &doc) {
            Ok(out) => {
                summary.signed += 1;
                self.ui.show(&format!(
                    "Signed \"{}\" ({}); the answer is on its way.",
                    display::field(&p.name, 60),
                    out.record.format
                ));
                PhoneAnswer::Approved(out.bytes.to_vec())
            }
            Err(e) => self.failed(e),
        }))
    }

    /// Whether the computer withdrew the request (or the session ended); the withdrawal is shown once, here.
    fn withdrawn(
        &mut self,
        s: &PhoneSession,
        queue: &mut VecDeque<PhoneAction>,
        p: &Prompt,
        summary: &mut PairSummary,
    ) -> bool {
        if !(s.is_withdrawn(p.id) || s.closed()) {
            return false;
        }
        summary.withdrawn += 1;
        queue.retain(|a| !matches!(a, PhoneAction::Withdrawn { id, .. } if *id == p.id));
        self.ui.show(&format!(
            "The computer withdrew \"{}\" before you answered; nothing was signed.",
            display::field(&p.name, 60)
        ));
        true
    }

    /// A request the phone could not sign (wrong PIN, locked vault, refused): the page gets the reason.
    fn failed(&mut self, e: PhoneError) -> PhoneAnswer {
        self.ui.show(&format!("Not signed: {}", display::terminal_text(&e.message)));
        PhoneAnswer::Failed(Failure::new(e.code, e.message))
    }
}

/// Feeds the session what the computer already sent (a withdrawal made while the person was deciding is
/// waiting in the socket); the actions wait in `queue`.
async fn read_arrived(
    s: &mut PhoneSession,
    ws: &mut kalit_transport::Ws,
    queue: &mut VecDeque<PhoneAction>,
) -> PhoneResult<()> {
    // While the person decided, the runtime did not run (the prompt blocks it): a yielded task resumes
    // only after the runtime has polled its sockets, so what arrived meanwhile is then ready at once.
    // No fixed wait: a phone that answers in microseconds (the benchmark) pays nothing.
    tokio::task::yield_now().await;
    loop {
        match futures_util::FutureExt::now_or_never(next_incoming(ws)) {
            None => return Ok(()),
            Some(Ok(Incoming::Frame(f))) => queue.extend(s.on_frame(&f)),
            Some(Ok(Incoming::Event(ev))) => queue.extend(s.on_event(ev)),
            // The link is gone: the answer could not reach the page anyway.
            Some(Err(e)) if e.code == ErrorCode::Unavailable => {
                queue.extend(s.fail(Failure::new(e.code, e.message)));
                return Ok(());
            }
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// A phone that approves every request by itself with an already unlocked vault: the demo (which prints
/// each step) and the benchmark (quiet). Never used by `kalit vault pair`.
#[derive(Debug)]
pub struct AutoUi<'a, 'v> {
    /// The unlocked vault.
    pub unlocked: &'a kalit_vault::Unlocked<'v>,
    /// Print what a phone screen would show.
    pub verbose: bool,
}

impl PhoneUi for AutoUi<'_, '_> {
    fn show(&mut self, text: &str) {
        if self.verbose {
            for line in text.lines() {
                println!("  phone | {line}");
            }
        }
    }

    fn name_new_computer(&mut self, computer_id: &str, origin: &str) -> PhoneResult<Option<String>> {
        if self.verbose {
            self.show(&new_computer_warning(computer_id, origin));
            self.show("Named \"demo computer\" (automatically, in the demo).");
        }
        Ok(Some("demo computer".into()))
    }

    fn confirm_blind(&mut self, _prompt: &SignPrompt<'_>) -> PhoneResult<bool> {
        // The demo and the benchmark sign only what they made themselves.
        Ok(true)
    }

    fn confirm_unchecked(&mut self, _prompt: &SignPrompt<'_>) -> PhoneResult<bool> {
        Ok(true)
    }

    fn join_signer<'s>(&'s mut self, _vault: &'s Vault, device_id: &'s str) -> PhoneResult<JoinSigner<'s>> {
        let unlocked = self.unlocked;
        Ok(Box::new(move |st| Ok(unlocked.sign_as_device(device_id, st)?)))
    }

    fn approve(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool> {
        if self.verbose {
            self.show(&prompt.describe());
            self.show("Approved (automatically, in the demo).");
        }
        Ok(true)
    }

    fn pin(&mut self, _vault: &Vault) -> PhoneResult<Option<SecretString>> {
        Ok(None)
    }

    fn sign(
        &mut self,
        _vault: &Vault,
        _pin: Option<&SecretString>,
        label: &str,
        doc: &DocumentToSign<'_>,
    ) -> PhoneResult<SignOutcome> {
        Ok(self.unlocked.sign(label, doc)?)
    }
}

#[cfg(test)]
mod tests {
    use super::{DocFormat, connect_saying_when_slow, format_text, join_nonce, join_socket, passes_over, size_text};
    use futures_util::SinkExt;
    use kalit_proto::session::TunnelEvent;
    use kalit_proto::{Base64, ErrorCode};
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;

    /// A relay's join socket on loopback that sends `first` (if any) and then holds the socket a while.
    async fn relay_sending(first: Option<TunnelEvent>) -> kalit_transport::Ws {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            if let Some(e) = first {
                ws.send(Message::Text(serde_json::to_string(&e).unwrap().into())).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        kalit_transport::connect(&format!("ws://{addr}/v1/tunnel/x/join?challenge=1")).await.unwrap()
    }

    fn challenge(nonce: &[u8]) -> Option<TunnelEvent> {
        Some(TunnelEvent::Challenge { nonce: Base64::of(nonce), expires_at: 1 })
    }

    #[tokio::test]
    async fn the_join_nonce_is_the_challenge_or_one_asked_for_when_an_older_relay_sends_none() {
        let wait = Duration::from_millis(100);
        let unused = || async { panic!("a relay that sent its challenge is not asked for a nonce") };
        // The challenge: its nonce, no late one to expect.
        let mut ws = relay_sending(challenge(&[7; 32])).await;
        assert_eq!(join_nonce(&mut ws, wait, unused).await.unwrap(), (vec![7; 32], false));
        // Nothing within the wait (an older relay): the nonce asked for, and a late challenge may follow.
        let mut ws = relay_sending(None).await;
        let asked = || async { Ok(vec![9; 32]) };
        assert_eq!(join_nonce(&mut ws, wait, asked).await.unwrap(), (vec![9; 32], true));
        // The old way failing is the session's failure.
        let mut ws = relay_sending(None).await;
        let refused = || async { Err(crate::PhoneError::new(ErrorCode::RateLimited, "slow down")) };
        assert_eq!(join_nonce(&mut ws, wait, refused).await.unwrap_err().code, ErrorCode::RateLimited);
        // Anything else first ends the session: another event, the relay's error (its own code), a bad nonce.
        let mut ws = relay_sending(Some(TunnelEvent::Ready { expires_in: 1 })).await;
        let e = join_nonce(&mut ws, wait, unused).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("did not send the join's challenge first"), "{}", e.message);
        let busy = TunnelEvent::Error { code: ErrorCode::RateLimited, message: "slow down".into() };
        let mut ws = relay_sending(Some(busy)).await;
        assert_eq!(join_nonce(&mut ws, wait, unused).await.unwrap_err().code, ErrorCode::RateLimited);
        let mut ws = relay_sending(challenge(&[7; 16])).await;
        assert_eq!(join_nonce(&mut ws, wait, unused).await.unwrap_err().code, ErrorCode::Unavailable);
    }

    /// A socket that waited longer than the relay waits for the join request is replaced by a fresh one,
    /// with a challenge of its own; a younger one is kept (one connection per signature).
    #[tokio::test]
    async fn a_join_socket_opened_before_the_pin_is_kept_while_fresh_and_replaced_after() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/tunnel/x/join?challenge=1", listener.local_addr().unwrap());
        // The n-th connection's challenge is the nonce [n; 32].
        tokio::spawn(async move {
            for n in 1u8.. {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    let c = serde_json::to_string(&challenge(&[n; 32]).unwrap()).unwrap();
                    ws.send(Message::Text(c.into())).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        let unused = || async { panic!("the relay sent its challenge") };
        let wait = Duration::from_secs(5);
        let first = kalit_transport::connect(&url).await.unwrap();
        let mut ws = join_socket(first, std::time::Instant::now(), Duration::from_secs(60), &url).await.unwrap();
        assert_eq!(join_nonce(&mut ws, wait, unused).await.unwrap().0, vec![1; 32], "the first socket, kept");
        let first = kalit_transport::connect(&url).await.unwrap();
        let opened = std::time::Instant::now() - Duration::from_secs(8);
        let mut ws = join_socket(first, opened, Duration::from_secs(7), &url).await.unwrap();
        assert_eq!(
            join_nonce(&mut ws, wait, unused).await.unwrap().0,
            vec![3; 32],
            "a third connection, not the second"
        );
    }

    /// A relay slow to answer the WebSocket's opening is said to be slow, once; a quick one is not.
    #[tokio::test]
    async fn a_slow_relay_is_said_to_be_slow_and_a_quick_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/tunnel/x/join?challenge=1", listener.local_addr().unwrap());
        // The first connection is answered after 600 ms, the next at once.
        tokio::spawn(async move {
            for delay in [600, 0] {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let _ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        let mut said = 0;
        connect_saying_when_slow(&url, Duration::from_millis(100), || said += 1).await.unwrap();
        assert_eq!(said, 1, "the slow relay was said to be slow");
        connect_saying_when_slow(&url, Duration::from_secs(5), || said += 1).await.unwrap();
        assert_eq!(said, 1, "the quick relay was not");
    }

    #[test]
    fn one_late_challenge_is_passed_over_and_only_as_the_relays_first_event() {
        let other = || TunnelEvent::Error { code: ErrorCode::Expired, message: "gone".into() };
        let late = || challenge(&[7; 32]).unwrap();
        // After the fallback: the first event, a challenge, is passed over; a second one is not.
        let mut expect = true;
        assert!(passes_over(&mut expect, &late()));
        assert!(!passes_over(&mut expect, &late()));
        // After the fallback, another event first: a challenge after it is not passed over.
        let mut expect = true;
        assert!(!passes_over(&mut expect, &other()));
        assert!(!passes_over(&mut expect, &late()));
        // With the challenge received first (no fallback), none is passed over.
        let mut expect = false;
        assert!(!passes_over(&mut expect, &late()));
    }

    #[test]
    fn formats_are_named_and_said_in_words() {
        assert_eq!(format_text(DocFormat::Raw), "raw (a plain signature of the bytes)");
        assert_eq!(format_text(DocFormat::Cms), "cms (a CMS signature, .p7s)");
        assert_eq!(format_text(DocFormat::Pades), "pades (a signature inside the PDF)");
    }

    #[test]
    fn sizes_read_as_people_read_them_and_never_larger() {
        assert_eq!(size_text(0), "0 bytes");
        assert_eq!(size_text(1), "1 byte");
        assert_eq!(size_text(1023), "1,023 bytes");
        assert_eq!(size_text(1024), "1.0 KB (1,024 bytes)");
        assert_eq!(size_text(10 * 1024 - 1), "9.9 KB (10,239 bytes)");
        assert_eq!(size_text(1024 * 1024 - 1), "1,023 KB (1,048,575 bytes)");
        assert_eq!(size_text(111_411_200), "106 MB (111,411,200 bytes)");
        assert_eq!(size_text(u64::MAX), "17,592,186,044,415 MB (18,446,744,073,709,551,615 bytes)");
    }
}
