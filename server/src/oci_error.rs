//! The OCI distribution error body (`{"errors":[{"code","message","detail"}]}`): what registry
//! clients understand, so every answer on the registry's path — the decision API's and the
//! gateway's — uses it.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// The OCI distribution error body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OciErrors {
    pub errors: Vec<OciError>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OciError {
    /// `UNAUTHORIZED`, `NAME_INVALID`, `TAG_INVALID`, `DIGEST_INVALID`, `INVALID_REQUEST`, `DENIED`
    pub code: String,
    pub message: String,
    /// For a malformed request: `{"field": "...", "value": "..."}`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl OciErrors {
    pub fn one(code: &str, message: String, detail: serde_json::Value) -> Self {
        Self { errors: vec![OciError { code: code.to_owned(), message, detail }] }
    }
}

/// An OCI distribution error response.
pub fn response(status: StatusCode, code: &str, message: String, detail: serde_json::Value) -> Response {
    let json = serde_json::to_vec(&OciErrors::one(code, message, detail)).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
