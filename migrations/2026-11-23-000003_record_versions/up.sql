-- Records that change at their source (a payout pending -> in transit ->
-- paid, an edited order): a key may now have several versions, ordered by
-- the source's own `source_update_time`. Exactly one row per key is
-- CURRENT (what merging and matching read); superseded versions stay in
-- the log as the record's history.
--
-- outcome 'updated': a later version that superseded the current one
--   (original_id names the version it superseded);
-- outcome 'stale': an earlier version that arrived after a later one
--   (original_id names the current version it lost to); logged, ignored.
ALTER TABLE record_log
    ADD COLUMN source_update_time timestamptz,
    ADD COLUMN is_current boolean NOT NULL DEFAULT false;

ALTER TABLE record_log DROP CONSTRAINT record_log_outcome_check;
ALTER TABLE record_log ADD CONSTRAINT record_log_outcome_check
    CHECK (outcome IN ('accepted', 'updated', 'duplicate', 'conflict', 'stale'));
-- record_log_check2 ((outcome = 'accepted') = (original_id IS NULL)) holds
-- as it is: updated and stale rows name the version they relate to.
-- Only a stored version (accepted or updated) can be current.
ALTER TABLE record_log ADD CONSTRAINT record_log_current_check
    CHECK (NOT is_current OR outcome IN ('accepted', 'updated'));

-- Until now every accepted row was the only version of its key.
UPDATE record_log SET is_current = true WHERE outcome = 'accepted';

-- One CURRENT row per key: the idempotency guarantee, now per version.
DROP INDEX record_log_accepted_key;
CREATE UNIQUE INDEX record_log_current_key
    ON record_log (merchant_id, source_system, kind, source_id)
    WHERE is_current;

-- Merging an order reads its current records.
DROP INDEX record_log_order;
CREATE INDEX record_log_order
    ON record_log (merchant_id, order_id)
    WHERE is_current AND order_id IS NOT NULL;

-- A record's history (every stored version of a key), and payouts looked
-- up by id for the orders whose money they paid out.
CREATE INDEX record_log_versions
    ON record_log (merchant_id, kind, source_id, source_system, record_id)
    WHERE outcome IN ('accepted', 'updated');
