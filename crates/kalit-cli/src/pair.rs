//! `kalit vault pair`: the phone's half of a signing session (paper steps 18-28).
//!
//! The phone checks the QR (version, expiry, origin syntax, a relay it is registered with), shows which
//! computer asks (by the name the person gave its key, or the full warning for a computer never seen,
//! which must be named first), only then asks the PIN and joins the relay's tunnel with a device-signed
//! request, shows the network the computer came from, runs the Noise handshake (which proves the computer
//! holds the key), shows the SAS, sends its hello (certificate chain and the relay's fresh attestation),
//! then for each sign request shows what is signed by the display rules of `kalit_core::display`, asks
//! approval (and a separate confirmation for raw bytes it cannot show), then the PIN, signs and answers,
//! or declines. History records the origin.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::digest::HashAlg;
use kalit_core::session::{PhoneHandshake, Qr};
use kalit_core::statement::Statement;
use kalit_core::x509;
use kalit_core::{display, purpose};
use kalit_proto::ErrorCode;
use kalit_proto::namespace::TUNNEL_JOIN;
use kalit_proto::relay::{DeviceRequest, NonceResponse};
use kalit_proto::session::{ChannelMessage, DocFormat, MAX_DOCUMENT, SignStatus, TunnelEvent};
use kalit_service::ws::{Incoming, connect, next_frame, next_incoming, next_message, send, send_message, ws_url};
use kalit_vault::{DeviceRecord, DocumentToSign, SignFormat, SignOutcome, Vault};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Client;
use crate::error::{CliError, CliResult};

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
}

impl Computer {
    /// The line every screen shows.
    pub fn line(&self) -> String {
        let seen = match self.uses_before {
            0 => "first time".to_string(),
            1 => "used once before".to_string(),
            n => format!("used {n} times before"),
        };
        let mut s = format!("Computer:   {} ({seen})", display::field(&self.name, 40));
        if let Some(n) = &self.network {
            s.push_str(&format!("\n  Network:    {n}"));
        }
        s
    }
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
    /// The document.
    pub data: &'a [u8],
    /// Raw or CMS.
    pub format: DocFormat,
    /// SHA-256 of the document, hex.
    pub sha256: String,
}

