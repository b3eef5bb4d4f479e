-- users.session_epoch is bumped whenever a user's password changes: a session remembers the epoch it was made in and
-- stops working once it differs, so a new password ends every other session at once.
alter table users add column session_epoch integer not null default 0;

-- The audit trail outlives what it is about: deleting a project keeps its history (and denials).
alter table audit_events drop constraint audit_events_project_id_fkey,
    add constraint audit_events_project_id_fkey foreign key (project_id) references projects (id) on delete set null;
alter table enforcement_denials drop constraint enforcement_denials_project_id_fkey,
    add constraint enforcement_denials_project_id_fkey foreign key (project_id) references projects (id) on delete set null;
