//! Values counted over projects' inventories, kept between pages: recounted once in the background
//! when the project's policy or inventory moves, however many pages ask meanwhile.

use crate::error::AppError;
use crate::locks::Locked;
use crate::policy::PolicyVersion;

/// A value counted over a project's inventory, and whether it is the inventory's current state.
#[derive(Debug, Clone)]
pub struct Kept<T> {
    pub value: T,
    pub current: bool,
}

/// How long a page waits for a count of a policy nothing has been counted for yet (a rule just
/// changed): 100,000 tags take about a tenth of a second.
const FIRST_COUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Values counted over projects' inventories, kept per project for the policy version and the
/// inventory version they were counted at, so a page shows them without counting. When either
/// moves, one count runs in the background (however many pages ask meanwhile); pages get the
/// last value of the same policy until it is done, marked as not current. A policy with
/// nothing counted yet waits for its count, a bounded time.
pub struct Recounted<T> {
    slots: std::sync::Mutex<Option<std::collections::HashMap<String, std::sync::Arc<Slot<T>>>>>,
    /// Projects kept at most; past it, those no page is reading are forgotten.
    projects: usize,
}

pub struct Slot<T> {
    state: std::sync::Mutex<SlotState<T>>,
    counted: tokio::sync::Notify,
}

struct SlotState<T> {
    last: Option<(PolicyVersion, i64, T)>,
    counting: bool,
}

impl<T> Recounted<T> {
    pub const fn new(projects: usize) -> Self {
        Self { slots: std::sync::Mutex::new(None), projects }
    }
}

impl<T: Clone + Send + 'static> Recounted<T> {
    fn slot(&self, project: &str) -> std::sync::Arc<Slot<T>> {
        let mut slots = self.slots.locked();
        let slots = slots.get_or_insert_with(Default::default);
        if slots.len() >= self.projects && !slots.contains_key(project) {
            slots.retain(|_, slot| std::sync::Arc::strong_count(slot) > 1);
        }
        slots
            .entry(project.to_owned())
            .or_insert_with(|| {
                std::sync::Arc::new(Slot {
                    state: std::sync::Mutex::new(SlotState { last: None, counting: false }),
                    counted: tokio::sync::Notify::new(),
                })
            })
            .clone()
    }

    /// The value for `policy` at `inventory`, counting it with `count` if it is not kept.
    pub async fn get(
        &self,
        project: &str,
        policy: &PolicyVersion,
        inventory: i64,
        count: impl std::future::Future<Output = Result<T, AppError>> + Send + 'static,
    ) -> Option<Kept<T>> {
        let slot = self.slot(project);
        let counted = slot.counted.notified();
        tokio::pin!(counted);
        counted.as_mut().enable();
        {
            let mut state = slot.state.locked();
            if let Some((kept_policy, kept_inventory, value)) = &state.last {
                if kept_policy == policy && *kept_inventory == inventory {
                    return Some(Kept { value: value.clone(), current: true });
                }
            }
            if !state.counting {
                state.counting = true;
                tokio::spawn(Self::recount(slot.clone(), policy.clone(), inventory, count));
            }
            if let Some((kept_policy, _, value)) = &state.last {
                if kept_policy == policy {
                    return Some(Kept { value: value.clone(), current: false });
                }
            }
        }
        let _ = tokio::time::timeout(FIRST_COUNT_WAIT, counted).await;
        let state = slot.state.locked();
        let (kept_policy, kept_inventory, value) = state.last.as_ref()?;
        (kept_policy == policy).then(|| Kept { value: value.clone(), current: *kept_inventory == inventory })
    }

    async fn recount(
        slot: std::sync::Arc<Slot<T>>,
        policy: PolicyVersion,
        inventory: i64,
        count: impl std::future::Future<Output = Result<T, AppError>>,
    ) {
        let result = count.await;
        {
            let mut state = slot.state.locked();
            state.counting = false;
            match result {
                Ok(value) => state.last = Some((policy, inventory, value)),
                Err(error) => {
                    tracing::warn!(%error, "counting over the inventory failed; pages show the last count")
                }
            }
        }
        slot.counted.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::Recounted;
    use crate::policy::{PolicyVersion, RuleInput};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn version(tags: &str) -> PolicyVersion {
        PolicyVersion::of([(
            1,
            crate::policy::RuleState::Enforced,
            &RuleInput { tags: tags.into(), ..RuleInput::default() },
        )])
    }

    /// A count that says how often it ran and answers `value` once `go` lets it.
    fn count(
        runs: &Arc<AtomicUsize>,
        value: u64,
        go: tokio::sync::oneshot::Receiver<()>,
    ) -> impl std::future::Future<Output = Result<u64, crate::error::AppError>> + Send + 'static {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let _ = go.await;
            Ok(value)
        }
    }

    fn now() -> tokio::sync::oneshot::Receiver<()> {
        let (tell, go) = tokio::sync::oneshot::channel();
        let _ = tell.send(());
        go
    }

    #[tokio::test]
    async fn counted_once_per_policy_and_inventory_and_recounted_in_the_background() {
        let kept = Recounted::<u64>::new(10);
        let runs = Arc::new(AtomicUsize::new(0));
        let (v, w) = (version("v*"), version("w*"));

        // Nothing kept: the page waits for the first count.
        let first = kept.get("shop", &v, 1, count(&runs, 10, now())).await.unwrap();
        assert_eq!((first.value, first.current), (10, true));
        // Kept: answered without counting.
        let again = kept.get("shop", &v, 1, count(&runs, 99, now())).await.unwrap();
        assert_eq!((again.value, again.current, runs.load(Ordering::SeqCst)), (10, true, 1));

        // The inventory moved: the kept value at once, marked, while one count runs for everyone.
        let (tell, go) = tokio::sync::oneshot::channel();
        let stale = kept.get("shop", &v, 2, count(&runs, 11, go)).await.unwrap();
        assert_eq!((stale.value, stale.current), (10, false));
        let meanwhile = kept.get("shop", &v, 2, count(&runs, 77, now())).await.unwrap();
        assert_eq!((meanwhile.value, meanwhile.current), (10, false));
        tell.send(()).unwrap();
        let mut fresh = kept.get("shop", &v, 2, count(&runs, 77, now())).await.unwrap();
        for _ in 0..100 {
            if fresh.current {
                break;
            }
            tokio::task::yield_now().await;
            fresh = kept.get("shop", &v, 2, count(&runs, 77, now())).await.unwrap();
        }
        assert_eq!((fresh.value, fresh.current, runs.load(Ordering::SeqCst)), (11, true, 2));

        // Another policy: what was counted for the old one is never shown for it.
        let other = kept.get("shop", &w, 2, count(&runs, 5, now())).await.unwrap();
        assert_eq!((other.value, other.current), (5, true));
        // Each project keeps its own.
        let web = kept.get("web", &v, 2, count(&runs, 3, now())).await.unwrap();
        assert_eq!((web.value, web.current, runs.load(Ordering::SeqCst)), (3, true, 4));
    }
}
