//! RA errors: a stable code and a message; they become HTTP answers through `kalit-service`.

use kalit_core::CoreError;
use kalit_proto::ErrorCode;
use kalit_service::ServiceError;

/// An RA failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RaError {
    /// Stable code.
    pub code: ErrorCode,
    /// Message (never secrets).
    pub message: String,
}

impl RaError {
    /// An error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RaError { code, message: message.into() }
    }
    /// `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    /// `internal`.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, e.to_string())
    }
    /// `io` with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RaError {
        let context = context.into();
        move |e| RaError::new(ErrorCode::Io, format!("{context}: {e}"))
    }
    pub(crate) fn db(e: sqlx::Error) -> RaError {
        RaError::new(ErrorCode::Internal, format!("RA database: {e}"))
    }
}

impl From<CoreError> for RaError {
    fn from(e: CoreError) -> Self {
        RaError::new(e.code(), e.to_string())
    }
}

impl From<ServiceError> for RaError {
    fn from(e: ServiceError) -> Self {
        RaError::new(e.code, e.message)
    }
}

impl From<RaError> for ServiceError {
    fn from(e: RaError) -> Self {
        ServiceError::new(e.code, e.message)
    }
}
