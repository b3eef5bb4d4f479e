-- Bearer tokens of the registry backends that ask for decisions. Only the SHA-256 of a token is
-- stored: tokens are 256 random bits, so a fast hash is enough (nothing to brute-force).
create table service_tokens (
    id bigint generated always as identity primary key,
    name text not null check (name ~ '^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$'),
    token_sha256 bytea not null unique check (octet_length(token_sha256) = 32),
    created_by text not null,
    created_at timestamptz not null default now(),
    -- Written in batches off the request path, so a minute or so behind.
    last_used_at timestamptz,
    revoked_by text,
    revoked_at timestamptz
);
-- A name is reused only once its previous token is revoked; revoked ones stay for the record.
create unique index service_tokens_active_name on service_tokens (name) where revoked_at is null;

-- Every denied push or delete, written off the decision path.
create table enforcement_denials (
    id bigint generated always as identity primary key,
    at timestamptz not null,
    -- The name of the service token that asked.
    token text not null,
    operation text not null check (operation in ('push', 'delete_tag', 'delete_manifest')),
    project_id bigint references projects (id) on delete cascade,
    repository text not null,
    tag text,
    digest text,
    current_digest text,
    rule_ids bigint[] not null,
    message text not null
);
create index enforcement_denials_project_at on enforcement_denials (project_id, at desc);

-- Every process keeps compiled policies and tokens in memory; these triggers tell all of them
-- about every change, whoever makes it (portal, CLI, another instance, psql). Notifications are
-- delivered on commit, and repeats within one transaction are folded into one.
create function tagward_notify_policy() returns trigger language plpgsql as $$
declare
    changed_project bigint;
begin
    if TG_TABLE_NAME = 'projects' then
        changed_project := case when TG_OP = 'DELETE' then old.id else new.id end;
    else
        changed_project := case when TG_OP = 'DELETE' then old.project_id else new.project_id end;
    end if;
    perform pg_notify('tagward_rules', changed_project::text);
    return null;
end
$$;

create trigger immutability_rules_notify after insert or update or delete on immutability_rules
    for each row execute function tagward_notify_policy();
create trigger projects_notify after insert or update of name or delete on projects
    for each row execute function tagward_notify_policy();

create function tagward_notify_tokens() returns trigger language plpgsql as $$
begin
    perform pg_notify('tagward_tokens', '');
    return null;
end
$$;

create trigger service_tokens_notify after insert or update of revoked_at or delete on service_tokens
    for each statement execute function tagward_notify_tokens();
