-- Issue 7: the cash-application worker and the ledger. Every key leads with
-- merchant_id (Citus-ready), and every queue query filters by it.

-- Generic work queue (reused by later workers, e.g. alerts): one row per
-- (merchant, kind, subject) while there is work to do. A worker claims a row
-- with FOR UPDATE SKIP LOCKED and keeps the row lock for the whole
-- transaction that does the work, then deletes the row in that same
-- transaction: a crash rolls everything back and frees the row, so nothing
-- is lost and nothing doubles. `generation` counts the arrivals that made
-- the work ready; a failure backs off (`run_after`) and after too many
-- attempts the job is `parked` for a person.
CREATE TABLE jobs (
    merchant_id text COLLATE "C" NOT NULL,
    kind        text        NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    subject_id  text        NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 255),
    state       text        NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'parked')),
    generation  bigint      NOT NULL DEFAULT 1,
    attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_after   timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, kind, subject_id)
);
SELECT pg_temp.tally_distribute('jobs');
CREATE INDEX jobs_ready ON jobs (merchant_id, run_after) WHERE state = 'ready';

-- Balance transactions are found by the payout that swept them.
CREATE INDEX record_log_payout_txns
    ON record_log (merchant_id, (payload -> 'body' ->> 'payout_id'))
    WHERE outcome = 'accepted' AND kind = 'balance_transaction';

-- Where each payout stands, with its bridge from gross to net.
CREATE TABLE payouts (
    merchant_id   text COLLATE "C" NOT NULL,
    payout_id     text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('waiting', 'applied', 'parked', 'reversed')),
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount        numeric     NOT NULL,
    gross         numeric     NOT NULL,
    fees          numeric     NOT NULL,
    net           numeric     NOT NULL,
    -- Signed: what the balance transactions still have to bring (waiting).
    missing       numeric     NOT NULL DEFAULT 0,
    -- Processor clearing left after the payout's entries (an exception if not 0).
    residual      numeric     NOT NULL DEFAULT 0,
    applied_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, payout_id)
);
SELECT pg_temp.tally_distribute('payouts');
CREATE INDEX payouts_state ON payouts (merchant_id, state, payout_id);

-- Per-merchant counter for the export sequence. Taken (row-locked) last in a
-- booking transaction, so sequence order is commit order and an ERP cursor
-- over export_seq never skips an entry committed late.
CREATE TABLE ledger_counters (
    merchant_id text COLLATE "C" NOT NULL PRIMARY KEY,
    next_seq    bigint NOT NULL DEFAULT 1
);
SELECT pg_temp.tally_distribute('ledger_counters');

CREATE TABLE journal_entries (
    merchant_id    text COLLATE "C" NOT NULL,
    entry_id       bigint      GENERATED ALWAYS AS IDENTITY,
    -- Stable id the ERP deduplicates on (domain::ledger::ExternalId).
    external_id    text        NOT NULL,
    export_seq     bigint      NOT NULL,
    effective_date date        NOT NULL,
    memo           text        NOT NULL,
    payout_id      text,
    source_refs    jsonb       NOT NULL DEFAULT '[]',
    booked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, entry_id),
    UNIQUE (merchant_id, external_id),
    UNIQUE (merchant_id, export_seq)
);
SELECT pg_temp.tally_distribute('journal_entries');
CREATE INDEX journal_entries_payout ON journal_entries (merchant_id, payout_id, entry_id)
    WHERE payout_id IS NOT NULL;

CREATE TABLE journal_lines (
    merchant_id   text COLLATE "C" NOT NULL,
    entry_id      bigint  NOT NULL,
    line_no       integer NOT NULL CHECK (line_no >= 0),
    account       text    NOT NULL,
    currency_code text    NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    debit         numeric NOT NULL CHECK (debit >= 0),
    credit        numeric NOT NULL CHECK (credit >= 0),
    memo          text    NOT NULL DEFAULT '',
    order_id      text,
    PRIMARY KEY (merchant_id, entry_id, line_no),
    FOREIGN KEY (merchant_id, entry_id) REFERENCES journal_entries (merchant_id, entry_id),
    -- Exactly one side carries money.
    CHECK ((debit = 0) <> (credit = 0))
);
SELECT pg_temp.tally_distribute('journal_lines');
CREATE INDEX journal_lines_account ON journal_lines (merchant_id, account, currency_code);
CREATE INDEX journal_lines_order ON journal_lines (merchant_id, order_id) WHERE order_id IS NOT NULL;

