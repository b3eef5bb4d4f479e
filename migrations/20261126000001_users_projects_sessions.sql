-- People who log in to the portal.
create table users (
    id bigint generated always as identity primary key,
    name text not null constraint users_name_key unique,
    -- PHC string of an argon2id hash; the password itself is never stored.
    password_hash text not null,
    -- System administrators manage users, projects and service tokens, and see every project.
    is_system_admin boolean not null default false,
    -- A deactivated user cannot log in and their sessions stop working at once.
    is_active boolean not null default true,
    created_at timestamptz not null default now()
);

create table projects (
    id bigint generated always as identity primary key,
    name text not null constraint projects_name_key unique,
    created_at timestamptz not null default now()
);

create table project_members (
    project_id bigint not null references projects (id) on delete cascade,
    user_id bigint not null references users (id) on delete cascade,
    role text not null check (role in ('admin', 'maintainer', 'developer', 'guest')),
    primary key (project_id, user_id)
);
create index project_members_user_id on project_members (user_id);

-- tower-sessions-sqlx-store's table, defined here so that migrations stay the only schema source
-- (the store's own migrate() is never called). Same shape as the store's PostgresStore expects.
create schema tower_sessions;
create table tower_sessions.session (
    id text primary key not null,
    data bytea not null,
    expiry_date timestamptz not null
);
create index session_expiry_date on tower_sessions.session (expiry_date);
