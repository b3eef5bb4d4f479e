-- The registry's own notifications keep the inventory live: distribution's notification envelope
-- and Harbor's webhook, sent to `POST /api/v1/registry/events` with a service token of the new
-- scope `events`.
alter table service_tokens drop constraint service_tokens_scopes_check;
alter table service_tokens add constraint service_tokens_scopes_check
    check (cardinality(scopes) > 0 and scopes <@ array['decisions', 'rules:read', 'rules:write', 'events']);

-- A row may now come from an event. `seen_at` becomes the time of the latest evidence of the row:
-- the gateway's and the sync's clock when they write it, the registry's time of the event when an
-- event does. An event changes a row only when it is not older than that evidence, so a late or
-- repeated event never undoes a newer state.
alter table registry_tags drop constraint registry_tags_source_check;
alter table registry_tags add constraint registry_tags_source_check check (source in ('gateway', 'sync', 'event'));

-- Deletes the events reported (a tag, or a manifest and every tag on it), for a day: an older push
-- delivered after its delete must not bring the tag back, nor a sync that read the tag before the
-- delete. Events arrive unordered and at least once; a day outlives any sender's retries.
create table registry_deletions (
    repository text not null,
    -- A tag, or a manifest's digest (`sha256:…`; tags cannot contain `:`).
    reference text not null,
    -- The registry's time of the delete.
    deleted_at timestamptz not null,
    primary key (repository, reference)
);
create index registry_deletions_by_age on registry_deletions (deleted_at);

-- The last notification taken (one row): the portal says the inventory follows the registry's
-- events, and since when it last heard of them.
create table registry_event_stream (
    singleton boolean primary key default true check (singleton),
    -- `distribution` or `harbor`.
    sender text not null,
    last_at timestamptz not null,
    notifications bigint not null
);
