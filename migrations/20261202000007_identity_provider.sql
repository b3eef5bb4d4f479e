-- People who sign in through the organisation's OpenID Connect provider. Such a user has no local
-- password; the provider's issuer and subject (`sub`) identify them, never their user name, which a
-- provider may let people change.
alter table users
    alter column password_hash drop not null,
    add column provider_issuer text,
    add column provider_subject text,
    -- True while the user's system administrator role comes from their provider groups (it is
    -- re-evaluated at each sign-in); a role granted by hand keeps it false and is left alone.
    add column system_admin_from_groups boolean not null default false,
    add constraint users_provider_subject_key unique (provider_issuer, provider_subject),
    -- A user signs in with a password, or through the provider; never both.
    add constraint users_sign_in_check check (
        (provider_subject is null and provider_issuer is null and password_hash is not null)
        or (provider_subject is not null and provider_issuer is not null and password_hash is null));

-- True for a membership a group mapping granted (re-evaluated at each sign-in), false for one
-- granted by hand, which sign-ins never change.
alter table project_members add column from_groups boolean not null default false;

-- What a provider group grants: system administrator, or a role in one project. A user gets the
-- highest project role any of their groups grants.
create table group_role_mappings (
    id bigint generated always as identity primary key,
    group_name text not null check (length(group_name) between 1 and 256),
    -- Null for the system administrator role.
    project_id bigint references projects (id) on delete cascade,
    role text not null check (role in ('system-admin', 'admin', 'maintainer', 'developer', 'guest')),
    created_at timestamptz not null default now(),
    created_by text not null,
    constraint group_role_mappings_scope_check check ((role = 'system-admin') = (project_id is null))
);
create unique index group_role_mappings_key on group_role_mappings (group_name, coalesce(project_id, 0));

-- A sign-in through the provider between leaving for it and coming back. The browser holds a
-- random secret in a cookie; only its SHA-256 is kept. Taken (deleted) by the callback, so a flow
-- is used at most once; older than ten minutes it is worthless.
create table sign_in_flows (
    secret_sha256 bytea primary key,
    -- The OAuth `state`, the OpenID `nonce` and the PKCE verifier sent with this flow.
    state text not null,
    nonce text not null,
    pkce_verifier text not null,
    -- Where the browser goes once signed in (a path of this site).
    next text not null,
    created_at timestamptz not null default now()
);
create index sign_in_flows_created_at on sign_in_flows (created_at);
