//! The phone's network half (paper module 2 talking to the RA and the relay): enrolment
//! ([`net::enrol`]), registration and device requests ([`net::register`], [`net::devices`],
//! [`net::detach`], [`net::unregister`]) and the signing session ([`pair::pair`], a tokio driver of
//! `kalit_core::flow::PhoneSession`). Everything that needs the person goes through [`pair::PhoneUi`]
//! and [`Progress`]; the command line (`kalit vault ...`) keeps only arguments, prompts and printing, and
//! another front end (a GUI, a test) implements the same traits.
//!
//! Every string that came from another party (the RA, the relay, the computer) is passed to the traits
//! already escaped by `kalit_core::display`.

pub mod client;
pub mod net;
pub mod pair;

use kalit_core::CoreError;
use kalit_proto::ErrorCode;
use kalit_vault::VaultError;

pub use client::Client;

/// What went wrong, as a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PhoneError {
    /// Stable code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl PhoneError {
    /// An error with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> PhoneError {
        PhoneError { code, message: message.into() }
    }
}

impl From<VaultError> for PhoneError {
    fn from(e: VaultError) -> Self {
        PhoneError::new(e.code(), e.to_string())
    }
}

impl From<CoreError> for PhoneError {
    fn from(e: CoreError) -> Self {
        PhoneError::new(e.code(), e.to_string())
    }
}

impl From<kalit_core::flow::Failure> for PhoneError {
    fn from(e: kalit_core::flow::Failure) -> Self {
        PhoneError::new(e.code, e.message)
    }
}

impl From<kalit_service::ServiceError> for PhoneError {
    fn from(e: kalit_service::ServiceError) -> Self {
        PhoneError::new(e.code, e.message)
    }
}

/// Result of the phone's operations.
pub type PhoneResult<T = ()> = Result<T, PhoneError>;

/// Where the steps of a long operation (enrolment, registration) are reported.
pub trait Progress {
    /// A step done, or about to be.
    fn step(&mut self, text: &str);
    /// Something the person must know (for example a root certificate trusted on first use).
    fn warn(&mut self, text: &str);
}

/// Steps on standard output, warnings on standard error: the command line.
#[derive(Debug, Default)]
pub struct Printed;

impl Progress for Printed {
    fn step(&mut self, text: &str) {
        println!("{text}");
    }

    fn warn(&mut self, text: &str) {
        eprintln!("warning: {text}");
    }
}
