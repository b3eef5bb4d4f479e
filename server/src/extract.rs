//! axum's extractors with their rejections answered in the API's own error body, so that a client
//! of the decision API always reads the OCI format and a Harbor client Harbor's — never a
//! framework's `text/plain` (a path id past `i64`, a query that does not parse, a body too large).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// An API's error, made from a rejected request part.
pub trait Rejection: IntoResponse {
    fn rejected(status: StatusCode, message: String) -> Self;
}

/// `axum::extract::Path`, rejected as `E`.
pub struct Path<T, E>(pub T, pub PhantomData<fn() -> E>);

impl<T, E, S> FromRequestParts<S> for Path<T, E>
where
    T: DeserializeOwned + Send,
    E: Rejection,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value, PhantomData)),
            Err(rejection) => Err(E::rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// `axum::extract::Query`, rejected as `E`.
pub struct Query<T, E>(pub T, pub PhantomData<fn() -> E>);

impl<T, E, S> FromRequestParts<S> for Query<T, E>
where
    T: DeserializeOwned + Send,
    E: Rejection,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value, PhantomData)),
            Err(rejection) => Err(E::rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// The whole body (within the route's size limit and the listener's time limit), rejected as `E`.
pub struct Body<E>(pub Bytes, pub PhantomData<fn() -> E>);

impl<E, S> FromRequest<S> for Body<E>
where
    E: Rejection,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &S) -> Result<Self, E> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes, PhantomData)),
            Err(rejection) => Err(E::rejected(rejection.status(), rejection.body_text())),
        }
    }
}
