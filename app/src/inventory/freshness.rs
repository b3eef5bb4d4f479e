//! How current the inventory is, in words: the last sync pass, the registry's events, and what
//! failed.

use super::Freshness;
use crate::error::AppError;
use crate::format::ago;
use crate::store::{self, EventStream, SyncState};
use sqlx::PgPool;
use time::OffsetDateTime;

/// The inventory's freshness in words.
pub async fn freshness(pool: &PgPool) -> Result<Freshness, AppError> {
    let (sync, events) = tokio::try_join!(store::sync_state(pool), store::event_stream(pool))?;
    Ok(describe(sync.as_ref(), events.as_ref(), OffsetDateTime::now_utc()))
}

/// The freshness of something kept over the inventory: said to be counted again when it is
/// not `current` (the inventory moved since; the new count is under way).
pub fn kept_freshness(mut freshness: Freshness, current: bool) -> Freshness {
    if !current {
        freshness.summary = format!("being counted again (the inventory changed); {}", freshness.summary);
    }
    freshness
}

pub fn describe(state: Option<&SyncState>, events: Option<&EventStream>, now: OffsetDateTime) -> Freshness {
    let gateway = match events {
        None => "pushes through tagward's gateway are recorded as they happen".to_owned(),
        Some(events) => format!(
            "pushes through tagward's gateway, and those the registry's events report (the last {}), are \
             recorded as they happen",
            ago(events.last_at, now)
        ),
    };
    let Some(state) = state else {
        let summary = match events {
            None => "Only tags pushed through tagward's gateway, recorded as they happen: no sync with the \
                     registry has run, so pushes made straight to it are missing (set TAGWARD_REGISTRY_URL)."
                .to_owned(),
            Some(_) => format!(
                "Only what happened since the registry started sending events: {gateway}; no sync with the \
                 registry has run, so tags pushed before are missing (set TAGWARD_REGISTRY_URL)."
            ),
        };
        return Freshness { summary, problem: None };
    };
    let summary = match state.completed_started_at {
        Some(as_of) => {
            let under_way = if state.in_progress() { "; the next sync is under way" } else { "" };
            format!(
                "As of {} ({}), synced with {}{under_way}; {gateway}.",
                ago(as_of, now),
                crate::shown_time(as_of),
                state.registry
            )
        }
        None => format!(
            "The first sync with {} is under way (started {}): tags it has not reached yet are missing; {gateway}.",
            state.registry,
            ago(state.pass_started_at, now)
        ),
    };
    let problem = state.failed_at.map(|failed_at| {
        format!(
            "The registry at {} could not be read {}: {}. What is shown may be out of date; the sync retries \
             and resumes where it stopped. Rules and decisions are not affected.",
            state.registry,
            ago(failed_at, now),
            state.failure.as_deref().unwrap_or("no reason recorded")
        )
    });
    Freshness { summary, problem }
}
