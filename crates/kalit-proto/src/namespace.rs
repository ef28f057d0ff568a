//! Signing namespaces (domain separation).
//!
//! Architecture invariant: a user's certificate key signs only (a) documents the person approved on the
//! phone and (b) statements that start with one of these namespaces, built by the phone itself. A new kind
//! of statement gets a new namespace; a namespace is never reused with another field layout.

/// Prefix of every Kalit statement.
pub const PREFIX: &str = "kalit/v1/";

/// Registration of a login at a relay (issue: registration).
pub const REGISTER: &str = "kalit/v1/register";
/// Proof of possession of a certificate already attached to a login.
pub const LOGIN_PROOF: &str = "kalit/v1/login-proof";
/// Tunnel id derivation from the QR secret.
pub const TUNNEL: &str = "kalit/v1/tunnel";
/// Noise pre-shared key derivation from the QR secret.
pub const PSK: &str = "kalit/v1/psk";
/// A request signed by a registered device key (list or remove devices).
pub const DEVICE_REQUEST: &str = "kalit/v1/device-request";
/// The relay's attestation that a certificate and a device key belong to a login.
pub const ATTESTATION: &str = "kalit/v1/attestation";
/// Short authentication string derivation from the Noise handshake hash.
pub const SAS: &str = "kalit/v1/sas";
/// The phone asks the relay to join a tunnel (the `action` of a device request).
pub const TUNNEL_JOIN: &str = "tunnel-join";
