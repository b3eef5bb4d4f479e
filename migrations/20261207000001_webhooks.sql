-- Project webhooks, delivered from an outbox, and the audit stream's cursor.

create table webhook_endpoints (
    id bigint generated always as identity primary key,
    project_id bigint not null references projects (id) on delete cascade,
    url text not null,
    -- The event kinds it is sent (drift.found, exception.used, denial, …).
    events text[] not null check (cardinality(events) > 0),
    format text not null check (format in ('cloudevents', 'slack')),
    -- Write-only: every body is signed with it; no page or command shows it again.
    secret text not null,
    -- Write-only too: sent as the `Authorization` header when set.
    authorization_value text,
    created_by text not null,
    created_at timestamptz not null default now(),
    -- Failed attempts in a row; at the pause limit the endpoint is paused until someone resumes it.
    consecutive_failures integer not null default 0,
    paused_at timestamptz,
    unique (project_id, url)
);

-- The outbox: one row per notification and endpoint, written in the transaction of what it
-- reports, then delivered (at least once) by whichever instance claims it first.
create table webhook_deliveries (
    id bigint generated always as identity primary key,
    endpoint_id bigint not null references webhook_endpoints (id) on delete cascade,
    event text not null,
    -- What happened, as the event's `data`; the body sent is built from it in the endpoint's format.
    payload jsonb not null,
    -- What makes it once per endpoint, for notifications nobody's transaction writes (an exception
    -- running out, produced by every instance's scheduler) or that are folded (denials).
    once_key text,
    created_at timestamptz not null default now(),
    state text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- Claimed by an instance until then; a claim that outlives its lease (the instance died
    -- mid-delivery) is taken over.
    lease_until timestamptz,
    last_attempt_at timestamptz,
    last_status integer,
    last_error text,
    delivered_at timestamptz,
    unique (endpoint_id, once_key)
);
-- The claim's order, so that taking the next due ones reads only them however long the queue is.
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at, id) where state = 'pending';
create index webhook_deliveries_endpoint on webhook_deliveries (endpoint_id, id desc);

-- Denials are told at most once per endpoint, rule and repository within a window: the window a
-- key is in, until it closes.
create table webhook_folds (
    endpoint_id bigint not null references webhook_endpoints (id) on delete cascade,
    key text not null,
    until timestamptz not null,
    primary key (endpoint_id, key)
);

-- Wake the delivering instances when notifications are committed (not before: NOTIFY is sent at commit).
create function tagward_webhooks_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('tagward_webhooks', '');
    return null;
end $$;
create trigger webhook_deliveries_notify after insert on webhook_deliveries
    for each statement execute function tagward_webhooks_notify();

-- The audit stream reads rows in commit order: a row's transaction id, and only rows of
-- transactions older than every one still running, so a cursor never skips a row committed late.
alter table audit_events add column txid xid8 not null default pg_current_xact_id();
alter table enforcement_denials add column txid xid8 not null default pg_current_xact_id();
create index audit_events_stream on audit_events (txid, id);
create index enforcement_denials_stream on enforcement_denials (txid, id);

-- Service tokens may read the audit stream.
alter table service_tokens drop constraint service_tokens_scopes_check;
alter table service_tokens add constraint service_tokens_scopes_check
    check (cardinality(scopes) > 0 and scopes <@ array['decisions', 'rules:read', 'rules:write', 'events', 'audit:read']);
