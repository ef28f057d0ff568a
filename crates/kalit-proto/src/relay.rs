//! The relay's HTTP API (the paper's W): identity, nonces, registration, devices.
//!
//! Binary fields travel as standard base64; fingerprints as lowercase hex. Evolution rule: every request
//! body rejects unknown fields (a typo is an error instead of a silently ignored option); every response
//! tolerates them (a newer relay may add fields an older phone ignores). Error codes a peer does not know
//! read as [`crate::ErrorCode::Unknown`]. A change an older peer cannot read bumps the API version.

use serde::{Deserialize, Serialize};

use crate::{Base64, CertFingerprint, DeviceId, Login, RelayId};

/// Version of the relay API (the `/v1/` in paths).
pub const API_VERSION: u32 = 1;
/// The well-known path of [`RelayIdentity`].
pub const WELL_KNOWN_PATH: &str = "/.well-known/kalit-relay";
/// Longest login, in bytes.
pub const MAX_LOGIN_LEN: usize = 64;
/// Most certificates in a chain sent to the relay.
pub const MAX_CHAIN_LEN: usize = 8;

/// The relay's public identity, published at [`WELL_KNOWN_PATH`] so phones can name the relay in what they
/// sign and agents can check its attestations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RelayIdentity {
    /// [`API_VERSION`].
    pub version: u32,
    /// The relay id: the first 16 bytes of SHA-256 over the public key, hex.
    pub relay_id: RelayId,
    /// The relay's Ed25519 attestation key, raw 32 bytes, base64.
    pub public_key: Base64,
    /// The operator's name for this relay.
    pub name: String,
    /// The signing keys the relay key (its root key) endorsed and that are valid now, newest first.
    /// Attestations signed by one carry its endorsement themselves; this list is for operators and
    /// monitoring. Empty while the relay signs with its root key (absent from older relays).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<EndorsedRelayKey>,
}

/// The relay's root key endorses a short-lived signing key (identity rotation): this key may sign the
/// relay's attestations from `not_before` to `not_after`. The relay id stays the root key's id, so phones
/// and agents keep their registrations and pins when the signing key changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RelayKey {
    /// The relay id (the root key's id).
    pub relay_id: RelayId,
    /// The signing key, Ed25519, raw 32 bytes, base64.
    pub public_key: Base64,
    /// Unix time (seconds) from which the key may sign: an attestation it signed is issued no earlier.
    pub not_before: i64,
    /// Unix time (seconds) until which the key may sign: an attestation it signed expires no later.
    pub not_after: i64,
}

/// A [`RelayKey`] with the root key's Ed25519 signature over its `kalit/v1/relay-key` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EndorsedRelayKey {
    /// The endorsed key and its validity.
    pub key: RelayKey,
    /// The root key's signature, base64.
    pub signature: Base64,
}

/// A fresh single-use nonce for one registration or device request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NonceResponse {
    /// 32 random bytes, base64.
    pub nonce: Base64,
    /// Unix time (seconds) after which the relay refuses it.
    pub expires_at: i64,
}

/// A certificate chain and a signature by the leaf certificate's key over a statement built by the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CertProof {
    /// DER certificates, base64, leaf first, at most [`MAX_CHAIN_LEN`].
    pub chain: Vec<Base64>,
    /// Signature over the statement, base64, under the statement scheme fixed by the key type (RSA
    /// PKCS#1 v1.5 SHA-384, ECDSA P-256 with SHA-384, Ed25519ph with context `kalit/v1/statement`), which
    /// no document signature can match.
    pub signature: Base64,
}

/// `POST /v1/register`: attach a device (and its certificate) to a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The login (lowercase letters, digits, `.`, `_`, `-`, `@`; 3 to 64 bytes).
    pub login: Login,
    /// The new device's Ed25519 public key, raw 32 bytes, base64.
    pub device_key: Base64,
    /// A name the person gives the device ("Dilnoza's phone"), shown in device lists.
    pub device_name: String,
    /// The nonce from `POST /v1/nonce`.
    pub nonce: Base64,
    /// The relay id the phone read from the relay's identity (a proof made for another relay fails).
    pub relay_id: RelayId,
    /// The certificate to attach, with a signature over the `kalit/v1/register` statement.
    pub proof: CertProof,
    /// For a new certificate joining a login that already exists: the approval of a device already
    /// registered to that login (a certificate alone cannot join another's login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<DeviceApproval>,
}

