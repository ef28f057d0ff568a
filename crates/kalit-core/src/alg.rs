//! Key algorithms and signature schemes.

use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// A key pair algorithm the vault can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus (import only).
    Rsa4096,
    /// ECDSA on NIST P-256.
    P256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// The algorithms `kalit vault generate` offers.
    pub const GENERATABLE: [KeyAlgorithm; 4] =
        [KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa3072, KeyAlgorithm::P256, KeyAlgorithm::Ed25519];

    /// Stable name, as used on the command line and in files.
    pub const fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::P256 => "p-256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// True for the RSA sizes.
    pub const fn is_rsa(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096)
    }

    /// The signature scheme used for documents and CSRs: PKCS#1 v1.5 unless `pss` is asked for RSA.
    pub fn scheme(self, pss: bool) -> Result<SignScheme, CoreError> {
        match (self, pss) {
            (a, false) if a.is_rsa() => Ok(SignScheme::RsaPkcs1Sha256),
            (a, true) if a.is_rsa() => Ok(SignScheme::RsaPssSha256),
            (KeyAlgorithm::P256, false) => Ok(SignScheme::EcdsaP256Sha256),
            (KeyAlgorithm::Ed25519, false) => Ok(SignScheme::Ed25519),
            (a, _) => Err(CoreError::invalid(format!("--pss applies to RSA keys only; this key is {a}"))),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "rsa-2048" => Ok(KeyAlgorithm::Rsa2048),
            "rsa-3072" => Ok(KeyAlgorithm::Rsa3072),
            "rsa-4096" => Ok(KeyAlgorithm::Rsa4096),
            "p-256" => Ok(KeyAlgorithm::P256),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(CoreError::Unsupported(format!("{other:?} (expected rsa-2048, rsa-3072, p-256 or ed25519)"))),
        }
    }
}

/// A signature scheme over a message (the scheme hashes the message itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    RsaPssSha256,
    /// ECDSA P-256 with SHA-256, DER-encoded signature.
    EcdsaP256Sha256,
    /// Ed25519 (PureEdDSA over the message).
    Ed25519,
}

impl SignScheme {
    /// Stable name, as printed in reports.
    pub const fn name(self) -> &'static str {
        match self {
            SignScheme::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignScheme::RsaPssSha256 => "rsa-pss-sha256",
            SignScheme::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SignScheme::Ed25519 => "ed25519",
        }
    }
}
