//! Kalit's sans-I/O core: the crypto facade over aws-lc-rs, X.509 and CMS helpers, and the
//! protocol's state machines ([`flow`]).
//!
//! Architecture invariants: no file, network or clock access here (time and randomness come in from the
//! caller or from aws-lc-rs's RNG); every secret lives in a [`secret`] newtype; private-key operations go
//! through [`keys::PrivateKey`] only.

pub mod alg;
pub mod ceremony;
pub mod cms;
pub mod csr;
pub mod der;
pub mod digest;
pub mod display;
pub mod error;
#[cfg(feature = "session")]
pub mod flow;
pub mod keys;
pub mod ocsp;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod purpose;
pub mod seal;
pub mod secret;
#[cfg(feature = "session")]
pub mod session;
pub mod statement;
pub mod tsp;
pub mod verify;
pub mod x509;

pub use alg::{KeyAlgorithm, SignScheme};
pub use error::CoreError;
pub use secret::{SecretBytes, SecretString};
