-- What manifests of the registry reference, as tagward has read them: by the gateway (the
-- manifests it reads to decide a delete, the ones pushed to immutable tags through it) and by the
-- sync (the graph of each immutable tag, and what referrers tags list). Manifests are
-- content-addressed, so a row is written once and never changes. Read by the Tags tab and the
-- impact preview to say what immutable tags hold and keep from garbage collection; never by
-- enforcement, which asks the registry itself.
create table registry_manifests (
    repository text not null,
    digest text not null,
    -- An index's manifests: a JSON array of digests, and one of their platforms
    -- (`os/architecture[/variant]`, null where the index names none), in the same order.
    children jsonb not null,
    platforms jsonb not null,
    -- An image's config and layers: a JSON array of `{"digest", "size"}` (sizes as the manifest
    -- declares them).
    blobs jsonb not null,
    -- The manifest this one is attached to (a signature, SBOM or attestation), and what it is.
    subject text,
    artifact_type text,
    read_at timestamptz not null default now(),
    primary key (repository, digest)
);
create index registry_manifests_subject on registry_manifests (repository, subject) where subject is not null;
