//! Every usable one-time exception, by project.

use app::locks::ReadWrite;
use app::policy::{ExceptionsSwitch, RefusedChange};
use app::store::UsableException;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;

/// Every usable one-time exception, by project id: looked at only when the rules refuse a change
/// (a project without any has no entry). Empty for good when exceptions are switched off.
pub struct ExceptionCache {
    switch: ExceptionsSwitch,
    by_project: RwLock<HashMap<i64, Arc<[UsableException]>>>,
}

impl ExceptionCache {
    pub(super) fn new(switch: ExceptionsSwitch) -> Self {
        Self { switch, by_project: RwLock::default() }
    }

    /// The id of an exception of `project_id` that lets `change` through now, not one of `taken`
    /// (one exception releases one change).
    pub fn releasing(&self, project_id: i64, change: &RefusedChange<'_>, taken: &[i64]) -> Option<i64> {
        let by_project = self.by_project.reading();
        let now = OffsetDateTime::now_utc();
        by_project.get(&project_id)?.iter().find_map(|exception| {
            (exception.expires_at > now && !taken.contains(&exception.id) && exception.scope.releases(change))
                .then_some(exception.id)
        })
    }

    /// How many usable exceptions are held, in all.
    pub fn count(&self) -> usize {
        self.by_project.reading().values().map(|list| list.len()).sum()
    }

    /// Drops `ids` of the project's exceptions now (used here, or found gone), before the
    /// notification that says so arrives.
    pub fn forget(&self, project_id: i64, ids: &[i64]) {
        let mut by_project = self.by_project.writing();
        if let Some(held) = by_project.get(&project_id) {
            let kept = held.iter().filter(|e| !ids.contains(&e.id)).cloned().collect();
            Self::put(&mut by_project, project_id, kept);
        }
    }

    /// Holds `usable` as the project's exceptions; a project without any has no entry.
    fn put(by_project: &mut HashMap<i64, Arc<[UsableException]>>, project_id: i64, usable: Vec<UsableException>) {
        if usable.is_empty() {
            by_project.remove(&project_id);
        } else {
            by_project.insert(project_id, Arc::from(usable));
        }
    }

    pub(super) fn replace_all(&self, usable: Vec<UsableException>) {
        if self.switch == ExceptionsSwitch::Off {
            return;
        }
        let mut by_project: HashMap<i64, Vec<UsableException>> = HashMap::new();
        for exception in usable {
            by_project.entry(exception.project_id).or_default().push(exception);
        }
        *self.by_project.writing() = by_project.into_iter().map(|(id, list)| (id, Arc::from(list))).collect();
    }

    pub(super) fn replace_project(&self, project_id: i64, usable: Vec<UsableException>) {
        if self.switch == ExceptionsSwitch::Off {
            return;
        }
        Self::put(&mut self.by_project.writing(), project_id, usable);
    }
}
