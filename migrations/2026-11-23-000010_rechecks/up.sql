-- When an order must be matched again though no record arrives: the
-- earliest deadline of a comparison a contract's lag holds back (a refund
-- not yet propagated, the last captures of an order shipped in full).
-- The sweeper reads due ones by (merchant_id, due_time), never every order.
CREATE TABLE rechecks (
    merchant_id text COLLATE "C" NOT NULL,
    order_id    text        NOT NULL,
    due_time    timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, order_id)
);
SELECT pg_temp.tally_distribute('rechecks');
CREATE INDEX rechecks_due ON rechecks (merchant_id, due_time);
