//! The API's error type: every failure maps to a status and a JSON body
//! `{"error":"<snake_case_code>","message":"<human reason>"}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store_error::StoreError;
use crate::wire::{ErrorBody, ERROR_HEADER};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Content-Range: bytes */<length>` for a 416, as RFC 9110 asks.
    pub unsatisfiable_length: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            unsatisfiable_length: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            StoreError::ChecksumMismatch(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checksum_mismatch",
                message,
            ),
            StoreError::CrcMismatch { .. } => Self::bad_request("crc_mismatch", message),
            StoreError::LengthMismatch { .. } => Self::bad_request("incomplete_body", message),
            StoreError::FragmentExists => {
                Self::new(StatusCode::CONFLICT, "fragment_exists", message)
            }
            StoreError::Read(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "read_error", message)
            }
            StoreError::Write(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "write_error", message)
            }
            // The write was not acknowledged and the node takes no more: 503, so the
            // writer goes elsewhere (the gateway replaces the node, repair picks
            // another target).
            StoreError::Fsync(_) | StoreError::WritesRefused(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "writes_refused", message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(ERROR_HEADER, HeaderValue::from_static(self.code));
        if let Some(length) = self.unsatisfiable_length {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_RANGE, value);
            }
        }
        response
    }
}
