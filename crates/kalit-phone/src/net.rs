//! The phone's requests to the RA (enrolment, paper steps 5-8) and the relay (registration, device list,
//! detachment, removal: steps 9-17 with the fixes of docs/PROTOCOL.md). The ceremonies themselves (what
//! is signed, what the answer must attest) are `kalit_core::ceremony`; this module moves them over HTTP
//! with an unlocked vault. Nothing here prints: steps go to a [`Progress`], results are returned.

use kalit_core::ceremony::{self, Registration};
use kalit_core::flow::Failure;
use kalit_core::statement::{self, Statement};
use kalit_core::{display, x509};
use kalit_proto::ErrorCode;
use kalit_proto::namespace::{CANCEL_DETACH, DETACH};
use kalit_proto::ra::{IssueRequest, IssueResponse};
use kalit_proto::relay::{
    DetachResponse, DeviceList, DeviceRequest, NonceResponse, RegisterOutcome, RegisterResponse, RelayIdentity,
    WELL_KNOWN_PATH,
};
use kalit_vault::{DeviceRecord, Unlocked, Vault};

use crate::client::Client;
use crate::{PhoneError, PhoneResult, Progress};

/// A certificate the RA issued and the phone installed.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The certificate.
    pub cert: kalit_proto::vault::CertInfo,
    /// Its serial as the RA reports it (escape before showing).
    pub serial: String,
    /// The CSR that was sent, PEM.
    pub csr: String,
}

/// Enrolment with an unlocked vault: CSR to the RA, checks (for this key, chains to the anchors), install.
/// `anchors`: the RA's root as published; `None` trusts the root the RA sends (its fingerprint is reported
/// as a warning, to compare with the one the RA gave the person).
pub fn enrol(
    vault: &Vault,
    u: &Unlocked<'_>,
    client: &Client,
    key: &str,
    code: &str,
    anchors: Option<Vec<Vec<u8>>>,
    progress: &mut dyn Progress,
) -> PhoneResult<Enrolled> {
    let info = vault.key(key)?;
    // The RA takes the subject from its own record; the CSR's subject is only a placeholder.
    let csr = u.csr(key, &format!("CN={}", key.replace([',', '/', '\\'], " ")))?;
    progress.step(&format!(
        "[registration 5] Sending a CSR for key {key:?} (SHA256:{}) to the RA at {}",
        info.fingerprint,
        client.base()
    ));
    let resp: IssueResponse =
        client.post("/v1/certificates", Some(&IssueRequest { code: code.into(), csr: csr.clone() }))?;
    let chain = x509::parse_cert_bundle(resp.chain.as_bytes())?;
    let (leaf, rest) =
        chain.split_first().ok_or_else(|| PhoneError::new(ErrorCode::Unavailable, "the RA sent no certificate"))?;
    let spki = x509::cert_spki(leaf)?;
    if x509::fingerprint(&spki) != info.fingerprint {
        return Err(PhoneError::new(
            ErrorCode::KeyMismatch,
            "the RA answered with a certificate for another key; nothing was installed",
        ));
    }
    let anchors = match anchors {
        Some(a) => a,
        None => {
            let root = rest
                .last()
                .ok_or_else(|| PhoneError::new(ErrorCode::UntrustedCertificate, "the RA sent no CA chain"))?;
            progress.warn(&format!(
                "no --ca given; trusting the RA's own root, SHA-256 {} — compare it with the fingerprint your RA gave you",
                statement::cert_fingerprint(root)
            ));
            vec![root.clone()]
        }
    };
    x509::check_chain(leaf, rest, &anchors, time::OffsetDateTime::now_utc())?;
    let cert = u.install_cert(key, resp.chain.as_bytes())?;
    progress.step("[registration 6] The certificate is for this key and chains to the RA's root: installed.");
    Ok(Enrolled { cert, serial: resp.serial, csr })
}

/// The relay's identity, checked (its key is 32 bytes and its id is that key's id), with its raw key.
pub fn relay_identity(client: &Client) -> PhoneResult<(RelayIdentity, Vec<u8>)> {
    let id: RelayIdentity = client.get(WELL_KNOWN_PATH)?;
    let pk = ceremony::check_relay_identity(&id)?;
    Ok((id, pk))
}

/// A fresh relay nonce, checked.
pub(crate) fn nonce(client: &Client) -> PhoneResult<Vec<u8>> {
    let n: NonceResponse = client.post::<(), _>("/v1/nonce", None)?;
    Ok(ceremony::check_nonce(&n.nonce)?)
}

fn failure(e: impl Into<PhoneError>) -> Failure {
    let e = e.into();
    Failure::new(e.code, e.message)
}

