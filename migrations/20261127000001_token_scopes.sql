-- Service tokens carry scopes (least privilege): `decisions` (the decision API), `rules:read` and
-- `rules:write` (the Harbor-compatible rules API), the rule scopes optionally limited to projects.
alter table service_tokens
    add column scopes text[] not null default '{decisions}'
        check (cardinality(scopes) > 0 and scopes <@ array['decisions', 'rules:read', 'rules:write']),
    -- Null: every project.
    add column projects text[],
    -- Made before scopes existed, when every token could do everything: kept working with every
    -- scope, and marked so an administrator can replace it with a narrower one.
    add column migrated_full_access boolean not null default false;

update service_tokens
set scopes = array['decisions', 'rules:read', 'rules:write'], migrated_full_access = true;
