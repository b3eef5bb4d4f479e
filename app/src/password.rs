//! Password hashing (argon2id), bounded: how many hashes run and wait at once is capped, and their
//! working memory is reused.

use crate::account::NewPassword;
use crate::locks::Locked;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hashing slot is taken and the queue is full: the caller should try again shortly.
    #[error("{message}")]
    TryLater { message: String, retry_after: u64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A stored argon2id hash. Deliberately neither `Serialize` nor `Display`.
pub struct PasswordHash(pub String);

/// Password hashing is slow and big on purpose (argon2id's defaults: tens of milliseconds of CPU and
/// 19 MiB each), so a flood of login attempts must not run them all at once: at most one per core
/// runs, at most [`MAX_WAITING_HASHES`] wait, and further attempts are answered "try again later"
/// at once. The same process answers the registry's decisions; they must not starve.
struct HashingGate {
    running: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

/// Password hashes waiting for a core, at most.
pub const MAX_WAITING_HASHES: usize = 16;

static HASHING: std::sync::LazyLock<HashingGate> = std::sync::LazyLock::new(|| HashingGate {
    running: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
    waiting: std::sync::atomic::AtomicUsize::new(0),
});

/// Runs `work` (a hash or a verification) on the blocking pool once the gate lets it.
async fn through_hashing_gate<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    use std::sync::atomic::Ordering;
    /// Counts a waiter for as long as it waits, also when its request is dropped meanwhile.
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            HASHING.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if HASHING.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_HASHES {
        HASHING.waiting.fetch_sub(1, Ordering::AcqRel);
        return Err(PasswordError::TryLater { message: "too many password checks under way".into(), retry_after: 1 });
    }
    let waiting = Waiting;
    let permit = HASHING.running.acquire().await.map_err(|e| PasswordError::Unexpected(e.into()))?;
    drop(waiting);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| PasswordError::Unexpected(e.into()))
}

/// Runs `work` with argon2's working memory (19 MiB at the default parameters). The buffers are
/// kept and reused, one per hash that may run at once: allocated afresh each time, freed 19 MiB
/// blocks stay with the allocator's per-thread arenas, and the process grew by hundreds of MiB
/// under a storm of guesses and never gave them back.
fn with_argon2_memory<T>(blocks: usize, work: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    static FREE: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
    let reused = FREE.locked().pop();
    let mut memory =
        reused.filter(|memory| memory.len() >= blocks).unwrap_or_else(|| vec![argon2::Block::default(); blocks]);
    let result = work(memory.get_mut(..blocks).unwrap_or_default());
    FREE.locked().push(memory);
    result
}

fn argon2_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> PasswordError + '_ {
    move |e| PasswordError::Unexpected(anyhow::anyhow!("{what}: {e}"))
}

/// Hashes a password with argon2id at its default parameters (tens of milliseconds on purpose),
/// as a PHC string.
pub async fn hash_password(password: NewPassword) -> Result<PasswordHash, PasswordError> {
    through_hashing_gate(move || {
        use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        let params = argon2::Params::default();
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(argon2_error("salt"))?;
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        with_argon2_memory(params.block_count(), |memory| {
            argon2::Argon2::default().hash_password_into_with_memory(
                password.expose().as_bytes(),
                raw_salt,
                &mut out,
                memory,
            )
        })
        .map_err(|e| PasswordError::Unexpected(anyhow::anyhow!("hashing the password failed: {e}")))?;
        let phc = argon2::password_hash::PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(argon2_error("parameters"))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(argon2_error("output"))?),
        };
        Ok(PasswordHash(phc.to_string()))
    })
    .await?
}

/// A hash of a random password no one knows, made once with the same parameters as real hashes:
/// checked when the user does not exist, so that a wrong user name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Verifies `password` against `hash` (or the dummy hash), through the hashing gate, in reused
/// memory; the comparison is constant-time.
pub async fn verify_password(hash: Option<PasswordHash>, password: String) -> Result<bool, PasswordError> {
    through_hashing_gate(move || {
        use argon2::password_hash::{Output, PasswordHash as Phc};
        let real = hash.is_some();
        let stored = hash.map_or_else(|| dummy_hash().to_owned(), |h| h.0);
        let parsed = Phc::new(&stored).map_err(argon2_error("stored hash is malformed"))?;
        let params = argon2::Params::try_from(&parsed).map_err(argon2_error("stored hash parameters"))?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm).map_err(argon2_error("stored hash algorithm"))?;
        let version = match parsed.version {
            Some(version) => argon2::Version::try_from(version).map_err(argon2_error("stored hash version"))?,
            None => argon2::Version::default(),
        };
        let expected =
            parsed.hash.ok_or_else(|| PasswordError::Unexpected(anyhow::anyhow!("stored hash has no output")))?;
        let salt = parsed.salt.ok_or_else(|| PasswordError::Unexpected(anyhow::anyhow!("stored hash has no salt")))?;
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(argon2_error("stored salt"))?;
        let mut out = vec![0u8; expected.len()];
        let blocks = params.block_count();
        with_argon2_memory(blocks, |memory| {
            argon2::Argon2::new(algorithm, version, params).hash_password_into_with_memory(
                password.as_bytes(),
                raw_salt,
                &mut out,
                memory,
            )
        })
        .map_err(|e| PasswordError::Unexpected(anyhow::anyhow!("verifying the password failed: {e}")))?;
        let matches = Output::new(&out).is_ok_and(|out| out == expected);
        Ok(real && matches)
    })
    .await?
}
