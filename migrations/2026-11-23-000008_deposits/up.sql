-- Issue 7, deposits: a bank deposit is matched to the payout(s) whose net it
-- is. A payout remembers the deposit that brought its money to the bank, and
-- the date the deposit search windows on; open payouts (applied, not yet
-- deposited) are what an unnamed deposit is matched against.
ALTER TABLE payouts
    ADD COLUMN payout_date date,
    ADD COLUMN deposit_id  text;
CREATE INDEX payouts_undeposited ON payouts (merchant_id, currency_code, payout_date)
    WHERE state = 'applied' AND deposit_id IS NULL;

-- Each deposit seen, and whether it found its payouts. Unmatched ones are
-- tried again whenever a payout is applied (it may be the one they wait for).
CREATE TABLE deposits (
    merchant_id   text COLLATE "C" NOT NULL,
    deposit_id    text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('matched', 'unmatched')),
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount        numeric     NOT NULL,
    deposit_date  date        NOT NULL,
    payout_ids    text[]      NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, deposit_id)
);
SELECT pg_temp.tally_distribute('deposits');
CREATE INDEX deposits_unmatched ON deposits (merchant_id, deposit_id) WHERE state = 'unmatched';