-- The database's own check that every entry balances per currency, in
-- addition to JournalEntry::new. One query per statement over the entries
-- the statement touched (all their lines, not only the new ones), so an
-- entry is judged whole; an entry's lines are written by one statement.
-- (A deferred per-row constraint trigger would run it once per line.)
CREATE FUNCTION journal_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT l.merchant_id, l.entry_id, l.currency_code, sum(l.debit) AS d, sum(l.credit) AS c
      INTO bad
      FROM journal_lines l
      JOIN (SELECT DISTINCT merchant_id, entry_id FROM touched) t USING (merchant_id, entry_id)
     GROUP BY l.merchant_id, l.entry_id, l.currency_code
    HAVING sum(l.debit) <> sum(l.credit)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % of merchant % does not balance in %: debits %, credits %',
            bad.entry_id, bad.merchant_id, bad.currency_code, bad.d, bad.c
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER journal_lines_balance_insert
    AFTER INSERT ON journal_lines REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entry_balances();
CREATE TRIGGER journal_lines_balance_update
    AFTER UPDATE ON journal_lines REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entry_balances();
CREATE TRIGGER journal_lines_balance_delete
    AFTER DELETE ON journal_lines REFERENCING OLD TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entry_balances();

-- An order's cash facts in the order they were applied, replayed into
-- domain::cash_application::OrderCash so each run plans from the same state.
CREATE TABLE order_cash_events (
    merchant_id   text COLLATE "C" NOT NULL,
    order_id      text    NOT NULL,
    event_no      integer NOT NULL,
    -- invoice | payment | reversal | credit_memo | refund
    kind          text    NOT NULL CHECK (kind IN ('invoice', 'payment', 'reversal', 'credit_memo', 'refund')),
    ref_id        text    NOT NULL,
    -- The payment a reversal reduces.
    target_id     text,
    tender        text,
    event_date    date    NOT NULL,
    currency_code text    NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount        numeric NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (merchant_id, order_id, event_no),
    UNIQUE (merchant_id, order_id, kind, ref_id)
);
SELECT pg_temp.tally_distribute('order_cash_events');

-- What each payment paid: per invoice, and where it came from.
CREATE TABLE cash_applications (
    merchant_id    text COLLATE "C" NOT NULL,
    application_id bigint  GENERATED ALWAYS AS IDENTITY,
    order_id       text    NOT NULL,
    payment_id     text    NOT NULL,
    invoice_id     text    NOT NULL,
    tender         text    NOT NULL,
    currency_code  text    NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount         numeric NOT NULL,
    from_unapplied boolean NOT NULL,
    payout_id      text,
    external_id    text    NOT NULL,
    PRIMARY KEY (merchant_id, application_id)
);
SELECT pg_temp.tally_distribute('cash_applications');
CREATE INDEX cash_applications_invoice ON cash_applications (merchant_id, invoice_id);
CREATE INDEX cash_applications_payout ON cash_applications (merchant_id, payout_id) WHERE payout_id IS NOT NULL;

-- Each order's share of a payout's swept fees, so a fee traces back to orders.
CREATE TABLE fee_shares (
    merchant_id   text COLLATE "C" NOT NULL,
    payout_id     text    NOT NULL,
    -- '' when a payout-level fee had no orders to carry it.
    order_id      text    NOT NULL,
    currency_code text    NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount        numeric NOT NULL,
    PRIMARY KEY (merchant_id, payout_id, order_id)
);
SELECT pg_temp.tally_distribute('fee_shares');

-- Invoices as booked, with what is still open (accounts receivable).
CREATE TABLE invoices (
    merchant_id   text COLLATE "C" NOT NULL,
    invoice_id    text    NOT NULL,
    order_id      text    NOT NULL,
    invoice_date  date    NOT NULL,
    currency_code text    NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    total         numeric NOT NULL CHECK (total >= 0),
    applied       numeric NOT NULL DEFAULT 0 CHECK (applied >= 0),
    PRIMARY KEY (merchant_id, invoice_id),
    CHECK (applied <= total)
);
SELECT pg_temp.tally_distribute('invoices');
CREATE INDEX invoices_open ON invoices (merchant_id, invoice_date, invoice_id) WHERE applied < total;
