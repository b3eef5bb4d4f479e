-- Identical denials (same token, operation, project, repository, tag and digests) that arrive
-- close together are written as one row: `at` is the first, `last_at` the last, `count` how many.
-- A CI job retrying a refused push in a loop thus leaves one row a second, not thousands, and none
-- are dropped for want of room in the writer's queue.
alter table enforcement_denials
    add column count bigint not null default 1 check (count >= 1),
    add column last_at timestamptz;
update enforcement_denials set last_at = at;
alter table enforcement_denials alter column last_at set not null;
