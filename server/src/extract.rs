//! axum's extractors with their rejections answered in the API's own error body, so that a client
//! of the decision API always reads the OCI format and a Harbor client Harbor's — never a
//! framework's `text/plain` (a path id past `i64`, a query that does not parse, a body too large).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::marker::PhantomData;

/// An API's error, made from a rejected request.
pub trait Rejection: IntoResponse {
    fn rejected(status: StatusCode, message: String) -> Self;
}

/// The request part `X` (e.g. `axum::extract::Path<T>`, `Query<T>`), or `E`.
pub struct Checked<X, E>(pub X, pub PhantomData<fn() -> E>);

impl<X, E, S> FromRequestParts<S> for Checked<X, E>
where
    X: FromRequestParts<S> + Send,
    E: Rejection,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let extracted = X::from_request_parts(parts, state).await.map_err(IntoResponse::into_response);
        match extracted {
            Ok(value) => Ok(Self(value, PhantomData)),
            Err(response) => Err(rejected(response).await),
        }
    }
}

/// The whole body (within the route's size limit and the listener's time limit), or `E`.
pub struct Body<E>(pub Bytes, pub PhantomData<fn() -> E>);

impl<E, S> FromRequest<S> for Body<E>
where
    E: Rejection,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &S) -> Result<Self, E> {
        let extracted = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response);
        match extracted {
            Ok(bytes) => Ok(Self(bytes, PhantomData)),
            Err(response) => Err(rejected(response).await),
        }
    }
}

/// The framework's rejection (status and its one-line text) as `E`.
async fn rejected<E: Rejection>(response: Response) -> E {
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
    E::rejected(status, String::from_utf8_lossy(&text).trim().to_owned())
}
