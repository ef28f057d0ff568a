//! Signing namespaces (domain separation).
//!
//! Architecture invariant: a user's certificate key signs only (a) documents the person approved on the
//! phone and (b) statements that start with one of these namespaces, built by the phone itself. A new kind
//! of statement gets a new namespace; a namespace is never reused with another field layout.

/// Prefix of every Kalit statement.
pub const PREFIX: &str = "kalit/v1/";

/// Registration of a login at a relay (issue: registration).
pub const REGISTER: &str = "kalit/v1/register";
/// The certificate of a device agrees to that device's removal by a device of another certificate.
pub const DEVICE_REMOVAL: &str = "kalit/v1/device-removal";
/// Tunnel id derivation from the QR secret.
pub const TUNNEL: &str = "kalit/v1/tunnel";
/// Noise pre-shared key derivation from the QR secret.
pub const PSK: &str = "kalit/v1/psk";
/// A request signed by a registered device key (list or remove devices).
pub const DEVICE_REQUEST: &str = "kalit/v1/device-request";
/// The relay's attestation that a certificate and a device key belong to a login, until a time.
/// (`kalit/v1/attestation` had no expiry; that layout is retired, never reused.)
pub const ATTESTATION: &str = "kalit/v2/attestation";
/// The relay's statement that the waiting side of a tunnel is a browser page of an origin (direct mode).
pub const ORIGIN: &str = "kalit/v1/origin";
/// The relay's root key endorses a signing key for a time (identity rotation).
pub const RELAY_KEY: &str = "kalit/v1/relay-key";
/// Short authentication string derivation from the Noise handshake hash.
pub const SAS: &str = "kalit/v1/sas";
/// The phone asks the relay to join a tunnel (the `action` of a device request).
pub const TUNNEL_JOIN: &str = "tunnel-join";
/// A registered device of a login lets a new certificate join it (the `action` of a device request;
/// target: `NEW_CERT_FINGERPRINT/NEW_DEVICE_ID`).
pub const ATTACH: &str = "attach";
/// A device asks to detach a certificate from its login after the cooling-off period (target: the
/// certificate's fingerprint).
pub const DETACH: &str = "detach";
/// A device of a certificate cancels a pending detachment of that certificate.
pub const CANCEL_DETACH: &str = "cancel-detach";

/// The statements a person's certificate key signs (under the statement scheme, never a document's).
pub const CERTIFICATE_STATEMENTS: &[&str] = &[REGISTER, DEVICE_REMOVAL];

/// True when `data` starts with a Kalit namespace: such bytes are never signed as a document.
pub fn is_kalit_statement(data: &[u8]) -> bool {
    data.starts_with(b"kalit/")
}
