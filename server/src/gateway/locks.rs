//! The gateway's shared locks, without a pooled connection per waiter.
//!
//! Pushes of immutable tags and deletes by digest serialise through PostgreSQL advisory locks, so
//! that gateways sharing a database cannot both let a first push win (or a delete race one).
//! Holding a pooled transaction per guarded request for as long as the registry takes to answer
//! ties the pool to the registry's speed: 48 pushes to a registry answering in 4 s starved a pool
//! of 16 (33 were answered 503). Instead, a few dedicated connections ([`LockConfig::lock_connections`])
//! take *session-level* advisory locks for every key on behalf of the process, and the requests
//! wanting a key queue in the process: a key is taken once per process, shared holders join it,
//! and a key another process holds is polled with `pg_try_advisory_lock` (never a blocking wait
//! that would stall the connection for everyone else). So the database connections the gateway
//! uses for locks are fixed, whatever the concurrency, and one contended key costs one poll, not
//! one connection per waiter.
//!
//! **A lock lost with its connection never leaves a request unguarded.** A session's locks vanish
//! with it (database restart, connection killed). The requests that held them are still bounded:
//! every guarded request ends within [`LockConfig::lock_hold_timeout_seconds`] (its upstream call is
//! cut off after that, 504). A session that comes back after being lost grants nothing for that
//! long, and since a restart drops every gateway's sessions, every gateway waits, so no request
//! guarded by a lost lock can still be in flight when the key is taken again. A network cut that
//! leaves the database's session alive keeps its locks held until PostgreSQL reaps it: others
//! wait (503 past `--lock-timeout`), they never pass. And right before a guarded change is
//! forwarded, its sessions are asked whether they are still there ([`LockGuard::confirm`]): a
//! session lost by then (killed, or the database restarted) refuses the change.

use crate::metrics::Metrics;
use app::locks::Locked;
use clap::Args;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How the gateway takes its shared locks.
#[derive(Debug, Clone, Args)]
pub struct LockConfig {
    /// Dedicated database connections the gateway takes its shared locks on, whatever the number
    /// of guarded requests in flight (besides the pool, `--db-max-connections`).
    #[arg(long = "lock-connections", env = "TAGWARD_GATEWAY_LOCK_CONNECTIONS", default_value_t = Self::CONNECTIONS)]
    pub lock_connections: usize,

    /// Seconds a push or delete waits for its locks (another request holding them, here or in
    /// another gateway) before it is answered 503.
    #[arg(long = "lock-timeout", env = "TAGWARD_GATEWAY_LOCK_TIMEOUT", default_value_t = Self::TIMEOUT_SECONDS)]
    pub lock_timeout_seconds: u64,

    /// Seconds a request may hold its locks (reading the registry, deciding, the upstream PUT or
    /// DELETE): past it the request is answered 504 and its upstream call cut off. A lock
    /// connection that was lost grants nothing for this long once it is back.
    #[arg(long = "lock-hold-timeout", env = "TAGWARD_GATEWAY_LOCK_HOLD_TIMEOUT", default_value_t = Self::HOLD_SECONDS)]
    pub lock_hold_timeout_seconds: u64,
}

impl LockConfig {
    const CONNECTIONS: usize = 2;
    const TIMEOUT_SECONDS: u64 = 10;
    const HOLD_SECONDS: u64 = 60;

    pub fn hold_timeout(&self) -> Duration {
        Duration::from_secs(self.lock_hold_timeout_seconds)
    }
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            lock_connections: Self::CONNECTIONS,
            lock_timeout_seconds: Self::TIMEOUT_SECONDS,
            lock_hold_timeout_seconds: Self::HOLD_SECONDS,
        }
    }
}

/// Why locks were not had; the request is refused (503), never let through.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock was not free within {0} s (--lock-timeout)")]
    Timeout(u64),
    #[error("the database holding the locks is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the connection holding the locks was lost and came back {0} s ago; locks are granted again once every \
         request the lost ones guarded has ended (--lock-hold-timeout)"
    )]
    Recovering(u64),
}

/// One dedicated connection and the locks taken on it.
struct Session {
    options: PgConnectOptions,
    connection: tokio::sync::Mutex<Option<PgConnection>>,
    /// Bumped whenever the connection is lost: locks taken in an earlier generation are gone.
    generation: AtomicU64,
    /// Whether it has ever connected (the first connection needs no grace).
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    connected_once: bool,
    /// When a connection that came back after being lost may grant locks again.
    granting_from: Option<Instant>,
}

/// A key as the process holds it.
struct Held {
    exclusive: bool,
    /// Requests holding it (shared holders join one database lock).
    holders: usize,
    /// Its database lock is being taken (joiners wait) or released (everyone waits).
    settling: bool,
    session: usize,
    generation: u64,
}

/// The process's keys, and how many requests wait to take each one alone.
#[derive(Default)]
struct Keys {
    held: HashMap<String, Held>,
    /// While a request waits to take a key alone (a delete, for its repository), nobody new
    /// takes it in shared mode: pushes coming one after another cannot starve a delete.
    waiting_alone: HashMap<String, usize>,
}