impl SignPrompt<'_> {
    /// What the phone screen shows.
    pub fn describe(&self) -> String {
        let fp: Vec<String> =
            self.sha256.as_bytes().chunks(8).take(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let mut s = format!(
            "\nSign request from {origin} (as this computer says; only as true as the computer)\n  {computer}\n  Document:   {name}\n  Size:       {size} bytes\n  Type:       {ty}\n  Format:     {format}\n  SHA-256:    {fp} ...\n",
            origin = display::escape(self.origin),
            computer = self.computer.line(),
            name = display::field(self.name, 120),
            size = self.data.len(),
            ty = display::escape(self.media_type),
            format = self.format.as_str(),
            fp = fp.join(" ")
        );
        if let Some(w) = display::type_mismatch(self.media_type, self.data) {
            s.push_str(&format!("  WARNING:    {w}\n"));
        }
        if self.format == DocFormat::Raw && purpose::needs_blind_confirmation(self.data) {
            s.push_str(
                "  WARNING:    this is not text the phone can show you; a raw signature over it can mean anything\n",
            );
        }
        if (display::is_text_type(self.media_type) || display::sniff(self.data) == display::Sniffed::Text)
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
    /// Shows a line of information.
    fn show(&mut self, text: &str);
    /// A computer this phone has never seen asks: warn, and ask the person to name it (`None`: stop).
    fn name_new_computer(&mut self, computer_id: &str, origin: &str) -> CliResult<Option<String>>;
    /// A raw signature over bytes that cannot be shown: the separate confirmation.
    fn confirm_blind(&mut self, prompt: &SignPrompt<'_>) -> CliResult<bool>;
    /// Signs the join request with the device key (the terminal asks the PIN to unlock).
    fn sign_join(&mut self, vault: &Vault, device_id: &str, st: &Statement) -> CliResult<Vec<u8>>;
    /// Asks whether to sign.
    fn approve(&mut self, prompt: &SignPrompt<'_>) -> CliResult<bool>;
    /// Signs an approved document (the terminal asks the PIN).
    fn sign(&mut self, vault: &Vault, label: &str, doc: &DocumentToSign<'_>) -> CliResult<SignOutcome>;
}

/// The terminal (or standard input) user interface.
#[derive(Debug)]
pub struct TerminalUi {
    /// Prompts.
    pub prompter: crate::prompt::Prompter,
}

/// The full-screen warning for a computer the phone has never seen.
pub fn new_computer_warning(computer_id: &str, origin: &str) -> String {
    let bar = "=".repeat(72);
    format!(
        "{bar}\n  A COMPUTER THIS PHONE HAS NEVER SEEN\n\n  Is this the computer in front of you? Only continue if you started this on it yourself.\n  Someone else's computer can show you a QR code and claim to be any web site.\n\n  It says it asks for: {origin}\n  Computer id:          {computer_id}\n{bar}",
        origin = display::escape(origin),
    )
}

impl PhoneUi for TerminalUi {
    fn show(&mut self, text: &str) {
        println!("{text}");
    }

    fn name_new_computer(&mut self, computer_id: &str, origin: &str) -> CliResult<Option<String>> {
        println!("{}", new_computer_warning(computer_id, origin));
        let name = self
            .prompter
            .text("Name this computer to continue (for example \"my laptop\"), or press Enter to stop: ")?;
        Ok(Some(name).filter(|n| !n.trim().is_empty()))
    }

    fn confirm_blind(&mut self, prompt: &SignPrompt<'_>) -> CliResult<bool> {
        self.prompter.confirm(&format!(
            "The phone cannot show you what {} contains. Make a raw signature over bytes you cannot read?",
            display::field(prompt.name, 60)
        ))
    }

    fn sign_join(&mut self, vault: &Vault, device_id: &str, st: &Statement) -> CliResult<Vec<u8>> {
        eprintln!("Unlock the vault to connect to the computer.");
        let u = crate::vault_cmd::unlock(vault, &mut self.prompter)?;
        Ok(u.sign_as_device(device_id, st)?)
    }

    fn approve(&mut self, prompt: &SignPrompt<'_>) -> CliResult<bool> {
        println!("{}", prompt.describe());
        self.prompter.confirm(&format!(
            "Sign \"{}\" for {}?",
            display::field(prompt.name, 60),
            display::escape(prompt.origin)
        ))
    }

    fn sign(&mut self, vault: &Vault, label: &str, doc: &DocumentToSign<'_>) -> CliResult<SignOutcome> {
        let u = crate::vault_cmd::unlock(vault, &mut self.prompter)?;
        Ok(u.sign(label, doc)?)
    }
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

/// Reads a QR from a PNG/JPEG photo or screenshot.
pub fn decode_qr_image(path: &Path) -> CliResult<String> {
    let bytes = crate::files::read_limited(path, 20 << 20, "QR image")?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| CliError::new(ErrorCode::InvalidInput, format!("{}: not a readable image: {e}", path.display())))?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    for grid in prepared.detect_grids() {
        if let Ok((_, text)) = grid.decode() {
            return Ok(text);
        }
    }
    Err(CliError::new(ErrorCode::InvalidInput, format!("no readable QR code in {}", path.display())))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn unavailable(msg: impl Into<String>) -> CliError {
    CliError::new(ErrorCode::Unavailable, msg)
}

/// Runs one pairing from QR text to the end of the session.
pub fn pair(vault: &Vault, qr_text: &str, login: Option<&str>, ui: &mut dyn PhoneUi) -> CliResult<PairSummary> {
    let qr = Qr::parse(qr_text)?;
    qr.check_fresh(now_secs())?;
    display::origin(&qr.payload.origin)?;
    let me = crate::vault_net::find_registration(vault, &qr.payload.relay_id, login, || {
        format!(
            "this phone is not registered with the relay in the QR ({}, id {}): register first (kalit vault register)",
            qr.payload.relay, qr.payload.relay_id
        )
    })?;
    let chain = vault.certificate_chain(&me.key_label)?;
    if chain.is_empty() {
        return Err(CliError::new(ErrorCode::NotFound, format!("key {:?} has no certificate", me.key_label)));
    }
    // The registered URL, not the QR's: the QR only names which relay (by id).
    if qr.payload.relay != me.relay_url.trim_end_matches('/') {
        ui.show(&format!(
            "Note: the QR names {} for this relay; using the registered address {}.",
            display::field(&qr.payload.relay, 100),
            me.relay_url
        ));
    }
    // Who is asking, before the PIN: a known computer by its name, a new one with the full warning and a
    // name the person gives it (nothing else happens until then).
    let computer_id = qr.computer_id();
    let (mut computer, new_name) = match vault.computer(&computer_id)? {
        Some(k) => (Computer { id: computer_id.clone(), name: k.name, uses_before: k.uses, network: None }, None),
        None => {
            let Some(name) = ui.name_new_computer(&computer_id, &qr.payload.origin)? else {
                return Err(CliError::new(ErrorCode::Declined, "you did not name the computer; nothing was signed"));
            };
            let name = kalit_vault::check_computer_name(&name)?;
            (Computer { id: computer_id.clone(), name: name.clone(), uses_before: 0, network: None }, Some(name))
        }
    };
    ui.show(&format!(
        "{}\n  Asks for:   {} (as the computer says)",
        computer.line(),
        display::escape(&qr.payload.origin)
    ));
    let tunnel = qr.tunnel_id()?;
    let client = Client::new(&me.relay_url, "relay")?;
    let nonce: NonceResponse = client.post::<(), _>("/v1/nonce", None)?;
    let nonce_bytes = kalit_core::statement::b64("nonce", &nonce.nonce, 32)?;
    let st = Statement::device_request(&me.relay_id, &nonce_bytes, &me.login, &me.device_id, TUNNEL_JOIN, &tunnel);
    let sig = ui.sign_join(vault, &me.device_id, &st)?;
    let join = DeviceRequest {
        login: me.login.clone(),
        device_id: me.device_id.clone(),
        nonce: nonce.nonce,
        relay_id: me.relay_id.clone(),
        target: tunnel.clone(),
        signature: B64.encode(sig),
        proof: None,
    };
    let url = ws_url(&me.relay_url, &format!("/v1/tunnel/{tunnel}/join"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ErrorCode::Internal, format!("async runtime: {e}")))?;
    rt.block_on(session(vault, &qr, &me, &chain, &url, join, &mut computer, new_name.as_deref(), ui))
}

#[allow(clippy::too_many_arguments)]
async fn session(
    vault: &Vault,
    qr: &Qr,
    me: &DeviceRecord,
    chain: &[Vec<u8>],
    url: &str,
    join: DeviceRequest,
    computer: &mut Computer,
    new_name: Option<&str>,
    ui: &mut dyn PhoneUi,
) -> CliResult<PairSummary> {
    let mut ws = connect(url).await?;
    let join_json = serde_json::to_string(&join).map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    send(&mut ws, Message::Text(join_json.into())).await?;
    let joined = tokio::time::timeout(std::time::Duration::from_secs(15), next_incoming(&mut ws))
        .await
        .map_err(|_| unavailable("the relay did not answer the join request"))??;
    let Incoming::Event(TunnelEvent::Joined { attestation, computer_address, same_network }) = joined else {
        return Err(unavailable("the relay answered the join with something unexpected"));
    };
    // The relay's fresh attestation for this device (the agent checks it; so do we, before sending it).
    let relay_pk = kalit_core::statement::b64("relay key", &me.relay_public_key, 64)?;
    kalit_core::statement::verify_attestation(&relay_pk, &attestation)?;
    if attestation.attestation.device_id != me.device_id || attestation.attestation.login != me.login {
        return Err(unavailable("the relay's attestation is for another device or login"));
    }
    computer.network = Some(if same_network {
        "same network as this phone".to_string()
    } else {
        format!("another network: {}", display::field(&computer_address, 60))
    });
    let (hs, msg1) = PhoneHandshake::start(qr)?;
    send(&mut ws, Message::Binary(msg1.into())).await?;
    let msg2 = tokio::time::timeout(std::time::Duration::from_secs(15), next_frame(&mut ws))
        .await
        .map_err(|_| unavailable("the computer did not answer the handshake"))??;
    let mut ch = hs.finish(&msg2)?;
    // The handshake proved the computer holds the key this phone knows it by: remember it now.
    vault.record_computer(&computer.id, new_name)?;
    let leaf = x509::cert_info(&chain[0])?;
    ui.show(&format!(
        "Connected to the computer for {origin}.\n  {computer}\n  Code:       {sas}   (the computer must show the same code; if not, stop)\n  Signing as: {login} ({subject})",
        origin = display::escape(&qr.payload.origin),
        computer = computer.line(),
        sas = ch.sas(),
        login = me.login,
        subject = display::escape(&leaf.subject)
    ));
    let hello = ChannelMessage::Hello {
        login: me.login.clone(),
        device_name: me.device_id.clone(),
        chain: chain.iter().map(|c| B64.encode(c)).collect(),
        attestation,
    };
    send_message(&mut ws, &mut ch, &hello).await?;
    let mut summary = PairSummary::default();
    // Messages read early (while checking whether a request was withdrawn), in order.
    let mut early: std::collections::VecDeque<ChannelMessage> = std::collections::VecDeque::new();
    loop {
        let next = match early.pop_front() {
            Some(m) => Ok(m),
            None => next_message(&mut ws, &mut ch).await,
        };
        let m = match next {
            Ok(m) => m,
            Err(e) if e.code == ErrorCode::Unavailable && summary.signed + summary.declined > 0 => {
                ui.show("The session ended.");
                return Ok(summary);
            }
            Err(e) => return Err(e.into()),
        };
        match m {
            ChannelMessage::SignRequest { id, origin, name, media_type, data, format, pss } => {
                if origin != qr.payload.origin || display::origin(&origin).is_err() {
                    let reason = "the computer named another origin than the QR; nothing was signed".to_string();
                    let _ = send_message(
                        &mut ws,
                        &mut ch,
                        &ChannelMessage::Bye { reason: reason.clone(), code: Some(ErrorCode::RefusedByPolicy) },
                    )
                    .await;
                    return Err(CliError::new(ErrorCode::RefusedByPolicy, reason));
                }
                let data = kalit_core::statement::b64("document", &data, MAX_DOCUMENT)?;
                let media_type = match display::media_type(&media_type) {
                    Ok(m) => m,
                    Err(e) => {
                        let reason = format!("{e}; nothing was signed");
                        let bye = ChannelMessage::Bye { reason: reason.clone(), code: Some(ErrorCode::InvalidInput) };
                        let _ = send_message(&mut ws, &mut ch, &bye).await;
                        return Err(CliError::new(ErrorCode::InvalidInput, reason));
                    }
                };
                let prompt = SignPrompt {
                    computer,
                    origin: &origin,
                    name: &name,
                    media_type: &media_type,
                    data: &data,
                    format,
                    sha256: hex::encode(HashAlg::Sha256.digest(&data)),
                };
                // A document that is a protocol statement, or a DER structure asked for raw, is refused
                // before anything is asked (the vault refuses it too, whatever the front end).
                if let Err(e) = purpose::check_document(&data, format == DocFormat::Raw) {
                    ui.show(&format!(
                        "Refused a request from {}: {}",
                        display::escape(&origin),
                        display::terminal_text(&e.to_string())
                    ));
                    let answer = ChannelMessage::SignResponse {
                        id,
                        status: SignStatus::Failed,
                        signature: None,
                        message: Some(format!("{}: {e}", e.code())),
                    };
                    send_message(&mut ws, &mut ch, &answer).await?;
                    continue;
                }
                let blind = format == DocFormat::Raw && purpose::needs_blind_confirmation(&data);
                let approved = ui.approve(&prompt)? && (!blind || ui.confirm_blind(&prompt)?);
                // The person may have answered after the page withdrew the request: look before the PIN.
                if approved && withdrawn(&mut ws, &mut ch, id, &mut early).await? {
                    summary.withdrawn += 1;
                    ui.show(&format!(
                        "The computer withdrew \"{}\" before you answered; nothing was signed.",
                        display::field(&name, 60)
                    ));
                    continue;
                }
                let answer = if approved {
                    let doc = DocumentToSign {
                        name: &name,
                        data: &data,
                        format: match format {
                            DocFormat::Raw => SignFormat::Raw,
                            DocFormat::Cms => SignFormat::Cms,
                        },
                        pss,
                        origin: Some(&origin),
                        blind_confirmed: blind,
                    };
                    match ui.sign(vault, &me.key_label, &doc) {
                        Ok(out) => {
                            summary.signed += 1;
                            ui.show(&format!(
                                "Signed \"{}\" ({}); the answer is on its way.",
                                display::field(&name, 60),
                                out.record.format
                            ));
                            ChannelMessage::SignResponse {
                                id,
                                status: SignStatus::Approved,
                                signature: Some(B64.encode(&out.bytes)),
                                message: None,
                            }
                        }
                        Err(e) => {
                            ui.show(&format!("Not signed: {}", display::terminal_text(&e.message)));
                            ChannelMessage::SignResponse {
                                id,
                                status: SignStatus::Failed,
                                signature: None,
                                message: Some(format!("{}: {}", e.code, e.message)),
                            }
                        }
                    }
                } else {
                    summary.declined += 1;
                    ui.show(&format!("Declined \"{}\".", display::field(&name, 60)));
                    ChannelMessage::SignResponse { id, status: SignStatus::Declined, signature: None, message: None }
                };
                send_message(&mut ws, &mut ch, &answer).await?;
            }
            ChannelMessage::Cancel { id, reason } => {
                // A request already answered (or never shown) was withdrawn: nothing to do but say so.
                ui.show(&format!("The computer withdrew request {id}: {}", display::field(&reason, 200)));
            }
            ChannelMessage::Bye { reason, code } => {
                let _ = ws.close(None).await;
                let reason = display::field(&reason, 300);
                if let Some(code) = code {
                    return Err(CliError::new(code, format!("the computer ended the session: {reason}")));
                }
                ui.show(&format!("The computer ended the session: {reason}"));
                return Ok(summary);
            }
            _ => {
                return Err(CliError::new(ErrorCode::Channel, "the computer sent a message out of turn"));
            }
        }
    }
}

/// Whether request `id` was withdrawn: reads what the computer already sent (a withdrawal made while the
/// person was deciding is waiting in the socket; a few milliseconds let the runtime see it), keeping every
/// other message, in order, for the session loop.
async fn withdrawn(
    ws: &mut kalit_service::ws::Ws,
    ch: &mut kalit_core::session::Channel,
    id: u32,
    early: &mut std::collections::VecDeque<ChannelMessage>,
) -> CliResult<bool> {
    if early.iter().any(|m| matches!(m, ChannelMessage::Cancel { id: c, .. } if *c == id)) {
        early.retain(|m| !matches!(m, ChannelMessage::Cancel { id: c, .. } if *c == id));
        return Ok(true);
    }
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(5), next_message(ws, ch)).await {
            Err(_) => return Ok(false),
            Ok(Ok(ChannelMessage::Cancel { id: c, .. })) if c == id => return Ok(true),
            Ok(Ok(m)) => early.push_back(m),
            // The link is gone: the answer could not reach the page anyway.
            Ok(Err(e)) if e.code == ErrorCode::Unavailable => return Ok(true),
            Ok(Err(e)) => return Err(e.into()),
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

    fn name_new_computer(&mut self, computer_id: &str, origin: &str) -> CliResult<Option<String>> {
        if self.verbose {
            self.show(&new_computer_warning(computer_id, origin));
            self.show("Named \"demo computer\" (automatically, in the demo).");
        }
        Ok(Some("demo computer".into()))
    }

    fn confirm_blind(&mut self, _prompt: &SignPrompt<'_>) -> CliResult<bool> {
        // The demo and the benchmark sign only what they made themselves.
        Ok(true)
    }

    fn sign_join(&mut self, _vault: &Vault, device_id: &str, st: &Statement) -> CliResult<Vec<u8>> {
        Ok(self.unlocked.sign_as_device(device_id, st)?)
    }

    fn approve(&mut self, prompt: &SignPrompt<'_>) -> CliResult<bool> {
        if self.verbose {
            self.show(&prompt.describe());
            self.show("Approved (automatically, in the demo).");
        }
        Ok(true)
    }

    fn sign(&mut self, _vault: &Vault, label: &str, doc: &DocumentToSign<'_>) -> CliResult<SignOutcome> {
        Ok(self.unlocked.sign(label, doc)?)
    }
}
