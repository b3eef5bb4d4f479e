-- A project's tag immutability rules. At most 15 per project, enforced in the transaction that adds
-- one (the project row is locked first), not here, so the message can say so.
create table immutability_rules (
    id bigint generated always as identity primary key,
    -- restrict: a project is deleted only once its rules are gone.
    project_id bigint not null references projects (id) on delete restrict,
    repositories_action text not null check (repositories_action in ('matching', 'excluding')),
    -- The comma-separated patterns as typed (trimmed, repeats removed); the rule engine parsed and
    -- accepted them before they were stored, and parses them again on load.
    repositories text not null,
    tags_action text not null check (tags_action in ('matching', 'excluding')),
    tags text not null,
    enabled boolean not null default true,
    created_by text not null,
    created_at timestamptz not null default now(),
    updated_by text not null,
    updated_at timestamptz not null default now()
);
create index immutability_rules_project_id on immutability_rules (project_id);

-- Who changed what and when: rule changes now, denials and administration later.
create table audit_events (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    -- The actor's name as it was (a user name, `cli:<os user>`, a token name): text, so the trail
    -- outlives the actor.
    actor text not null,
    project_id bigint references projects (id) on delete cascade,
    -- e.g. rule.create, rule.update, rule.enable, rule.disable, rule.delete
    kind text not null,
    rule_id bigint,
    -- The rule before and after the change (null where there is none).
    before jsonb,
    after jsonb
);
create index audit_events_project_at on audit_events (project_id, at desc);
