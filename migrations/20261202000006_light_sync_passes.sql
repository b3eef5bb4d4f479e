-- With the registry's events flowing, most sync passes only list tags: a tag the inventory holds
-- keeps its digest without a `HEAD` (an event reports a move), and only tags it does not hold are
-- asked. A full pass, which asks every tag, runs at the configured longer interval, and whenever
-- the registry has sent no event since the last full pass.
alter table registry_sync
    -- Whether the pass under way (or the last one) lists only.
    add column pass_light boolean not null default false,
    -- When the last completed full pass started.
    add column full_started_at timestamptz;
