//! The CLI's one error type: a stable code plus a message, printed as `error[code]: message`.

use kalit_core::CoreError;
use kalit_proto::ErrorCode;
use kalit_vault::VaultError;

/// An error that ends a command.
#[derive(Debug)]
pub struct CliError {
    pub code: ErrorCode,
    pub message: String,
}

impl CliError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CliError { code, message: message.into() }
    }
    pub fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.to_string();
        move |e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound { ErrorCode::NotFound } else { ErrorCode::Io };
            CliError::new(code, format!("{context}: {e}"))
        }
    }
}

impl From<VaultError> for CliError {
    fn from(e: VaultError) -> Self {
        CliError::new(e.code(), e.to_string())
    }
}

impl From<kalit_core::flow::Failure> for CliError {
    fn from(e: kalit_core::flow::Failure) -> Self {
        CliError::new(e.code, e.message)
    }
}

impl From<kalit_phone::PhoneError> for CliError {
    fn from(e: kalit_phone::PhoneError) -> Self {
        CliError::new(e.code, e.message)
    }
}

/// A terminal prompt's failure inside the phone library's traits.
impl From<CliError> for kalit_phone::PhoneError {
    fn from(e: CliError) -> Self {
        kalit_phone::PhoneError::new(e.code, e.message)
    }
}

impl From<CoreError> for CliError {
    fn from(e: CoreError) -> Self {
        CliError::new(e.code(), e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