pub struct Locks {
    sessions: Vec<Session>,
    keys: Mutex<Keys>,
    /// Woken whenever a key changes state.
    changed: Notify,
    timeout: Duration,
    grace: Duration,
    metrics: Arc<Metrics>,
}

/// Locks held until dropped (released in the background, in order).
pub struct LockGuard {
    locks: Arc<Locks>,
    taken: Vec<(String, usize, u64, bool)>,
}

impl Locks {
    pub fn new(database_url: &str, config: &LockConfig, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
        let options = PgConnectOptions::from_str(database_url)?.application_name("tagward gateway locks");
        let sessions = (0..config.lock_connections.max(1))
            .map(|_| Session {
                options: options.clone(),
                connection: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                state: Mutex::new(SessionState::default()),
            })
            .collect();
        Ok(Arc::new(Self {
            sessions,
            keys: Mutex::new(Keys::default()),
            changed: Notify::new(),
            timeout: Duration::from_secs(config.lock_timeout_seconds),
            grace: config.hold_timeout(),
            metrics,
        }))
    }

    /// Takes `shared` keys in shared mode, then `exclusive` ones alone (callers list the
    /// repository's key before its tags', and these are sorted, so two requests never wait on each
    /// other crosswise).
    pub async fn acquire(self: &Arc<Self>, shared: &[String], exclusive: &[String]) -> Result<LockGuard, LockError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let _waiting = self.metrics.lock_waiting();
        let mut exclusive = exclusive.to_vec();
        exclusive.sort();
        let mut guard = LockGuard { locks: self.clone(), taken: Vec::new() };
        let wanted = shared.iter().map(|key| (key, false)).chain(exclusive.iter().map(|key| (key, true)));
        for (key, alone) in wanted {
            let (session, generation) = self.take(key, alone, deadline).await.inspect_err(|error| {
                self.metrics.record_lock_refused(match error {
                    LockError::Timeout(_) => "timeout",
                    LockError::Unavailable(_) => "database-unavailable",
                    LockError::Recovering(_) => "recovering",
                });
            })?;
            guard.taken.push((key.clone(), session, generation, alone));
        }
        self.metrics.record_lock_wait(started.elapsed());
        Ok(guard)
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.locked()
    }

    /// One key: joined (shared, already held in shared mode here), or claimed here and then taken
    /// at the database.
    async fn take(&self, key: &str, exclusive: bool, deadline: Instant) -> Result<(usize, u64), LockError> {
        let mut waiting = WaitingAlone { locks: self, key, counted: false };
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let claimed = {
                let mut keys = self.keys();
                let others_wait_alone =
                    keys.waiting_alone.get(key).copied().unwrap_or(0) > usize::from(waiting.counted);
                match keys.held.get_mut(key) {
                    Some(held) if !exclusive && !held.exclusive && !held.settling && !others_wait_alone => {
                        held.holders += 1;
                        return Ok((held.session, held.generation));
                    }
                    None if !others_wait_alone || exclusive => {
                        let session = self.session_of(key);
                        keys.held.insert(
                            key.to_owned(),
                            Held { exclusive, holders: 1, settling: true, session, generation: 0 },
                        );
                        Some(session)
                    }
                    _ => {
                        if exclusive && !waiting.counted {
                            *keys.waiting_alone.entry(key.to_owned()).or_default() += 1;
                            waiting.counted = true;
                        }
                        None
                    }
                }
            };
            let Some(session) = claimed else {
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    return Err(LockError::Timeout(self.timeout.as_secs()));
                }
                continue;
            };
            drop(waiting);
            let taken = self.lock_at_database(session, key, exclusive, deadline).await;
            {
                let mut keys = self.keys();
                match &taken {
                    Ok(generation) => {
                        if let Some(held) = keys.held.get_mut(key) {
                            held.settling = false;
                            held.generation = *generation;
                        }
                    }
                    Err(_) => {
                        keys.held.remove(key);
                    }
                }
            }
            self.changed.notify_waiters();
            return taken.map(|generation| (session, generation));
        }
    }

    /// The session a key's database lock is taken on (always the same one: it must also release it).
    fn session_of(&self, key: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.sessions.len() as u64) as usize
    }

    /// `pg_try_advisory_lock[_shared]` on the session, polled (5 ms, doubling to 100 ms) while
    /// another process holds the key.
    async fn lock_at_database(
        &self,
        index: usize,
        key: &str,
        exclusive: bool,
        deadline: Instant,
    ) -> Result<u64, LockError> {
        let Some(session) = self.sessions.get(index) else { return Err(LockError::Unavailable("no session".into())) };
        let sql = if exclusive {
            "select pg_try_advisory_lock(hashtextextended($1, 0))"
        } else {
            "select pg_try_advisory_lock_shared(hashtextextended($1, 0))"
        };
        let mut pause = Duration::from_millis(5);
        loop {
            let attempt = tokio::time::timeout_at(deadline, async {
                let mut connection = session.connection.lock().await;
                let generation = self.connected(session, &mut connection).await?;
                let Some(open) = connection.as_mut() else {
                    return Err(LockError::Unavailable("not connected".into()));
                };
                match sqlx::query_scalar::<_, bool>(sql).bind(key).fetch_one(open).await {
                    Ok(granted) => Ok((granted, generation)),
                    Err(error) => {
                        Self::lost(session, &mut connection);
                        Err(LockError::Unavailable(error.to_string()))
                    }
                }
            })
            .await
            .map_err(|_| LockError::Timeout(self.timeout.as_secs()))??;
            match attempt {
                (true, generation) => return Ok(generation),
                (false, _) if Instant::now() + pause >= deadline => {
                    return Err(LockError::Timeout(self.timeout.as_secs()))
                }
                (false, _) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// The session's connection, made if there is none; its generation. A connection made after
    /// one was lost grants nothing for the grace period.
    async fn connected(&self, session: &Session, connection: &mut Option<PgConnection>) -> Result<u64, LockError> {
        if connection.is_none() {
            let made = session.options.connect().await.map_err(|error| LockError::Unavailable(error.to_string()))?;
            *connection = Some(made);
            let mut state = session.state.locked();
            if state.connected_once {
                state.granting_from = Some(Instant::now() + self.grace);
                tracing::warn!(
                    grace = self.grace.as_secs(),
                    "a lock connection is back; it grants nothing for the grace"
                );
            }
            state.connected_once = true;
        }
        let granting_from = session.state.locked().granting_from;
        if let Some(from) = granting_from {
            let now = Instant::now();
            if now < from {
                let back_for = self.grace.saturating_sub(from - now).as_secs();
                return Err(LockError::Recovering(back_for));
            }
        }
        Ok(session.generation.load(Ordering::SeqCst))
    }

    /// The connection failed: its locks are gone, a new one will be made.
    fn lost(session: &Session, connection: &mut Option<PgConnection>) {
        *connection = None;
        session.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Releases `taken` (in reverse order): a key's database lock goes when its last holder here
    /// lets go, on the session that took it, unless that session was lost meanwhile.
    async fn release(&self, taken: Vec<(String, usize, u64, bool)>) {
        for (key, index, generation, exclusive) in taken.into_iter().rev() {
            let last = {
                let mut keys = self.keys();
                match keys.held.get_mut(&key) {
                    Some(held) if held.holders > 1 => {
                        held.holders -= 1;
                        false
                    }
                    Some(held) => {
                        held.settling = true;
                        true
                    }
                    None => false,
                }
            };
            if !last {
                continue;
            }
            if let Some(session) = self.sessions.get(index) {
                let mut connection = session.connection.lock().await;
                let current = session.generation.load(Ordering::SeqCst) == generation;
                if let (true, Some(open)) = (current, connection.as_mut()) {
                    let sql = if exclusive {
                        "select pg_advisory_unlock(hashtextextended($1, 0))"
                    } else {
                        "select pg_advisory_unlock_shared(hashtextextended($1, 0))"
                    };
                    if let Err(error) = sqlx::query_scalar::<_, bool>(sql).bind(&key).fetch_one(open).await {
                        // The session is gone, and its locks with it.
                        tracing::warn!(%error, "a lock connection failed while releasing; its locks are gone");
                        Self::lost(session, &mut connection);
                    }
                }
            }
            self.keys().held.remove(&key);
            self.changed.notify_waiters();
        }
    }
}

/// Counts a request among those waiting to take a key alone, while it waits.
struct WaitingAlone<'a> {
    locks: &'a Locks,
    key: &'a str,
    counted: bool,
}

impl Drop for WaitingAlone<'_> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut keys = self.locks.keys();
        if let Some(count) = keys.waiting_alone.get_mut(self.key) {
            *count -= 1;
            if *count == 0 {
                keys.waiting_alone.remove(self.key);
            }
        }
        drop(keys);
        self.locks.changed.notify_waiters();
    }
}

impl LockGuard {
    /// Whether the locks are still held at the database, asked right before the guarded change is
    /// forwarded: a session lost since they were taken refuses it (a killed connection would
    /// otherwise leave the change to race another gateway).
    pub async fn confirm(&self) -> Result<(), LockError> {
        let mut asked: Vec<usize> = Vec::new();
        for (_, index, generation, _) in &self.taken {
            if asked.contains(index) {
                continue;
            }
            asked.push(*index);
            let Some(session) = self.locks.sessions.get(*index) else { continue };
            let mut connection = session.connection.lock().await;
            let lost = || LockError::Unavailable("the connection holding the locks was lost".into());
            if session.generation.load(Ordering::SeqCst) != *generation {
                return Err(lost());
            }
            let Some(open) = connection.as_mut() else { return Err(lost()) };
            if let Err(error) = sqlx::query("select 1").execute(open).await {
                Locks::lost(session, &mut connection);
                return Err(LockError::Unavailable(error.to_string()));
            }
        }
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let taken = std::mem::take(&mut self.taken);
        if taken.is_empty() {
            return;
        }
        let locks = self.locks.clone();
        tokio::spawn(async move { locks.release(taken).await });
    }
}