/// Registration with an unlocked vault: a new device key, the certificate's statement, this phone's
/// approval when it already has a registration under the login, and the relay's attestation checked and
/// kept.
pub fn register(
    vault: &Vault,
    u: &Unlocked<'_>,
    client: &Client,
    key: &str,
    login: &str,
    device_name: &str,
    progress: &mut dyn Progress,
) -> PhoneResult<DeviceRecord> {
    let login = statement::normalize_login(login)?;
    let (ident, relay_pk) = relay_identity(client)?;
    let mine: Vec<DeviceRecord> =
        vault.devices()?.into_iter().filter(|d| d.relay_id == ident.relay_id && d.login == login).collect();
    if mine.iter().any(|d| d.key_label == key) {
        return Err(PhoneError::new(
            ErrorCode::AlreadyExists,
            format!("this phone is already registered as {login} at {}", client.base()),
        ));
    }
    // A registration of this phone under the login (with another key) approves the new certificate.
    let approver = mine.into_iter().next();
    progress.step(&format!(
        "[registration 9] Relay {} ({}), id {}",
        display::field(&ident.name, 80),
        client.base(),
        display::field(&ident.relay_id, 64)
    ));
    let chain = vault.certificate_chain(key)?;
    if chain.is_empty() {
        return Err(PhoneError::new(
            ErrorCode::RefusedByPolicy,
            format!("key {key:?} has no certificate: enrol it first (kalit vault enrol) or install one"),
        ));
    }
    let nonce = nonce(client)?;
    let device = u.new_device()?;
    let device_key = device.public_key_raw().to_vec();
    let registration = Registration {
        relay: (&ident, &relay_pk),
        nonce: &nonce,
        login: &login,
        device_key: &device_key,
        device_name,
        chain: &chain,
    };
    let mut sign_approval = |st: &Statement| -> Result<Vec<u8>, Failure> {
        let a = approver.as_ref().ok_or_else(|| Failure::new(ErrorCode::Internal, "no approver"))?;
        u.sign_as_device(&a.device_id, st).map_err(failure)
    };
    if let Some(a) = &approver {
        progress
            .step(&format!("[registration 13] This phone's registration {} approves the new certificate", a.device_id));
    }
    let (req, pending) = registration.start(
        |st| u.sign_statement(key, st).map_err(failure),
        approver.as_ref().map(|a| (a.device_id.as_str(), &mut sign_approval as &mut dyn FnMut(&Statement) -> _)),
    )?;
    progress.step(&format!(
        "[registration 10-14] Sending {login}, the certificate chain and a new device key, signed over the relay's nonce"
    ));
    let resp: RegisterResponse = client.post("/v1/register", Some(&req)).map_err(|e| {
        if e.code == ErrorCode::LoginTaken {
            PhoneError::new(
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
    let attestation = pending.finish(&resp)?;
    let rec = u.save_device(
        device,
        DeviceRecord {
            format: String::new(),
            device_id: String::new(),
            relay_url: client.base().to_string(),
            relay_id: ident.relay_id.to_string(),
            relay_public_key: ident.public_key.encode(),
            login: login.clone(),
            key_label: key.to_string(),
            attestation,
            created: String::new(),
        },
    )?;
    let what = match resp.outcome {
        RegisterOutcome::Created => "registered the new login",
        RegisterOutcome::Added => "added this phone to the existing login",
    };
    progress.step(&format!(
        "[registration 15-17] The relay {what} {login}; its signed attestation verified and is kept in the vault."
    ));
    Ok(rec)
}

/// This phone's registration at the relay behind `client`, found by the relay's id (so a relay that moved
/// to another URL is still recognised).
pub fn pick_device(vault: &Vault, client: &Client, login: Option<&str>) -> PhoneResult<DeviceRecord> {
    let (ident, _) = relay_identity(client)?;
    find_registration(vault, &ident.relay_id, login, || {
        format!("this phone is not registered at {} (kalit vault register)", client.base())
    })
}

/// This phone's one registration at the relay `relay_id` (for `login`, when it has several there);
/// `not_found` says what to do when there is none.
pub fn find_registration(
    vault: &Vault,
    relay_id: &str,
    login: Option<&str>,
    not_found: impl FnOnce() -> String,
) -> PhoneResult<DeviceRecord> {
    let login = login.map(statement::normalize_login).transpose()?;
    let mut found: Vec<DeviceRecord> = vault
        .devices()?
        .into_iter()
        .filter(|d| d.relay_id == relay_id && login.as_ref().is_none_or(|l| *l == d.login))
        .collect();
    match found.len() {
        0 => Err(PhoneError::new(ErrorCode::NotFound, not_found())),
        1 => Ok(found.remove(0)),
        // Several registrations of one login (one per certificate): any of them speaks for the login.
        _ if found.iter().all(|d| d.login == found[0].login) => {
            found.sort_by(|a, b| a.created.cmp(&b.created));
            Ok(found.remove(0))
        }
        _ => Err(PhoneError::new(ErrorCode::Usage, "this phone has several logins at that relay: add --login")),
    }
}

fn device_request(
    u: &Unlocked<'_>,
    client: &Client,
    me: &DeviceRecord,
    action: &str,
    target: &str,
) -> PhoneResult<DeviceRequest> {
    let nonce = nonce(client)?;
    Ok(ceremony::device_request(&me.relay_id, &nonce, &me.login, &me.device_id, action, target, |st| {
        u.sign_as_device(&me.device_id, st).map_err(failure)
    })?)
}

/// The devices of this registration's login, with pending detachments.
pub fn devices(u: &Unlocked<'_>, client: &Client, me: &DeviceRecord) -> PhoneResult<DeviceList> {
    client.post("/v1/devices", Some(&device_request(u, client, me, "list", "")?))
}

/// Asks the relay to detach the certificate `cert` (SHA-256, hex) from the login after its cooling-off
/// period, or (`cancel`) cancels such a request from a device of that certificate.
pub fn detach(
    u: &Unlocked<'_>,
    client: &Client,
    me: &DeviceRecord,
    cert: &str,
    cancel: bool,
) -> PhoneResult<DetachResponse> {
    let cert = check_cert_fingerprint(cert)?;
    let (action, path) =
        if cancel { (CANCEL_DETACH, "/v1/certificates/cancel-detach") } else { (DETACH, "/v1/certificates/detach") };
    client.post(path, Some(&device_request(u, client, me, action, &cert)?))
}

/// A certificate's SHA-256 fingerprint as the person typed it: 64 hex characters, lowercased.
pub fn check_cert_fingerprint(cert: &str) -> PhoneResult<String> {
    let cert = cert.to_ascii_lowercase();
    if cert.len() != 64 || !cert.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PhoneError::new(
            ErrorCode::Usage,
            "give the certificate's SHA-256 fingerprint (64 hex characters, as kalit vault devices --json shows)",
        ));
    }
    Ok(cert)
}

/// Which device a removal removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// This phone's own registration (forgotten in the vault too).
    ThisPhone(String),
    /// Another registration this phone held (another certificate), forgotten too.
    OtherRegistrationOfThisPhone(String),
    /// Another device of the login.
    Other(String),
}

/// Removes a device (full id, or a prefix of at least 6 characters resolved on the relay's list) from the
/// login. `proof_key`: when the device registered with another certificate, that certificate's key agrees
/// over this request's nonce (`kalit/v1/device-removal`).
pub fn unregister(
    vault: &Vault,
    u: &Unlocked<'_>,
    client: &Client,
    me: &DeviceRecord,
    device: &str,
    proof_key: Option<&str>,
) -> PhoneResult<Removed> {
    let target = if device.len() == 32 {
        device.to_ascii_lowercase()
    } else {
        if device.len() < 6 {
            return Err(PhoneError::new(ErrorCode::Usage, "give at least 6 characters of the device id"));
        }
        let list = devices(u, client, me)?;
        let hits: Vec<_> =
            list.devices.iter().filter(|d| d.device_id.starts_with(&device.to_ascii_lowercase())).collect();
        match hits.as_slice() {
            [one] => one.device_id.clone(),
            [] => return Err(PhoneError::new(ErrorCode::NotFound, format!("no device {device} for {}", me.login))),
            _ => {
                return Err(PhoneError::new(
                    ErrorCode::Usage,
                    format!("{device} matches several devices; give more characters"),
                ));
            }
        }
        .to_string()
    };
    let mut req = device_request(u, client, me, "remove", &target)?;
    if let Some(k) = proof_key {
        let nonce = req.nonce.clone();
        let st = Statement::device_removal(&me.relay_id, &nonce, &me.login, &me.device_id, &target);
        let (sig, chain) = u.sign_statement(k, &st)?;
        req.proof = Some(ceremony::cert_proof(&sig, &chain));
    }
    let _: serde_json::Value = client.post("/v1/devices/remove", Some(&req))?;
    if target == me.device_id {
        u.forget_device(&me.device_id)?;
        Ok(Removed::ThisPhone(target))
    } else if vault.devices()?.iter().any(|d| d.device_id == target) {
        u.forget_device(&target)?;
        Ok(Removed::OtherRegistrationOfThisPhone(target))
    } else {
        Ok(Removed::Other(target))
    }
}
