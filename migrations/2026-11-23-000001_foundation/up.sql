-- Every key leads with merchant_id so the schema can be distributed by
-- merchant (Citus-style) without rewriting a query.

-- The append-only log of every record as received: the audit trail, and the
-- source every projection is rebuilt from. Duplicates and conflicts are
-- logged too (with their outcome); only one ACCEPTED row exists per key.
CREATE TABLE record_log (
    merchant_id   text COLLATE "C" NOT NULL CHECK (merchant_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    record_id     bigint      GENERATED ALWAYS AS IDENTITY,
    source_system text        NOT NULL CHECK (source_system ~ '^[a-z0-9_-]{1,63}$'),
    kind          text        NOT NULL CHECK (kind IN (
        'storefront_order', 'storefront_transaction', 'fulfillment', 'invoice',
        'credit_memo', 'journal_entry', 'processor_payment',
        'balance_transaction', 'payout', 'bank_deposit')),
    source_id     text        NOT NULL CHECK (length(source_id) BETWEEN 1 AND 255),
    order_id      text        CHECK (order_id ~ '^[A-Za-z0-9._~-]{1,128}$'),
    outcome       text        NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'conflict')),
    -- For duplicates and conflicts: the accepted record they collided with.
    original_id   bigint,
    content_hash  bytea       NOT NULL CHECK (octet_length(content_hash) = 32),
    payload       jsonb       NOT NULL,
    currency_code text        CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount        numeric,
    -- Journal entries must balance; NULL for every other kind.
    debit_total   numeric,
    credit_total  numeric,
    event_time    timestamptz NOT NULL,
    receive_time  timestamptz NOT NULL DEFAULT now(),
    request_id    text,
    PRIMARY KEY (merchant_id, record_id),
    CHECK ((kind = 'journal_entry') = (debit_total IS NOT NULL AND credit_total IS NOT NULL)),
    CHECK (debit_total IS NULL OR debit_total = credit_total),
    CHECK ((outcome = 'accepted') = (original_id IS NULL))
);
SELECT pg_temp.tally_distribute('record_log');

-- One accepted record per key, forever: the idempotency guarantee.
CREATE UNIQUE INDEX record_log_accepted_key
    ON record_log (merchant_id, source_system, kind, source_id)
    WHERE outcome = 'accepted';

-- Merging an order reads all its accepted records.
CREATE INDEX record_log_order
    ON record_log (merchant_id, order_id)
    WHERE outcome = 'accepted' AND order_id IS NOT NULL;

-- Every external id known to belong to an order (its records' source ids,
-- payment intents, charges, references), so a record that names only a
-- charge or a refund (an ERP journal, a processor balance transaction) can
-- be tied to its order.
CREATE TABLE order_refs (
    merchant_id text COLLATE "C" NOT NULL,
    ref_id      text NOT NULL,
    order_id    text NOT NULL,
    PRIMARY KEY (merchant_id, ref_id, order_id)
);
SELECT pg_temp.tally_distribute('order_refs');

-- The ids a record of no single order points at, kept so it can be tied
-- to orders whose records arrive after it.
CREATE TABLE record_refs (
    merchant_id text COLLATE "C" NOT NULL,
    ref_id      text   NOT NULL,
    record_id   bigint NOT NULL,
    PRIMARY KEY (merchant_id, ref_id, record_id)
);
SELECT pg_temp.tally_distribute('record_refs');

-- Records tied to an order through the ids they point at.
CREATE TABLE record_links (
    merchant_id text COLLATE "C" NOT NULL,
    order_id    text   NOT NULL,
    record_id   bigint NOT NULL,
    PRIMARY KEY (merchant_id, order_id, record_id)
);
SELECT pg_temp.tally_distribute('record_links');

-- Where each order's reconciliation stands, rewritten whenever one of its
-- records arrives. The canonical transaction itself is merged from
-- record_log on read: one indexed query, and always what the current code
-- makes of the records.
CREATE TABLE transactions (
    merchant_id   text COLLATE "C" NOT NULL,
    order_id      text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('pending', 'matched', 'exception')),
    reasons       text[]      NOT NULL,
    currency_code text        CHECK (currency_code ~ '^[A-Z]{3}$'),
    event_time    timestamptz NOT NULL,
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, order_id)
);
SELECT pg_temp.tally_distribute('transactions');

-- ListTransactions: newest first, optionally by state, paged by keyset.
CREATE INDEX transactions_by_time ON transactions (merchant_id, event_time DESC, order_id DESC);
CREATE INDEX transactions_by_state ON transactions (merchant_id, state, event_time DESC, order_id DESC);

CREATE TABLE exceptions (
    merchant_id  text COLLATE "C" NOT NULL,
    exception_id uuid        NOT NULL,
    order_id     text,
    type         text        NOT NULL CHECK (type IN (
        'amount_mismatch', 'out_of_sequence', 'record_conflict',
        'validation_failed', 'late_handoff', 'not_propagated')),
    handoff      text        NOT NULL CHECK (handoff IN (
        'order_to_fulfillment', 'fulfillment_to_invoice', 'invoice_to_payment',
        'payment_to_cash_application', 'reconciliation_to_reporting')),
    state        text        NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    rule         text        NOT NULL,
    subject      text        NOT NULL,
    summary      text        NOT NULL,
    details      jsonb       NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    resolve_time timestamptz,
    PRIMARY KEY (merchant_id, exception_id),
    CHECK ((state = 'resolved') = (resolve_time IS NOT NULL))
);
SELECT pg_temp.tally_distribute('exceptions');

CREATE INDEX exceptions_by_time ON exceptions (merchant_id, create_time DESC, exception_id DESC);
CREATE INDEX exceptions_by_order ON exceptions (merchant_id, order_id) WHERE order_id IS NOT NULL;
-- The work queue: "open ones, newest first" is the common read.
CREATE INDEX exceptions_by_state ON exceptions (merchant_id, state, create_time DESC, exception_id DESC);

-- Whole-request idempotency: a retried request_id gets the stored response.
CREATE TABLE submissions (
    merchant_id  text COLLATE "C" NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL CHECK (octet_length(request_hash) = 32),
    response     bytea       NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, request_id)
);
SELECT pg_temp.tally_distribute('submissions');
