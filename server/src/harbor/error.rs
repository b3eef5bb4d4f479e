//! The Harbor-compatible API's errors, in Harbor's body (`{"errors":[{"code","message"}]}`),
//! each mapped to its status once.

use app::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// A method the path does not take (axum keeps the `Allow` header).
pub(super) async fn method_not_allowed() -> HarborError {
    HarborError::new(StatusCode::METHOD_NOT_ALLOWED, "this method is not allowed here")
}

impl crate::extract::Rejection for HarborError {
    fn rejected(status: StatusCode, message: String) -> Self {
        HarborError::new(status, message)
    }
}

/// Harbor's error body: `{"errors":[{"code","message"}]}`.
#[derive(Debug)]
pub struct HarborError {
    status: StatusCode,
    message: String,
    /// Seconds for `Retry-After` (429).
    retry_after: Option<u64>,
}

impl HarborError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for HarborError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(message) => Self::new(StatusCode::NOT_FOUND, message),
            StoreError::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, message),
            StoreError::Conflict { message, .. } => Self::new(StatusCode::CONFLICT, message),
            StoreError::Refused(message) => Self::bad_request(message),
            StoreError::TryLater { message, retry_after } => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!("{message}; try again in {retry_after} seconds"),
                retry_after: Some(retry_after),
            },
            StoreError::Unavailable(message) => Self::new(StatusCode::SERVICE_UNAVAILABLE, message),
            StoreError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "Harbor API request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "something went wrong on the server; it has been logged")
            }
        }
    }
}

/// Harbor's error body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HarborErrors {
    pub errors: Vec<HarborErrorItem>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HarborErrorItem {
    /// `BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`, `TOO_MANY_REQUESTS`, `SERVICE_UNAVAILABLE`, `INTERNAL_SERVER_ERROR`
    pub code: String,
    pub message: String,
}

impl IntoResponse for HarborError {
    fn into_response(self) -> Response {
        let code = match self.status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::TOO_MANY_REQUESTS => "TOO_MANY_REQUESTS",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
            _ => "INTERNAL_SERVER_ERROR",
        };
        let body = HarborErrors { errors: vec![HarborErrorItem { code: code.into(), message: self.message }] };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="tagward""#));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
