//! `kalit vault pair`: the phone's half of a signing session (paper steps 18-28).
//!
//! The phone checks the QR (version, expiry, a relay it is registered with), joins the relay's tunnel with
//! a device-signed request, runs the Noise handshake, shows the SAS, origin and certificate, sends its
//! hello (certificate chain and the relay's attestation), then for each sign request shows what is signed,
//! asks approval, then the PIN, signs and answers, or declines. History records the origin.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::digest::HashAlg;
use kalit_core::session::{PhoneHandshake, Qr};
use kalit_core::statement::Statement;
use kalit_core::x509;
use kalit_proto::ErrorCode;
use kalit_proto::namespace::TUNNEL_JOIN;
use kalit_proto::relay::{DeviceRequest, NonceResponse};
use kalit_proto::session::{ChannelMessage, DocFormat, MAX_DOCUMENT, SignStatus, TunnelEvent};
use kalit_service::ws::{Incoming, connect, next_frame, next_incoming, next_message, send, send_message, ws_url};
use kalit_vault::{DeviceRecord, DocumentToSign, SignFormat, SignOutcome, Vault};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Client;
use crate::error::{CliError, CliResult};

/// A sign request as the person sees it.
#[derive(Debug)]
pub struct SignPrompt<'a> {
    /// The requesting origin.
    pub origin: &'a str,
    /// Document name.
    pub name: &'a str,
    /// Media type.
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
            "\nSign request from {}\n  Document:   {}\n  Size:       {} bytes\n  Type:       {}\n  Format:     {}\n  SHA-256:    {} ...\n",
            self.origin,
            self.name,
            self.data.len(),
            self.media_type,
            self.format.as_str(),
            fp.join(" ")
        );
        if let Some(p) = preview(self.media_type, self.data) {
            s.push_str("  Preview:\n");
            for line in p.lines() {
                s.push_str(&format!("    | {line}\n"));
            }
        }
        s
    }
}

/// The first lines of a text document, control characters shown as `?`.
fn preview(media_type: &str, data: &[u8]) -> Option<String> {
    if !media_type.starts_with("text/") && media_type != "application/json" && media_type != "application/xml" {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 12 || out.len() > 1500 {
            out.push_str("... (more)\n");
            break;
        }
        let clean: String = line.chars().take(120).map(|c| if c.is_control() && c != '\t' { '?' } else { c }).collect();
        out.push_str(&clean);
        out.push('\n');
    }
    Some(out)
}

/// What the phone does at each point that needs the person; the terminal asks, the demo and the benchmark
/// answer by themselves.
pub trait PhoneUi {
    /// Shows a line of information.
    fn show(&mut self, text: &str);
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

impl PhoneUi for TerminalUi {
    fn show(&mut self, text: &str) {
        println!("{text}");
    }

    fn sign_join(&mut self, vault: &Vault, device_id: &str, st: &Statement) -> CliResult<Vec<u8>> {
        eprintln!("Unlock the vault to connect to the computer.");
        let u = crate::vault_cmd::unlock(vault, &mut self.prompter)?;
        Ok(u.sign_as_device(device_id, st)?)
    }

    fn approve(&mut self, prompt: &SignPrompt<'_>) -> CliResult<bool> {
        println!("{}", prompt.describe());
        self.prompter.confirm(&format!("Sign {:?} for {}?", prompt.name, prompt.origin))
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
            qr.payload.relay, me.relay_url
        ));
    }
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
    };
    let url = ws_url(&me.relay_url, &format!("/v1/tunnel/{tunnel}/join"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ErrorCode::Internal, format!("async runtime: {e}")))?;
    rt.block_on(session(vault, &qr, &me, &chain, &url, join, ui))
}

async fn session(
    vault: &Vault,
    qr: &Qr,
    me: &DeviceRecord,
    chain: &[Vec<u8>],
    url: &str,
    join: DeviceRequest,
    ui: &mut dyn PhoneUi,
) -> CliResult<PairSummary> {
    let mut ws = connect(url).await?;
    let join_json = serde_json::to_string(&join).map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    send(&mut ws, Message::Text(join_json.into())).await?;
    let joined = tokio::time::timeout(std::time::Duration::from_secs(15), next_incoming(&mut ws))
        .await
        .map_err(|_| unavailable("the relay did not answer the join request"))??;
    if !matches!(joined, Incoming::Event(TunnelEvent::Joined)) {
        return Err(unavailable("the relay answered the join with something unexpected"));
    }
    let (hs, msg1) = PhoneHandshake::start(qr)?;
    send(&mut ws, Message::Binary(msg1.into())).await?;
    let msg2 = tokio::time::timeout(std::time::Duration::from_secs(15), next_frame(&mut ws))
        .await
        .map_err(|_| unavailable("the computer did not answer the handshake"))??;
    let mut ch = hs.finish(&msg2)?;
    let leaf = x509::cert_info(&chain[0])?;
    ui.show(&format!(
        "Connected to the computer for {origin}.\n  Code:        {sas}   (the computer must show the same code; if not, stop)\n  Signing as:  {login} ({subject})",
        origin = qr.payload.origin,
        sas = ch.sas(),
        login = me.login,
        subject = leaf.subject
    ));
    let hello = ChannelMessage::Hello {
        login: me.login.clone(),
        device_name: me.device_id.clone(),
        chain: chain.iter().map(|c| B64.encode(c)).collect(),
        attestation: me.attestation.clone(),
    };
    send_message(&mut ws, &mut ch, &hello).await?;
    let mut summary = PairSummary::default();
    loop {
        let m = match next_message(&mut ws, &mut ch).await {
            Ok(m) => m,
            Err(e) if e.code == ErrorCode::Unavailable && summary.signed + summary.declined > 0 => {
                ui.show("The session ended.");
                return Ok(summary);
            }
            Err(e) => return Err(e.into()),
        };
        match m {
            ChannelMessage::SignRequest { id, origin, name, media_type, data, format, pss } => {
                if origin != qr.payload.origin {
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
                let prompt = SignPrompt {
                    origin: &origin,
                    name: &name,
                    media_type: &media_type,
                    data: &data,
                    format,
                    sha256: hex::encode(HashAlg::Sha256.digest(&data)),
                };
                let answer = if ui.approve(&prompt)? {
                    let doc = DocumentToSign {
                        name: &name,
                        data: &data,
                        format: match format {
                            DocFormat::Raw => SignFormat::Raw,
                            DocFormat::Cms => SignFormat::Cms,
                        },
                        pss,
                        origin: Some(&origin),
                    };
                    match ui.sign(vault, &me.key_label, &doc) {
                        Ok(out) => {
                            summary.signed += 1;
                            ui.show(&format!("Signed {name:?} ({}); the answer is on its way.", out.record.format));
                            ChannelMessage::SignResponse {
                                id,
                                status: SignStatus::Approved,
                                signature: Some(B64.encode(&out.bytes)),
                                message: None,
                            }
                        }
                        Err(e) => {
                            ui.show(&format!("Not signed: {}", e.message));
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
                    ui.show(&format!("Declined {name:?}."));
                    ChannelMessage::SignResponse { id, status: SignStatus::Declined, signature: None, message: None }
                };
                send_message(&mut ws, &mut ch, &answer).await?;
            }
            ChannelMessage::Bye { reason, code } => {
                let _ = ws.close(None).await;
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
