//! The one error type of the HTTP services and its mapping to answers, in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kalit_core::CoreError;
use kalit_proto::{ApiError, ErrorBody, ErrorCode};

/// A failure to answer with: client mistakes keep their message; internal failures are logged and
/// answered with a generic message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    /// Stable code (decides the HTTP status).
    pub code: ErrorCode,
    /// Message for the client (never secrets).
    pub message: String,
    /// Seconds for `Retry-After` on 429.
    pub retry_after: Option<u64>,
}

/// Result of a handler.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError { code, message: message.into(), retry_after: None }
    }

    /// `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// An internal failure; `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, detail.to_string())
    }

    /// `rate_limited`, retry after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        ServiceError {
            retry_after: Some(secs.max(1)),
            ..Self::new(ErrorCode::RateLimited, "too many requests; slow down")
        }
    }
}

impl From<CoreError> for ServiceError {
    fn from(e: CoreError) -> Self {
        ServiceError::new(e.code(), e.to_string())
    }
}

impl From<kalit_core::error::Failure> for ServiceError {
    fn from(e: kalit_core::error::Failure) -> Self {
        ServiceError::new(e.code, e.message)
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if matches!(self.code, ErrorCode::Internal | ErrorCode::Io | ErrorCode::Corrupt) {
            tracing::error!(code = %self.code, detail = %self.message, "internal error");
            "internal error; the operator's log has the details".to_string()
        } else {
            self.message
        };
        let body = ApiError { error: ErrorBody { code: self.code, message } };
        let mut resp = (status, Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Turns axum's JSON extractor rejections (bad syntax, wrong types, unknown fields, wrong content type,
/// body too large) into our error shape.
pub fn json_rejection(r: axum::extract::rejection::JsonRejection) -> ServiceError {
    use axum::extract::rejection::JsonRejection as J;
    match r {
        J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ServiceError::new(ErrorCode::TooLarge, "request body too large")
        }
        J::MissingJsonContentType(_) => ServiceError::invalid("expected Content-Type: application/json"),
        other => ServiceError::invalid(format!("malformed request: {}", other.body_text())),
    }
}

/// A JSON extractor whose rejections use [`ServiceError`].
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    axum::Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await.map_err(json_rejection)?;
        Ok(JsonBody(v))
    }
}

/// A query-string extractor whose rejections use [`ServiceError`] (`invalid_input`, JSON), not axum's text.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ServiceError::invalid(format!("malformed query: {}", e.body_text())))?;
        Ok(QueryParams(v))
    }
}

/// Fallback for unknown paths: a JSON 404 with a stable code.
pub async fn not_found() -> ServiceError {
    ServiceError::new(ErrorCode::NotFound, "no such endpoint; see /openapi.json")
}
