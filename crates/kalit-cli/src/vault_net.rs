//! The phone's network commands: `kalit vault enrol | register | devices | unregister` (paper steps 5-8
//! against the RA and 9-17 against the relay, with the fixes of docs/PROTOCOL.md).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kalit_core::statement::{self, Statement};
use kalit_core::x509;
use kalit_proto::ErrorCode;
use kalit_proto::namespace::{ATTACH, CANCEL_DETACH, DETACH};
use kalit_proto::ra::{IssueRequest, IssueResponse};
use kalit_proto::relay::{
    CertProof, DetachResponse, DeviceApproval, DeviceList, DeviceRequest, NonceResponse, RegisterOutcome,
    RegisterRequest, RegisterResponse, RelayIdentity, WELL_KNOWN_PATH,
};
use kalit_vault::{DeviceRecord, Vault};

use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::prompt::Prompter;
use crate::vault_cmd::{print_json, unlock};

/// `kalit vault enrol KEY --ra URL --code CODE [--ca FILE]`.
pub fn enrol(dir: &Path, key: &str, ra: &str, code: &str, ca: Option<&PathBuf>) -> CliResult {
    let client = Client::new(ra, "RA")?;
    let vault = Vault::open(dir)?;
    vault.key(key)?;
    let anchors = match ca {
        Some(f) => {
            let bytes = std::fs::read(f).map_err(CliError::io(format!("cannot read {}", f.display())))?;
            Some(x509::parse_cert_bundle(&bytes)?)
        }
        None => None,
    };
    let u = unlock(&vault, &mut Prompter::new())?;
    let (cert, serial, _) = enrol_with(&vault, &u, &client, key, code, anchors)?;
    // The subject and serial come from the RA: shown escaped, like every string from another party.
    println!(
        "  subject:   {}\n  serial:    {}\n  valid to:  {}",
        kalit_core::display::escape(&cert.subject),
        kalit_core::display::field(&serial, 80),
        cert.not_after
    );
    Ok(())
}

/// Enrolment with an unlocked vault: CSR to the RA, checks, install. `anchors`: the RA's root as
/// published; `None` trusts the root the RA sends (its fingerprint is printed).
pub fn enrol_with(
    vault: &Vault,
    u: &kalit_vault::Unlocked<'_>,
    client: &Client,
    key: &str,
    code: &str,
    anchors: Option<Vec<Vec<u8>>>,
) -> CliResult<(kalit_proto::vault::CertInfo, String, String)> {
    let info = vault.key(key)?;
    // The RA takes the subject from its own record; the CSR's subject is only a placeholder.
    let csr = u.csr(key, &format!("CN={}", key.replace([',', '/', '\\'], " ")))?;
    println!(
        "[registration 5] Sending a CSR for key {key:?} (SHA256:{}) to the RA at {}",
        info.fingerprint,
        client.base()
    );
    let resp: IssueResponse =
        client.post("/v1/certificates", Some(&IssueRequest { code: code.into(), csr: csr.clone() }))?;
    let chain = x509::parse_cert_bundle(resp.chain.as_bytes())?;
    let (leaf, rest) =
        chain.split_first().ok_or_else(|| CliError::new(ErrorCode::Unavailable, "the RA sent no certificate"))?;
    let spki = x509::cert_spki(leaf)?;
    if x509::fingerprint(&spki) != info.fingerprint {
        return Err(CliError::new(
            ErrorCode::KeyMismatch,
            "the RA answered with a certificate for another key; nothing was installed",
        ));
    }
    let anchors = match anchors {
        Some(a) => a,
        None => {
            let root =
                rest.last().ok_or_else(|| CliError::new(ErrorCode::UntrustedCertificate, "the RA sent no CA chain"))?;
            eprintln!(
                "warning: no --ca given; trusting the RA's own root, SHA-256 {} — compare it with the fingerprint your RA gave you",
                statement::cert_fingerprint(root)
            );
            vec![root.clone()]
        }
    };
    x509::check_chain(leaf, rest, &anchors, time::OffsetDateTime::now_utc())?;
    let cert = u.install_cert(key, resp.chain.as_bytes())?;
    println!("[registration 6] The certificate is for this key and chains to the RA's root: installed.");
    Ok((cert, resp.serial, csr))
}

