//! Who is calling the Harbor-compatible API: a portal user with HTTP Basic (verified once, then
//! remembered briefly) or a service token acting within its grant.

use super::{HarborError, HarborState};
use app::locks::Locked;
use app::principal::{Denied, Principal};
use app::store;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers successful Basic logins for a minute, keyed by a hash of the credentials, so a
/// script's every request does not cost an argon2 verification. An entry holds the user's session
/// epoch, so it stops counting the moment their password changes.
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<[u8; 32], (i64, i32, Instant)>>,
}

const CREDENTIALS_TTL: Duration = Duration::from_secs(60);
const MAX_CACHED_CREDENTIALS: usize = 10_000;

impl CredentialCache {
    pub(super) fn lookup(&self, key: &[u8; 32]) -> Option<(i64, i32)> {
        let entries = self.entries.locked();
        entries.get(key).filter(|(_, _, at)| at.elapsed() < CREDENTIALS_TTL).map(|(id, epoch, _)| (*id, *epoch))
    }

    pub(super) fn remember(&self, key: [u8; 32], id: i64, epoch: i32) {
        let mut entries = self.entries.locked();
        if entries.len() >= MAX_CACHED_CREDENTIALS {
            entries.retain(|_, (_, _, at)| at.elapsed() < CREDENTIALS_TTL);
        }
        entries.insert(key, (id, epoch, Instant::now()));
    }
}

/// Who is calling: a portal user (HTTP Basic), or a service token (bearer) acting within its
/// grant (`rules:read` / `rules:write`, perhaps limited to some projects).
pub struct Caller(pub Principal);

impl From<Denied> for HarborError {
    fn from(denied: Denied) -> Self {
        HarborError::new(StatusCode::FORBIDDEN, denied.0)
    }
}

impl FromRequestParts<HarborState> for Caller {
    type Rejection = HarborError;

    async fn from_request_parts(parts: &mut Parts, state: &HarborState) -> Result<Self, Self::Rejection> {
        use axum::http::Method;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !crate::csrf::same_origin(&parts.headers) {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), "Harbor API: cross-site write refused");
            return Err(HarborError::new(StatusCode::FORBIDDEN, "cross-site requests may not change anything"));
        }
        let unauthorized = || {
            HarborError::new(
                StatusCode::UNAUTHORIZED,
                "log in with HTTP Basic (a portal user) or a bearer service token",
            )
        };
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        if let Some(presented) = value.strip_prefix("Bearer ") {
            let token = state.enforcer.token(presented).ok_or_else(unauthorized)?;
            return Ok(Caller(token.principal.clone()));
        }
        let encoded = value.strip_prefix("Basic ").ok_or_else(unauthorized)?;
        let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(unauthorized)?;
        let (name, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
        let key = app::account::token_sha256(&decoded);
        if let Some((id, epoch)) = state.credentials.lookup(&key) {
            if let Some((user, current)) = store::active_user(&state.pool, id).await? {
                if current == epoch {
                    return Ok(Caller(Principal::User(user)));
                }
            }
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        let address = app::state::client_address(peer, &parts.headers, &state.trusted_proxies);
        match state
            .throttle
            .check_credentials(&state.pool, state.directory.as_deref(), name, password.to_owned(), address)
            .await?
        {
            Some((user, epoch)) => {
                state.credentials.remember(key, user.id, epoch);
                Ok(Caller(Principal::User(user)))
            }
            None => {
                tracing::info!(username = ?name, %address, "Harbor API: wrong user name or password");
                Err(unauthorized())
            }
        }
    }
}
