-- Immutable tags found moved or gone by a registry event or a sync pass: changes that bypassed
-- enforcement (a push or delete made straight to the registry, or through another path). Shown on
-- the project's pages until acknowledged; Restore puts the held manifest back on the tag.
create table tag_drift (
    id bigint generated always as identity primary key,
    project_id bigint not null references projects (id) on delete cascade,
    repository text not null,
    tag text not null,
    -- What the inventory held, and what was found instead (null: the tag was gone).
    held_digest text not null,
    found_digest text,
    -- `event` or `sync`.
    found_by text not null check (found_by in ('event', 'sync')),
    found_at timestamptz not null default now(),
    -- Who dealt with it, and how: acknowledged as it is, or restored (which acknowledges it too).
    acknowledged_at timestamptz,
    acknowledged_by text,
    restored boolean not null default false
);
create index tag_drift_open on tag_drift (project_id, found_at) where acknowledged_at is null;