fn relay_identity(client: &Client) -> CliResult<(RelayIdentity, Vec<u8>)> {
    let id: RelayIdentity = client.get(WELL_KNOWN_PATH)?;
    let pk = statement::b64("relay public key", &id.public_key, 32)?;
    if pk.len() != 32 || statement::key_id(&pk) != id.relay_id {
        return Err(CliError::new(ErrorCode::Unavailable, "the relay's identity is inconsistent (key and id differ)"));
    }
    Ok((id, pk))
}

fn nonce(client: &Client) -> CliResult<Vec<u8>> {
    let n: NonceResponse = client.post::<(), _>("/v1/nonce", None)?;
    let v = statement::b64("nonce", &n.nonce, 32)?;
    if v.len() != 32 {
        return Err(CliError::new(ErrorCode::Unavailable, "the relay sent a malformed nonce"));
    }
    Ok(v)
}

fn proof(sig: &[u8], chain: &[Vec<u8>]) -> CertProof {
    CertProof { chain: chain.iter().map(|c| B64.encode(c)).collect(), signature: B64.encode(sig) }
}

/// `kalit vault register KEY --relay URL --login LOGIN [--proof-key KEY2] [--device-name NAME]`.
pub fn register(dir: &Path, key: &str, relay: &str, login: &str, device_name: Option<&str>) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    // Reach the relay before asking for the PIN.
    relay_identity(&client)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    let rec = register_with(&vault, &u, &client, key, login, device_name)?;
    println!("  device id: {}", rec.device_id);
    Ok(())
}

/// Registration with an unlocked vault.
pub fn register_with(
    vault: &Vault,
    u: &kalit_vault::Unlocked<'_>,
    client: &Client,
    key: &str,
    login: &str,
    device_name: Option<&str>,
) -> CliResult<DeviceRecord> {
    let login = statement::normalize_login(login)?;
    let (ident, relay_pk) = relay_identity(client)?;

    let mine: Vec<DeviceRecord> =
        vault.devices()?.into_iter().filter(|d| d.relay_id == ident.relay_id && d.login == login).collect();
    if mine.iter().any(|d| d.key_label == key) {
        return Err(CliError::new(
            ErrorCode::AlreadyExists,
            format!("this phone is already registered as {login} at {}", client.base()),
        ));
    }
    // A registration of this phone under the login (with another key) approves the new certificate.
    let approver = mine.into_iter().next();
    println!(
        "[registration 9] Relay {} ({}), id {}",
        kalit_core::display::field(&ident.name, 80),
        client.base(),
        kalit_core::display::field(&ident.relay_id, 64)
    );
    let name = device_name.map_or_else(default_device_name, str::to_string);
    let nonce = nonce(client)?;
    let device = u.new_device()?;
    let device_key = device.public_key_raw().to_vec();
    // Fingerprint of the leaf we are about to send.
    let leaf_fp = |label: &str| -> CliResult<String> {
        let chain = vault.certificate_chain(label)?;
        let leaf = chain.first().ok_or_else(|| {
            CliError::new(
                ErrorCode::RefusedByPolicy,
                format!("key {label:?} has no certificate: enrol it first (kalit vault enrol) or install one"),
            )
        })?;
        Ok(statement::cert_fingerprint(leaf))
    };
    let fp = leaf_fp(key)?;
    let (sig, chain) =
        u.sign_statement(key, &Statement::register(&ident.relay_id, &nonce, &login, &device_key, &fp))?;
    let approval = match &approver {
        None => None,
        Some(a) => {
            let target = format!("{fp}/{}", statement::key_id(&device_key));
            let st = Statement::device_request(&ident.relay_id, &nonce, &login, &a.device_id, ATTACH, &target);
            println!("[registration 13] This phone's registration {} approves the new certificate", a.device_id);
            Some(DeviceApproval {
                device_id: a.device_id.clone(),
                signature: B64.encode(u.sign_as_device(&a.device_id, &st)?),
            })
        }
    };
    println!(
        "[registration 10-14] Sending {login}, the certificate chain and a new device key, signed over the relay's nonce"
    );
    let req = RegisterRequest {
        login: login.clone(),
        device_key: B64.encode(&device_key),
        device_name: name,
        nonce: B64.encode(&nonce),
        relay_id: ident.relay_id.clone(),
        proof: proof(&sig, &chain),
        approval,
    };
    let resp: RegisterResponse = client.post("/v1/register", Some(&req)).map_err(|e| {
        if e.code == ErrorCode::LoginTaken {
            CliError::new(
                e.code,
                format!(
                    "{}\nIf the login is yours: register a key whose certificate is already attached to {login} (for example one imported from your PFX), or register first from a phone that is already registered as {login}; its registration approves the new certificate.",
                    e.message
                ),
            )
        } else {
            e
        }
    })?;
    statement::verify_attestation(&relay_pk, &resp.attestation).map_err(|_| {
        CliError::new(ErrorCode::InvalidSignature, "the relay's attestation does not verify; nothing was saved")
    })?;
    let a = &resp.attestation.attestation;
    if a.login != login || a.device_id != device.device_id() || a.cert_fingerprint != fp || a.relay_id != ident.relay_id
    {
        return Err(CliError::new(
            ErrorCode::InvalidSignature,
            "the relay attested something else than was asked; nothing was saved",
        ));
    }
    let rec = u.save_device(
        device,
        DeviceRecord {
            format: String::new(),
            device_id: String::new(),
            relay_url: client.base().to_string(),
            relay_id: ident.relay_id.clone(),
            relay_public_key: ident.public_key.clone(),
            login: login.clone(),
            key_label: key.to_string(),
            attestation: resp.attestation.clone(),
            created: String::new(),
        },
    )?;
    let what = match resp.outcome {
        RegisterOutcome::Created => "registered the new login",
        RegisterOutcome::Added => "added this phone to the existing login",
    };
    println!(
        "[registration 15-17] The relay {what} {login}; its signed attestation verified and is kept in the vault."
    );
    Ok(rec)
}

