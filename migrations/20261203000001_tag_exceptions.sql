-- One-time exceptions ("break glass"): a project admin lets one refused change through, once.
--
-- Whether a project takes exceptions at all: `allowed`, `four-eyes` (a second admin approves each
-- before it can be used) or `off`.
alter table projects add column exceptions text not null default 'allowed'
    constraint projects_exceptions_check check (exceptions in ('allowed', 'four-eyes', 'off'));

create table tag_exceptions (
    id bigint generated always as identity primary key,
    project_id bigint not null references projects (id) on delete cascade,
    repository text not null,
    -- What it is for: one tag of the repository, or one digest (a manifest or blob to delete).
    tag text,
    digest text,
    operation text not null check (operation in ('overwrite', 'delete')),
    -- An overwrite only with this digest (none: with any).
    to_digest text,
    reason text not null check (length(btrim(reason)) > 0),
    granted_by text not null,
    granted_at timestamptz not null default now(),
    expires_at timestamptz not null,
    -- Set at grant, or (four-eyes) by a second admin; until then it cannot be used.
    approved_by text,
    approved_at timestamptz,
    -- The one use: when, by whom (a service token's name, or `gateway`), and what it let through.
    used_at timestamptz,
    used_by text,
    used_for text,
    revoked_by text,
    revoked_at timestamptz,
    constraint tag_exceptions_one_target check ((tag is null) <> (digest is null)),
    constraint tag_exceptions_overwrite_of_a_tag check (operation = 'delete' or tag is not null),
    constraint tag_exceptions_to_digest_on_overwrite check (operation = 'overwrite' or to_digest is null),
    constraint tag_exceptions_expiry check (expires_at > granted_at and expires_at <= granted_at + interval '24 hours'),
    constraint tag_exceptions_used_or_revoked check (used_at is null or revoked_at is null)
);
create index tag_exceptions_project_granted on tag_exceptions (project_id, granted_at desc);
-- What the enforcement caches load: the ones not used or revoked yet.
create index tag_exceptions_open on tag_exceptions (project_id) where used_at is null and revoked_at is null;

-- Every process keeps the usable exceptions in memory; these triggers tell all of them about
-- every change (grant, approval, use, revocation, a project's setting), with the project id as
-- payload. One trigger function serves every per-project channel, named by the trigger's argument;
-- the rules' triggers move to it too.
create function tagward_notify_project() returns trigger language plpgsql as $$
declare
    changed_project bigint;
begin
    if TG_TABLE_NAME = 'projects' then
        changed_project := case when TG_OP = 'DELETE' then old.id else new.id end;
    else
        changed_project := case when TG_OP = 'DELETE' then old.project_id else new.project_id end;
    end if;
    perform pg_notify(TG_ARGV[0], changed_project::text);
    return null;
end
$$;

drop trigger immutability_rules_notify on immutability_rules;
drop trigger projects_notify on projects;
drop function tagward_notify_policy();
create trigger immutability_rules_notify after insert or update or delete on immutability_rules
    for each row execute function tagward_notify_project('tagward_rules');
create trigger projects_notify after insert or update of name or delete on projects
    for each row execute function tagward_notify_project('tagward_rules');

create trigger tag_exceptions_notify after insert or update or delete on tag_exceptions
    for each row execute function tagward_notify_project('tagward_exceptions');
create trigger projects_exceptions_notify after update of exceptions on projects
    for each row execute function tagward_notify_project('tagward_exceptions');
