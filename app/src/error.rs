//! The error of the portal's server functions: what a page shows, and (on the server) the status.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No session, or its user is gone or deactivated.
    #[error("please log in")]
    Unauthorized,
    /// Logged in, but this is not theirs to do.
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or is not visible to this user (answered alike so names do not leak).
    #[error("{0}")]
    NotFound(String),
    /// Bad input; the message names the field and the value.
    #[error("{0}")]
    Invalid(String),
    /// Bad input in one field: which, its value, and why.
    #[error("{0}")]
    Field(crate::policy::FieldError),
    /// Not now (too many failed logins, too much work of one kind under way); `retry_after` is in
    /// seconds.
    #[error("{message}; try again in {retry_after} seconds")]
    Throttled { message: String, retry_after: u64 },
    /// A service tagward needs for this (the directory) cannot answer now; says which.
    #[error("{0}")]
    Unavailable(String),
    /// The registry refused or failed what tagward asked of it (a Restore); says why.
    #[error("{0}")]
    Registry(String),
    /// Anything else. The cause is logged on the server; the page only learns that it failed.
    #[error("something went wrong on the server; it has been logged")]
    Internal,
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => AppError::Invalid(message),
            _ => AppError::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Invalid(_) | AppError::Field(_) => StatusCode::BAD_REQUEST,
            AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Registry(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs an unexpected failure with its cause chain and hides it from the page.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        tracing::error!(error = format!("{:#}", error.into()), "request failed");
        AppError::Internal
    }
}

impl From<crate::policy::FieldError> for AppError {
    fn from(error: crate::policy::FieldError) -> Self {
        AppError::Field(error)
    }
}

#[cfg(feature = "ssr")]
impl From<crate::password::PasswordError> for AppError {
    fn from(error: crate::password::PasswordError) -> Self {
        crate::store::StoreError::from(error).into()
    }
}

#[cfg(feature = "ssr")]
impl From<crate::store::StoreError> for AppError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::NotFound(message) => AppError::NotFound(message),
            StoreError::Forbidden(message) => AppError::Forbidden(message),
            StoreError::Conflict { message, .. } | StoreError::Refused(message) => AppError::Invalid(message),
            StoreError::TryLater { message, retry_after } => AppError::Throttled { message, retry_after },
            StoreError::Unavailable(message) => AppError::Unavailable(message),
            StoreError::Unexpected(error) => AppError::internal(error),
        }
    }
}