fn default_device_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if host.is_empty() {
        "kalit phone".into()
    } else {
        format!("kalit on {}", host.chars().take(40).collect::<String>())
    }
}

/// This phone's registration at the relay behind `client`, found by the relay's id (so a relay that moved
/// to another URL is still recognised).
fn pick_device(vault: &Vault, client: &Client, login: Option<&str>) -> CliResult<DeviceRecord> {
    let (ident, _) = relay_identity(client)?;
    find_registration(vault, &ident.relay_id, login, || {
        format!("this phone is not registered at {} (kalit vault register)", client.base())
    })
}

/// This phone's one registration at the relay `relay_id` (for `login`, when it has several there);
/// `not_found` says what to do when there is none.
pub(crate) fn find_registration(
    vault: &Vault,
    relay_id: &str,
    login: Option<&str>,
    not_found: impl FnOnce() -> String,
) -> CliResult<DeviceRecord> {
    let login = login.map(statement::normalize_login).transpose()?;
    let mut found: Vec<DeviceRecord> = vault
        .devices()?
        .into_iter()
        .filter(|d| d.relay_id == relay_id && login.as_ref().is_none_or(|l| *l == d.login))
        .collect();
    match found.len() {
        0 => Err(CliError::new(ErrorCode::NotFound, not_found())),
        1 => Ok(found.remove(0)),
        // Several registrations of one login (one per certificate): any of them speaks for the login.
        _ if found.iter().all(|d| d.login == found[0].login) => {
            found.sort_by(|a, b| a.created.cmp(&b.created));
            Ok(found.remove(0))
        }
        _ => Err(CliError::new(ErrorCode::Usage, "this phone has several logins at that relay: add --login")),
    }
}

fn device_request(
    u: &kalit_vault::Unlocked<'_>,
    client: &Client,
    me: &DeviceRecord,
    action: &str,
    target: &str,
) -> CliResult<DeviceRequest> {
    let nonce = nonce(client)?;
    let st = Statement::device_request(&me.relay_id, &nonce, &me.login, &me.device_id, action, target);
    let sig = u.sign_as_device(&me.device_id, &st)?;
    Ok(DeviceRequest {
        login: me.login.clone(),
        device_id: me.device_id.clone(),
        nonce: B64.encode(nonce),
        relay_id: me.relay_id.clone(),
        target: target.into(),
        signature: B64.encode(sig),
        proof: None,
    })
}

