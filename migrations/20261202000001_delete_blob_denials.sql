-- The gateway and the decision API now also refuse deleting a blob that an immutable tag holds
-- (a layer or config of its image, of an index's child, or of a referrer attached to it).
alter table enforcement_denials drop constraint enforcement_denials_operation_check;
alter table enforcement_denials add constraint enforcement_denials_operation_check
    check (operation in ('push', 'delete_tag', 'delete_manifest', 'delete_blob'));
