-- Run by `tally migrate` on its own connection before the pending
-- migrations (storage::run_migrations). The helpers live in pg_temp: they
-- belong to this session only, so they are never part of the schema and
-- every migration, old or new, finds the same ones.
--
-- On a Citus coordinator (the citus extension installed in this database)
-- the tables are distributed as the migrations create them: every
-- merchant-keyed table by merchant_id, colocated with record_log, so all of
-- one merchant's rows share a node and a request's statements are router
-- queries; the few global tables become reference tables (a copy on every
-- node). On plain PostgreSQL both helpers do nothing.
--
-- citus.enable_unsafe_triggers: Citus refuses CREATE TRIGGER on a
-- distributed table unless this is on (a trigger that reads other shards
-- could see an inconsistent picture, or deadlock). Tally's triggers only
-- read and write rows of the merchant whose row fired them, in tables
-- colocated with it: on a shard they run as local queries on the same
-- node, in the same transaction. Citus checks the setting at DDL time only.
CREATE FUNCTION pg_temp.tally_on_citus() RETURNS boolean LANGUAGE sql AS
    $$ SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') $$;

DO $$
BEGIN
    IF pg_temp.tally_on_citus() THEN
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', false);
        -- A migration creates tables and then functions in one transaction;
        -- Citus propagates a function over one connection per node, which
        -- it can only do if the DDL before it did too.
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', false);
    END IF;
END $$;

CREATE FUNCTION pg_temp.tally_distribute(rel regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_temp.tally_on_citus() THEN
        RETURN;
    END IF;
    IF rel = 'record_log'::regclass THEN
        EXECUTE format('SELECT create_distributed_table(%L, %L)', rel::text, 'merchant_id');
    ELSE
        EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                       rel::text, 'merchant_id', 'record_log');
    END IF;
END $$;

CREATE FUNCTION pg_temp.tally_reference(rel regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF pg_temp.tally_on_citus() THEN
        EXECUTE format('SELECT create_reference_table(%L)', rel::text);
    END IF;
END $$;