/// A registered device of a login approves a new certificate and device joining it: its Ed25519
/// signature over `kalit/v1/device-request` with action `attach`, the registration's nonce, and target
/// `NEW_CERT_FINGERPRINT/NEW_DEVICE_ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceApproval {
    /// The approving device's id.
    pub device_id: DeviceId,
    /// Its signature, base64.
    pub signature: Base64,
}

/// What the relay vouches for: this certificate and this device key belong to this login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Attestation {
    /// The relay id.
    pub relay_id: RelayId,
    /// The login.
    pub login: Login,
    /// SHA-256 of the certificate's DER, hex.
    pub cert_fingerprint: CertFingerprint,
    /// The device id (first 16 bytes of SHA-256 over the device key, hex).
    pub device_id: DeviceId,
    /// The device's Ed25519 public key, base64.
    pub device_key: Base64,
    /// Unix time (seconds) the relay signed it.
    pub issued_at: i64,
    /// Unix time (seconds) after which no one may rely on it. A registration's attestation is a receipt;
    /// a session uses the short-lived one the relay gives the phone when it joins a tunnel.
    pub expires_at: i64,
}

/// An [`Attestation`] with the relay's Ed25519 signature over its `kalit/v2/attestation` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SignedAttestation {
    /// The attested facts.
    pub attestation: Attestation,
    /// Base64 signature.
    pub signature: Base64,
    /// The endorsed signing key that made `signature`; absent when the root key signed. The attestation
    /// must lie within the key's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_key: Option<Box<EndorsedRelayKey>>,
}

/// The answer to a successful registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RegisterResponse {
    /// `created` (a new login) or `added` (a device joined an existing login).
    pub outcome: RegisterOutcome,
    /// The relay's signed attestation.
    pub attestation: SignedAttestation,
}

/// Whether a registration created the login or joined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutcome {
    /// The login did not exist and now belongs to this certificate.
    Created,
    /// The login existed; the phone proved possession of one of its certificates.
    Added,
}

/// `POST /v1/devices` (list), `POST /v1/devices/remove`, `POST /v1/certificates/detach` and
/// `POST /v1/certificates/cancel-detach`: a request signed by a registered device key over the
/// `kalit/v1/device-request` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// The login.
    pub login: Login,
    /// The id of the device making the request.
    pub device_id: DeviceId,
    /// The nonce from `POST /v1/nonce`, or from the join socket's `challenge` event.
    pub nonce: Base64,
    /// The relay id.
    pub relay_id: RelayId,
    /// For removal: the device to remove (may be the requesting one); for detaching: the certificate's
    /// fingerprint. Empty for listing.
    #[serde(default)]
    pub target: String,
    /// Ed25519 signature by the device key, base64.
    pub signature: Base64,
    /// For removing a device registered with another certificate: that certificate's proof over
    /// `kalit/v1/device-removal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<CertProof>,
}

/// One device of a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeviceInfo {
    /// Device id.
    pub device_id: DeviceId,
    /// The name given at registration.
    pub name: String,
    /// SHA-256 of the certificate the device registered with, hex.
    pub cert_fingerprint: CertFingerprint,
    /// That certificate's subject.
    pub cert_subject: String,
    /// Unix time (seconds) of the registration.
    pub registered_at: i64,
}

/// The devices of a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeviceList {
    /// The login.
    pub login: Login,
    /// Its devices, oldest first.
    pub devices: Vec<DeviceInfo>,
    /// Certificates that will be detached from the login (with their devices) when their cooling-off
    /// period ends, unless a device of that certificate cancels.
    #[serde(default)]
    pub pending_detachments: Vec<PendingDetachment>,
}

/// A requested detachment of a certificate from a login, announced to every device of the login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PendingDetachment {
    /// SHA-256 of the certificate, hex.
    pub cert_fingerprint: CertFingerprint,
    /// That certificate's subject.
    pub cert_subject: String,
    /// The device that asked.
    pub requested_by: DeviceId,
    /// Unix time (seconds) of the request.
    pub requested_at: i64,
    /// Unix time (seconds) at which the certificate and its devices leave the login.
    pub effective_at: i64,
}

/// The answer to a detachment request or its cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DetachResponse {
    /// The certificate.
    pub cert_fingerprint: CertFingerprint,
    /// When it will be detached (absent after a cancellation).
    #[serde(default)]
    pub effective_at: Option<i64>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Health {
    /// `ok` when the database answers.
    pub status: String,
    /// The software version.
    pub version: String,
    /// `sqlite` or `postgres` (relay), `sqlite` (RA).
    pub database: String,
}