/// `kalit vault devices --relay URL [--login L] [--json]`.
pub fn devices(dir: &Path, relay: &str, login: Option<&str>, json: bool) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    let me = pick_device(&vault, &client, login)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    let list: DeviceList = client.post("/v1/devices", Some(&device_request(&u, &client, &me, "list", "")?))?;
    if json {
        return print_json(&list);
    }
    println!("Devices of {} at {}:", kalit_core::display::field(&list.login, 64), client.base());
    for d in &list.devices {
        let when = time::OffsetDateTime::from_unix_timestamp(d.registered_at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let mine = if d.device_id == me.device_id { "  (this phone)" } else { "" };
        println!(
            "  {}  {:<24} {}  {}{mine}",
            d.device_id,
            kalit_core::display::field(&d.name, 24),
            when,
            kalit_core::display::escape(&d.cert_subject)
        );
    }
    for p in &list.pending_detachments {
        let when = time::OffsetDateTime::from_unix_timestamp(p.effective_at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        println!(
            "WARNING: device {} asked to detach the certificate {} ({}) from {} at {when}, with all its devices.\n  If that is not you: kalit vault detach {} --relay {} --cancel (from a phone of that certificate)",
            p.requested_by,
            &p.cert_fingerprint[..16.min(p.cert_fingerprint.len())],
            kalit_core::display::escape(&p.cert_subject),
            list.login,
            p.cert_fingerprint,
            client.base()
        );
    }
    Ok(())
}

/// `kalit vault detach CERT_FINGERPRINT --relay URL [--cancel]`: ask the relay to detach a certificate
/// from the login after its cooling-off period (or cancel such a request, from a device of that
/// certificate).
pub fn detach(dir: &Path, relay: &str, cert: &str, cancel: bool, login: Option<&str>) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    let me = pick_device(&vault, &client, login)?;
    let cert = cert.to_ascii_lowercase();
    if cert.len() != 64 || !cert.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::new(
            ErrorCode::Usage,
            "give the certificate's SHA-256 fingerprint (64 hex characters, as kalit vault devices --json shows)",
        ));
    }
    let u = unlock(&vault, &mut Prompter::new())?;
    let (action, path) =
        if cancel { (CANCEL_DETACH, "/v1/certificates/cancel-detach") } else { (DETACH, "/v1/certificates/detach") };
    let r: DetachResponse = client.post(path, Some(&device_request(&u, &client, &me, action, &cert)?))?;
    match r.effective_at {
        Some(at) => {
            let when = time::OffsetDateTime::from_unix_timestamp(at)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default();
            println!(
                "The certificate {cert} leaves {} at {when}, with all its devices, unless one of them cancels.",
                me.login
            );
        }
        None => println!("The detachment of {cert} from {} is cancelled.", me.login),
    }
    Ok(())
}

/// `kalit vault unregister --relay URL DEVICE [--login L] [--proof-key KEY]`.
pub fn unregister(dir: &Path, relay: &str, device: &str, login: Option<&str>, proof_key: Option<&str>) -> CliResult {
    let client = Client::new(relay, "relay")?;
    let vault = Vault::open(dir)?;
    let me = pick_device(&vault, &client, login)?;
    let u = unlock(&vault, &mut Prompter::new())?;
    let target = if device.len() == 32 {
        device.to_ascii_lowercase()
    } else {
        // A prefix, as printed by `kalit vault devices`: resolve it on the relay's list.
        if device.len() < 6 {
            return Err(CliError::new(ErrorCode::Usage, "give at least 6 characters of the device id"));
        }
        let list: DeviceList = client.post("/v1/devices", Some(&device_request(&u, &client, &me, "list", "")?))?;
        let hits: Vec<_> =
            list.devices.iter().filter(|d| d.device_id.starts_with(&device.to_ascii_lowercase())).collect();
        match hits.as_slice() {
            [one] => one.device_id.clone(),
            [] => return Err(CliError::new(ErrorCode::NotFound, format!("no device {device} for {}", me.login))),
            _ => {
                return Err(CliError::new(
                    ErrorCode::Usage,
                    format!("{device} matches several devices; give more characters"),
                ));
            }
        }
    };
    let mut req = device_request(&u, &client, &me, "remove", &target)?;
    if let Some(k) = proof_key {
        // The certificate of the device being removed agrees, over this request's nonce.
        let nonce = statement::b64("nonce", &req.nonce, 32)?;
        let st = Statement::device_removal(&me.relay_id, &nonce, &me.login, &me.device_id, &target);
        let (sig, chain) = u.sign_statement(k, &st)?;
        req.proof = Some(proof(&sig, &chain));
    }
    let _: serde_json::Value = client.post("/v1/devices/remove", Some(&req))?;
    if target == me.device_id {
        u.forget_device(&me.device_id)?;
        println!("Removed this phone ({target}) from {} at {}.", me.login, client.base());
    } else if vault.devices()?.iter().any(|d| d.device_id == target) {
        u.forget_device(&target)?;
        println!("Removed this phone's registration {target} from {} at {}.", me.login, client.base());
    } else {
        println!("Removed device {target} from {}.", me.login);
    }
    Ok(())
}
