//! Registration and device requests as ceremonies, without I/O, both sides (paper steps 9-17 with the
//! fixes of docs/PROTOCOL.md).
//!
//! Phone: [`Registration::start`] turns the relay's identity and nonce, the login, the new device key and
//! the signatures the vault makes (through callbacks: key handles stay in the vault) into the
//! [`RegisterRequest`] to send and a [`PendingRegistration`]; [`PendingRegistration::finish`] checks the
//! relay's answer (its signature, and that it attests exactly what was asked) and gives the attestation
//! to keep. [`device_request`] builds any device-signed request the same way.
//!
//! Relay: [`check_registration`] does every check of a registration request that needs no store (login,
//! device key and name, the certificate proof over this relay's nonce, the approval's shape); the relay
//! then applies its store rules (a login that exists needs its own certificate or a registered device's
//! approval, checked with [`approval_statement`]). The statement each side signs or checks is built in one
//! place, here.

use kalit_proto::namespace::ATTACH;
use kalit_proto::relay::{
    CertProof, DeviceApproval, DeviceRequest, RegisterRequest, RegisterResponse, RelayIdentity, SignedAttestation,
};
use kalit_proto::{Base64, DeviceId, ErrorCode, RelayId};
use time::OffsetDateTime;

use crate::error::Failure;
use crate::statement::{self, Statement, VerifiedProof};

/// The relay's identity, checked: its key is 32 bytes and its id is that key's id.
pub fn check_relay_identity(ident: &RelayIdentity) -> Result<Vec<u8>, Failure> {
    let pk = statement::bounded("relay public key", &ident.public_key, 32)?.to_vec();
    if pk.len() != 32 || statement::key_id(&pk) != ident.relay_id {
        return Err(Failure::new(ErrorCode::Unavailable, "the relay's identity is inconsistent (key and id differ)"));
    }
    Ok(pk)
}

/// A relay nonce, checked (32 bytes).
pub fn check_nonce(nonce: &Base64) -> Result<Vec<u8>, Failure> {
    let v = statement::bounded("nonce", nonce, 32)?.to_vec();
    if v.len() != 32 {
        return Err(Failure::new(ErrorCode::Unavailable, "the relay sent a malformed nonce"));
    }
    Ok(v)
}

/// What a registered device of the login signs to let a new certificate and device join it
/// (`kalit/v1/device-request`, action `attach`, target `CERT_FINGERPRINT/NEW_DEVICE_ID`).
pub fn approval_statement(
    relay_id: &str,
    nonce: &[u8],
    login: &str,
    approver_device_id: &str,
    cert_fingerprint: &str,
    new_device_id: &str,
) -> Statement {
    let target = format!("{cert_fingerprint}/{new_device_id}");
    Statement::device_request(relay_id, nonce, login, approver_device_id, ATTACH, &target)
}

/// A certificate proof for the wire.
pub fn cert_proof(signature: &[u8], chain: &[Vec<u8>]) -> CertProof {
    CertProof { chain: chain.iter().map(|c| c.as_slice().into()).collect(), signature: signature.into() }
}

/// Signs a statement with a registered device's key (in the vault).
pub type DeviceSigner<'a> = dyn FnMut(&Statement) -> Result<Vec<u8>, Failure> + 'a;

/// The phone's side of a registration, before it is sent.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// The relay's checked identity and raw key.
    pub relay: (&'a RelayIdentity, &'a [u8]),
    /// The relay's fresh nonce.
    pub nonce: &'a [u8],
    /// The login (normalised by [`Registration::start`]).
    pub login: &'a str,
    /// The new device's raw Ed25519 public key.
    pub device_key: &'a [u8],
    /// The name the person gives the device.
    pub device_name: &'a str,
    /// The certificate chain of the key being registered, leaf first.
    pub chain: &'a [Vec<u8>],
}

/// A registration sent and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRegistration {
    relay_id: RelayId,
    relay_public_key: Vec<u8>,
    login: String,
    device_id: String,
    cert_fingerprint: String,
}

