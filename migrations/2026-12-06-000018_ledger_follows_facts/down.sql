DROP INDEX payouts_deposit;
DROP INDEX jobs_parked;
ALTER TABLE order_cash_events DROP CONSTRAINT order_cash_events_kind_check;
DELETE FROM order_cash_events WHERE kind = 'refund_reversal';
ALTER TABLE order_cash_events ADD CONSTRAINT order_cash_events_kind_check
    CHECK (kind IN ('invoice', 'payment', 'reversal', 'credit_memo', 'refund'));
DROP TABLE payout_bookings;
ALTER TABLE payouts DROP COLUMN basis, DROP COLUMN round, DROP COLUMN reason;
ALTER TABLE payouts DROP CONSTRAINT payouts_state_check;
UPDATE payouts SET state = 'reversed' WHERE state = 'failed';
ALTER TABLE payouts ADD CONSTRAINT payouts_state_check
    CHECK (state IN ('waiting', 'applied', 'parked', 'reversed'));
DROP INDEX record_log_payout_txns;
CREATE INDEX record_log_payout_txns
    ON record_log (merchant_id, (payload -> 'body' ->> 'payout_id'))
    WHERE outcome = 'accepted' AND kind = 'balance_transaction';
