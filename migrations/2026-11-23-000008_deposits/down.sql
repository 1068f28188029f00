DROP TABLE deposits;
DROP INDEX payouts_undeposited;
ALTER TABLE payouts
    DROP COLUMN deposit_id,
    DROP COLUMN payout_date;
