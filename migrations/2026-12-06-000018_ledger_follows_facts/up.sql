-- Issue 18: the ledger follows the facts. A payout's bookings are a function
-- of the current versions of its records: when they change, what it booked
-- is reversed and what the facts now call for is booked again.

-- A payout's balance transactions are their CURRENT versions: a transaction
-- that learns its payout in a later version (or moves to another payout) is
-- found under the payout its current version names. The old index served
-- first versions only.
DROP INDEX record_log_payout_txns;
CREATE INDEX record_log_payout_txns
    ON record_log (merchant_id, (payload -> 'body' ->> 'payout_id'))
    WHERE is_current AND kind = 'balance_transaction';

-- `failed`: the processor says it failed or was canceled; nothing of it is
-- booked (what it had booked was reversed). `reversed` was the same state
-- under an older name.
ALTER TABLE payouts DROP CONSTRAINT payouts_state_check;
UPDATE payouts SET state = 'failed' WHERE state = 'reversed';
ALTER TABLE payouts ADD CONSTRAINT payouts_state_check
    CHECK (state IN ('waiting', 'applied', 'parked', 'failed'));
ALTER TABLE payouts
    -- The facts its bookings were derived from (domain::cash_application::basis):
    -- a job that finds the same basis has nothing to book.
    ADD COLUMN basis  text COLLATE "C",
    -- How many times its bookings were derived again: a re-application's
    -- entries and cash events are keyed with it, so they never collide with
    -- the round they replace.
    ADD COLUMN round  integer NOT NULL DEFAULT 0,
    -- Why it stands where it stands, in words (what is missing, why failed).
    ADD COLUMN reason text COLLATE "C" NOT NULL DEFAULT '';
-- Named, and apart from the column: Citus needs every constraint named.
ALTER TABLE payouts ADD CONSTRAINT payouts_round_check CHECK (round >= 0);
-- Rows applied before bases existed: their basis is unknown, so the next
-- new version of one of their records derives them again.

-- Each booking of a payout (applied, reversed, re-applied), with the newest
-- record version it was derived from: GetPayout's history.
CREATE TABLE payout_bookings (
    merchant_id text COLLATE "C" NOT NULL,
    payout_id   text COLLATE "C" NOT NULL,
    booking_no  integer     NOT NULL CHECK (booking_no >= 1),
    action      text COLLATE "C" NOT NULL CHECK (action IN ('applied', 'reversed', 'reapplied')),
    -- The newest record version (record_log.record_id) among the payout's
    -- and its balance transactions' current versions when it was booked.
    cause_record_id bigint  NOT NULL,
    round       integer     NOT NULL,
    entries     integer     NOT NULL CHECK (entries >= 0),
    booked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, payout_id, booking_no)
);
SELECT pg_temp.tally_distribute('payout_bookings');

-- A refund taken back off its credit memos (its payout was reversed).
ALTER TABLE order_cash_events DROP CONSTRAINT order_cash_events_kind_check;
ALTER TABLE order_cash_events ADD CONSTRAINT order_cash_events_kind_check
    CHECK (kind IN ('invoice', 'payment', 'reversal', 'credit_memo', 'refund', 'refund_reversal'));

-- Parked jobs found by merchant and kind (a new fact of one of their
-- orders wakes parked payouts): few rows, probed without reading the queue.
CREATE INDEX jobs_parked ON jobs (merchant_id, kind, subject_id) WHERE state = 'parked';

-- The payouts a deposit was matched to, released when its job runs again.
CREATE INDEX payouts_deposit ON payouts (merchant_id, deposit_id) WHERE deposit_id IS NOT NULL;