impl Registration<'_> {
    /// Builds the request: the certificate key signs the `kalit/v1/register` statement (`sign_cert`:
    /// signature and chain, from the vault), and, when this phone already has a registration under the
    /// login, that device approves the new certificate (`approve`: its id and a signer).
    pub fn start(
        &self,
        sign_cert: impl FnOnce(&Statement) -> Result<(Vec<u8>, Vec<Vec<u8>>), Failure>,
        approve: Option<(&str, &mut DeviceSigner<'_>)>,
    ) -> Result<(RegisterRequest, PendingRegistration), Failure> {
        let login = statement::normalize_login(self.login)?;
        let (ident, relay_pk) = self.relay;
        let leaf = self.chain.first().ok_or_else(|| {
            Failure::new(ErrorCode::RefusedByPolicy, "this key has no certificate: enrol it first or install one")
        })?;
        let fp = statement::cert_fingerprint(leaf);
        let device_id = statement::key_id(self.device_key);
        let (sig, chain) = sign_cert(&Statement::register(&ident.relay_id, self.nonce, &login, self.device_key, &fp))?;
        let approval = match approve {
            None => None,
            Some((approver, sign)) => {
                let st = approval_statement(&ident.relay_id, self.nonce, &login, approver, &fp, &device_id);
                Some(DeviceApproval { device_id: approver.into(), signature: sign(&st)?.into() })
            }
        };
        let req = RegisterRequest {
            login: login.as_str().into(),
            device_key: self.device_key.into(),
            device_name: self.device_name.to_string(),
            nonce: self.nonce.into(),
            relay_id: ident.relay_id.clone(),
            proof: cert_proof(&sig, &chain),
            approval,
        };
        let pending = PendingRegistration {
            relay_id: ident.relay_id.clone(),
            relay_public_key: relay_pk.to_vec(),
            login,
            device_id,
            cert_fingerprint: fp,
        };
        Ok((req, pending))
    }
}

impl PendingRegistration {
    /// The normalised login.
    pub fn login(&self) -> &str {
        &self.login
    }

    /// Checks the relay's answer: signed by the relay's key, and attesting exactly this login,
    /// certificate, device and relay. Nothing is to be saved otherwise.
    pub fn finish(self, resp: &RegisterResponse) -> Result<SignedAttestation, Failure> {
        statement::verify_attestation(&self.relay_public_key, &resp.attestation).map_err(|_| {
            Failure::new(ErrorCode::InvalidSignature, "the relay's attestation does not verify; nothing was saved")
        })?;
        let a = &resp.attestation.attestation;
        if a.login != self.login
            || a.device_id != self.device_id
            || a.cert_fingerprint != self.cert_fingerprint
            || a.relay_id != self.relay_id
        {
            return Err(Failure::new(
                ErrorCode::InvalidSignature,
                "the relay attested something else than was asked; nothing was saved",
            ));
        }
        Ok(resp.attestation.clone())
    }
}

/// A device-signed request (`kalit/v1/device-request`) over the relay's fresh nonce.
#[allow(clippy::too_many_arguments)]
pub fn device_request(
    relay_id: &str,
    nonce: &[u8],
    login: &str,
    device_id: &str,
    action: &str,
    target: &str,
    sign: impl FnOnce(&Statement) -> Result<Vec<u8>, Failure>,
) -> Result<DeviceRequest, Failure> {
    let st = Statement::device_request(relay_id, nonce, login, device_id, action, target);
    Ok(DeviceRequest {
        login: login.into(),
        device_id: device_id.into(),
        nonce: nonce.into(),
        relay_id: relay_id.into(),
        target: target.to_string(),
        signature: sign(&st)?.into(),
        proof: None,
    })
}

/// A registration request that passed every check needing no store.
#[derive(Debug, Clone)]
pub struct CheckedRegistration {
    /// Normalised login.
    pub login: String,
    /// The device's raw public key.
    pub device_key: Vec<u8>,
    /// Its id.
    pub device_id: String,
    /// The device name, trimmed.
    pub device_name: String,
    /// The verified certificate proof.
    pub proof: VerifiedProof,
    /// The approval's signature, when there is one (checked against the approver's key by the relay).
    pub approval: Option<(DeviceId, Vec<u8>)>,
}

/// The relay's checks of a registration that need no store: login syntax, device name (1 to 64 printable
/// characters), a 32-byte device key, and the certificate proof over `kalit/v1/register` for this relay
/// and nonce, chaining to `anchors` at `now`. The nonce is not consumed here.
pub fn check_registration(
    req: &RegisterRequest,
    relay_id: &str,
    nonce: &[u8],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<CheckedRegistration, Failure> {
    let login = statement::normalize_login(&req.login)?;
    let name = req.device_name.trim();
    if name.is_empty() || req.device_name.chars().count() > 64 || req.device_name.chars().any(char::is_control) {
        return Err(Failure::new(ErrorCode::InvalidInput, "device_name must be 1 to 64 printable characters"));
    }
    let device_key = statement::bounded("device_key", &req.device_key, 32)?.to_vec();
    if device_key.len() != 32 {
        return Err(Failure::new(ErrorCode::InvalidInput, "device_key must be a raw 32-byte Ed25519 public key"));
    }
    let proof = statement::verify_proof(&req.proof, anchors, now, |fp| {
        Statement::register(relay_id, nonce, &login, &device_key, fp)
    })?;
    let approval = match &req.approval {
        None => None,
        Some(a) => Some((a.device_id.clone(), statement::bounded("approval signature", &a.signature, 64)?.to_vec())),
    };
    Ok(CheckedRegistration {
        device_id: statement::key_id(&device_key),
        login,
        device_key,
        device_name: name.to_string(),
        proof,
        approval,
    })
}
