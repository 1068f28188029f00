ALTER TABLE record_log
    DROP COLUMN span_id,
    DROP COLUMN trace_id;
