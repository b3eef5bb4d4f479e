//! Drift detection: of the tags a registry event or a sync pass found moved or gone, the
//! immutable ones are changes that bypassed enforcement. They are recorded (audit trail, the
//! project's pages, `tagward_tag_drift_total`), and can be put right with Restore.

use crate::enforcement::Enforcer;
use crate::registry::Registry;
use app::policy::{Digest, RepositoryName, Tag};
use app::state::{RegistryAnswer, RegistryRestore};
use app::store::{FoundBy, TagMoved};
use sqlx::PgPool;
use std::collections::BTreeMap;

/// Records the immutable ones of `moved` as drift, by project. A tag counts as immutable under
/// the policy enforcement holds now; under a policy that cannot be evaluated, every tag does (as
/// for decisions). Failing to record is logged, never passed on: the inventory change stands.
pub async fn report(pool: &PgPool, enforcer: &Enforcer, moved: &[TagMoved], found_by: FoundBy) {
    let mut by_project: BTreeMap<&str, Vec<&TagMoved>> = BTreeMap::new();
    for change in moved {
        by_project.entry(change.repository.project()).or_default().push(change);
    }
    for (project, changes) in by_project {
        let protection = enforcer.protection(project).await;
        let Some(policy) = protection.project() else { continue };
        let immutable: Vec<&TagMoved> =
            changes.into_iter().filter(|change| protection.may_protect(&change.repository, &change.tag)).collect();
        if immutable.is_empty() {
            continue;
        }
        for change in &immutable {
            tracing::warn!(
                repository = %change.repository,
                tag = %change.tag,
                held = %change.before,
                found = change.after.as_ref().map_or("(deleted)", Digest::as_str),
                found_by = found_by.as_str(),
                "an immutable tag changed behind tagward's back"
            );
        }
        match app::store::record_drift(pool, policy.id, &immutable, found_by).await {
            Ok(recorded) => enforcer.metrics.record_drift(found_by.as_str(), recorded),
            Err(error) => tracing::error!(%error, project, "drift found but not recorded"),
        }
    }
}

impl RegistryRestore for Registry {
    fn put_back<'a>(&'a self, repository: &'a RepositoryName, tag: &'a Tag, digest: &'a Digest) -> RegistryAnswer<'a> {
        Box::pin(Registry::put_back(self, repository.as_str(), tag.as_str(), digest))
    }
}
