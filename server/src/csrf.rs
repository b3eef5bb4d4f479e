//! Refuses state-changing requests that a browser sent on behalf of another origin.
//!
//! The session cookie is SameSite=Strict already; this is the second lock. A browser says where a
//! request comes from in `Sec-Fetch-Site` (modern browsers) or `Origin`; a request with neither is not
//! from a browser page, so it carries no ambient cookie worth stealing.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn refuse_cross_origin(request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !same_origin(request.headers()) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-origin request refused");
        return (StatusCode::FORBIDDEN, "cross-origin request refused\n").into_response();
    }
    next.run(request).await
}

pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        // `none`: typed by the user or a bookmark.
        return matches!(site, "same-origin" | "none");
    }
    match (value(header::ORIGIN.as_str()), value(header::HOST.as_str())) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}
