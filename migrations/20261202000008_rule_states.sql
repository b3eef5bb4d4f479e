-- A rule's state: `enforced` (denies what it protects), `evaluating` (runs beside the enforced
-- rules, denies nothing, and each push or delete it would have refused is recorded) or `disabled`.
alter table immutability_rules add column state text not null default 'enforced'
    constraint immutability_rules_state_check check (state in ('enforced', 'evaluating', 'disabled'));
update immutability_rules set state = case when enabled then 'enforced' else 'disabled' end;

-- `enabled` stays for processes of the previous version during a rolling upgrade (they read and
-- write only it). This trigger keeps it equal to `state = 'enforced'` whatever writes `state`, and
-- derives `state` when only `enabled` was written.
create function immutability_rules_state_from_enabled() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        if new.state = 'enforced' and not new.enabled then
            new.state := 'disabled';
        end if;
    elsif new.state is not distinct from old.state and new.enabled is distinct from old.enabled then
        new.state := case when new.enabled then 'enforced' else 'disabled' end;
    end if;
    new.enabled := new.state = 'enforced';
    return new;
end;
$$;
create trigger immutability_rules_state_from_enabled before insert or update on immutability_rules
    for each row execute function immutability_rules_state_from_enabled();

-- A denial an evaluating rule would have made: the request was allowed, and this records what
-- would have refused it (folded like denials; `rule_ids` are the evaluating rules).
alter table enforcement_denials add column evaluated boolean not null default false;
