-- Issue 24: a watch of exception events settles numbers with a probe of
-- the node that draws them. Events are written by the exceptions trigger;
-- on Citus it fires on the merchant's shard, so the number is drawn from
-- that worker's sequence (Citus gives each node its own range) and the
-- write lock is held there: the coordinator's own sequence and pg_locks
-- know nothing of it, and a watch that read them never delivered an event.
-- The probe reads both where it runs, in this order (numbers drawn, then
-- who may still commit); a watch calls it in a router query over one of the
-- merchant's events (storage::exception_events::settling), which Citus
-- sends to the merchant's node and PostgreSQL runs in place.
CREATE FUNCTION exception_events_probe(OUT drawn bigint, OUT vxids text[], OUT prepared boolean[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    drawn := coalesce(pg_sequence_last_value(
                 pg_get_serial_sequence('exception_events', 'sequence')::regclass), 0);
    SELECT coalesce(array_agg(virtualtransaction::text ORDER BY virtualtransaction::text), '{}'),
           coalesce(array_agg(pid IS NULL ORDER BY virtualtransaction::text), '{}')
      INTO vxids, prepared
      FROM pg_locks
     WHERE locktype = 'relation' AND granted AND mode = 'RowExclusiveLock'
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND relation = 'exception_events'::regclass
       AND pid IS DISTINCT FROM pg_backend_pid();
END $$;
