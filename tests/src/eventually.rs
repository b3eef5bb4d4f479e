//! The suite's one way to wait: ask until the answer is the one wanted, for a bounded time, and
//! when it never comes, fail naming what was waited for and the last answer seen. No test sleeps
//! a fixed time hoping something happened meanwhile.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] asks again.
const POLL: Duration = Duration::from_millis(10);

/// Polls `check` until it answers `Ok`, for at most `within`, and returns that value with how long
/// it took. `check` answers `Err` with what it saw instead; if `within` passes first, this panics
/// with `what` and that.
pub async fn eventually<T, Check, Answer>(what: &str, within: Duration, mut check: Check) -> (T, Duration)
where
    Check: FnMut() -> Answer,
    Answer: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return (value, started.elapsed()),
            Err(seen) if started.elapsed() >= within => {
                panic!("{what}: not within {within:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`eventually`] for a condition with nothing to show: `done` says whether it holds yet.
pub async fn until<Done, Answer>(what: &str, within: Duration, mut done: Done) -> Duration
where
    Done: FnMut() -> Answer,
    Answer: Future<Output = bool>,
{
    let check = || {
        let answer = done();
        async move {
            if answer.await {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        }
    };
    eventually(what, within, check).await.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_first_good_answer() {
        let asked = AtomicU32::new(0);
        let (value, _) = eventually("the third answer", Duration::from_secs(5), || async {
            let n = asked.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= 3 {
                Ok(n)
            } else {
                Err(format!("answer {n}"))
            }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "the impossible: not within 50ms; last seen: still no")]
    async fn names_what_it_waited_for_and_what_it_saw() {
        eventually::<(), _, _>("the impossible", Duration::from_millis(50), || async { Err("still no".to_owned()) })
            .await;
    }
}
