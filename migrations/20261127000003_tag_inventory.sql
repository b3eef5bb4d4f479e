-- What tagward knows of the registry's tags: recorded by the gateway as pushes and deletes pass
-- through it, and reconciled by a background sync that reads the registry's catalog and tag lists
-- (pushes made straight to the registry). Read by the Tags tab and the impact preview; never by
-- enforcement, which asks the registry itself.
create table registry_tags (
    -- The repository's first path segment: the project it belongs to, whether or not tagward has
    -- that project yet.
    project text not null,
    -- The full repository name, e.g. `shop/team/app`.
    repository text not null,
    tag text not null,
    digest text not null,
    -- When the tag came to point at `digest`, as far as tagward knows: the time the gateway let
    -- the push through, or the time a sync first read it there.
    pushed_at timestamptz not null,
    -- The last time the gateway or a sync confirmed the tag at `digest`.
    seen_at timestamptz not null,
    -- Who saw the tag at `digest` first: `gateway` or `sync`.
    source text not null check (source in ('gateway', 'sync')),
    primary key (repository, tag)
);
create index registry_tags_by_project on registry_tags (project, repository, tag);
create index registry_tags_by_digest on registry_tags (repository, digest);

-- The background sync's progress and health (one row). A pass reads the catalog in order and
-- every repository's tags in order, saving its place after each page, so that a pass interrupted
-- (registry down, process stopped) resumes where it was rather than starting over.
create table registry_sync (
    singleton boolean primary key default true check (singleton),
    -- The registry read (for the notice; credentials never stored).
    registry text not null,
    -- When the pass under way (or the last one) started; rows not confirmed since belong to
    -- repositories gone from the catalog and are removed when the pass completes.
    pass_started_at timestamptz not null,
    -- Where the pass under way is: the last repository finished, or the one being read and its
    -- last tag stored. Null when no pass is under way.
    resume_repository text,
    resume_tag text,
    -- When the repository being read started to be read (its rows not confirmed since are gone).
    repository_started_at timestamptz,
    -- The last pass that read the whole catalog: when it started (what the inventory is at least
    -- as fresh as) and finished, and what it found.
    completed_started_at timestamptz,
    completed_at timestamptz,
    repositories bigint,
    tags bigint,
    -- The last failure, cleared by the next success.
    failed_at timestamptz,
    failure text
);
