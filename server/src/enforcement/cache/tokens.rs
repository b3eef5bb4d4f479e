//! Every unrevoked service token, by the hash of its secret.

use app::locks::ReadWrite;
use app::store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// A service token as requests present it.
#[derive(Debug)]
pub struct ServiceToken {
    pub id: i64,
    /// The token as a caller (`Principal::Token`: its name and grant), made once when loaded.
    pub principal: app::principal::Principal,
    /// When it was last presented (Unix seconds), written to the database in batches.
    pub last_used: AtomicI64,
}

/// Every unrevoked service token, by the SHA-256 of its secret.
#[derive(Default)]
pub struct TokenCache {
    tokens: RwLock<HashMap<[u8; 32], Arc<ServiceToken>>>,
}

impl TokenCache {
    /// The token whose secret is `presented`, if it is valid and not revoked.
    pub fn find(&self, presented: &str) -> Option<Arc<ServiceToken>> {
        let hash = app::account::token_sha256(presented);
        self.tokens.reading().get(&hash).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ServiceToken>> {
        self.tokens.reading().values().cloned().collect()
    }

    pub(super) fn replace_all(&self, active: Vec<store::ActiveToken>) {
        let mut tokens = self.tokens.writing();
        let last_used: HashMap<i64, i64> =
            tokens.values().map(|token| (token.id, token.last_used.load(Ordering::Relaxed))).collect();
        *tokens = active
            .into_iter()
            .filter_map(|token| {
                let hash: [u8; 32] = token.sha256.as_slice().try_into().ok()?;
                let last_used = AtomicI64::new(last_used.get(&token.id).copied().unwrap_or(0));
                let principal = app::principal::Principal::Token(app::principal::ServiceToken {
                    id: token.id,
                    name: token.name,
                    grant: token.grant,
                });
                Some((hash, Arc::new(ServiceToken { id: token.id, principal, last_used })))
            })
            .collect();
    }
}
