-- A number per project that changes whenever what its inventory says changes: a tag added, moved
-- to another digest or removed, a manifest read or forgotten. The portal keeps what it counted
-- over a project's inventory (what each rule protects, what immutable tags hold) for the policy
-- and this number it was counted at, and counts again only when either has moved; a sync pass
-- that only confirms what is there changes nothing here.
create table inventory_versions (
    project text primary key,
    version bigint not null
);

-- Statement-level, over the statement's rows: one upsert per project a statement touched,
-- however many rows (a sync page stores hundreds of tags in one statement).
create function tagward_inventory_changed() returns trigger language plpgsql as $$
begin
    insert into inventory_versions (project, version)
    select distinct split_part(repository, '/', 1), 1 from changed
    on conflict (project) do update set version = inventory_versions.version + 1;
    return null;
end $$;

create function tagward_inventory_moved() returns trigger language plpgsql as $$
begin
    insert into inventory_versions (project, version)
    select distinct split_part(after.repository, '/', 1), 1
    from after join before using (repository, tag)
    where after.digest <> before.digest
    on conflict (project) do update set version = inventory_versions.version + 1;
    return null;
end $$;

create trigger registry_tags_added after insert on registry_tags
    referencing new table as changed for each statement execute function tagward_inventory_changed();
create trigger registry_tags_removed after delete on registry_tags
    referencing old table as changed for each statement execute function tagward_inventory_changed();
create trigger registry_tags_moved after update on registry_tags
    referencing old table as before new table as after for each statement execute function tagward_inventory_moved();
create trigger registry_manifests_added after insert on registry_manifests
    referencing new table as changed for each statement execute function tagward_inventory_changed();
create trigger registry_manifests_removed after delete on registry_manifests
    referencing old table as changed for each statement execute function tagward_inventory_changed();
