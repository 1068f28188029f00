-- Back to one accepted row per key: superseded versions and stale arrivals
-- cannot be represented, so they are removed (the current version stays,
-- as 'accepted').
DROP INDEX record_log_versions;
DROP INDEX record_log_order;
DROP INDEX record_log_current_key;
DELETE FROM record_log WHERE outcome IN ('updated', 'stale') AND NOT is_current;
DELETE FROM record_log WHERE outcome = 'accepted' AND NOT is_current;
UPDATE record_log SET outcome = 'accepted', original_id = NULL WHERE is_current;
ALTER TABLE record_log DROP CONSTRAINT record_log_current_check;
ALTER TABLE record_log DROP CONSTRAINT record_log_outcome_check;
ALTER TABLE record_log ADD CONSTRAINT record_log_outcome_check
    CHECK (outcome IN ('accepted', 'duplicate', 'conflict'));
ALTER TABLE record_log DROP COLUMN is_current, DROP COLUMN source_update_time;
CREATE UNIQUE INDEX record_log_accepted_key
    ON record_log (merchant_id, source_system, kind, source_id)
    WHERE outcome = 'accepted';
CREATE INDEX record_log_order
    ON record_log (merchant_id, order_id)
    WHERE outcome = 'accepted' AND order_id IS NOT NULL;
