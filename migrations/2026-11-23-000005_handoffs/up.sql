-- Handoff contracts, the exception workflow (owner, due time, etag,
-- history) and the deadlines of open handoffs.

-- The configuration file's contract settings for every merchant: a small
-- table of global settings (a Citus reference table), rewritten by the
-- server at start-up from its configuration file.
CREATE TABLE handoff_defaults (
    handoff     text        PRIMARY KEY,
    settings    jsonb       NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now()
);
SELECT pg_temp.tally_reference('handoff_defaults');

-- A merchant's own settings of a contract: only the fields it changed;
-- the rest come from handoff_defaults, then the built-in defaults.
-- `version` is the etag.
CREATE TABLE handoff_contracts (
    merchant_id text COLLATE "C" NOT NULL,
    handoff     text        NOT NULL CHECK (handoff IN (
        'order_to_fulfillment', 'fulfillment_to_invoice', 'invoice_to_payment',
        'payment_to_cash_application', 'reconciliation_to_reporting')),
    settings    jsonb       NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, handoff)
);
SELECT pg_temp.tally_distribute('handoff_contracts');

ALTER TABLE exceptions DROP CONSTRAINT exceptions_type_check;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_type_check CHECK (type IN (
    'amount_mismatch', 'out_of_sequence', 'record_conflict', 'validation_failed',
    'late_handoff', 'not_propagated', 'refund_not_propagated', 'fee_unallocated',
    'rounding_variance', 'fx_variance', 'discount_unmapped'));

-- Who works it, by when, the etag, and how it ended.
ALTER TABLE exceptions
    ADD COLUMN owner            text,
    ADD COLUMN due_time         timestamptz,
    ADD COLUMN version          bigint NOT NULL DEFAULT 1,
    -- 'rules' when later records settled it; else the person who did.
    ADD COLUMN resolved_by      text,
    ADD COLUMN resolution_note  text,
    -- The money in doubt: the finding's difference, when it has one.
    ADD COLUMN at_risk_amount   numeric,
    ADD COLUMN at_risk_currency text;

UPDATE exceptions SET
    at_risk_amount = abs((details->'difference'->>'amount')::numeric),
    at_risk_currency = details->'difference'->>'currency'
WHERE jsonb_typeof(details->'difference') = 'object';
UPDATE exceptions SET resolved_by = 'rules' WHERE state = 'resolved';

-- ListExceptions ordered by amount at risk (none last).
CREATE INDEX exceptions_by_risk
    ON exceptions (merchant_id, (coalesce(at_risk_amount, -1)) DESC, exception_id DESC);
CREATE INDEX exceptions_by_owner
    ON exceptions (merchant_id, owner, create_time DESC) WHERE state <> 'resolved';

-- Every change to an exception, never rewritten. `sequence` is the
-- watchers' cursor; `txid` lets a watcher read only events of finished
-- transactions, so a cursor never skips an event committed late.
CREATE TABLE exception_events (
    merchant_id  text COLLATE "C" NOT NULL,
    sequence     bigint      GENERATED ALWAYS AS IDENTITY,
    exception_id uuid        NOT NULL,
    action       text        NOT NULL CHECK (action IN (
        'opened', 'reopened', 'acknowledged', 'assigned', 'resolved')),
    actor        text        NOT NULL,
    state        text        NOT NULL,
    owner        text,
    note         text,
    event_time   timestamptz NOT NULL DEFAULT now(),
    txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (merchant_id, sequence)
);
SELECT pg_temp.tally_distribute('exception_events');
CREATE INDEX exception_events_by_exception
    ON exception_events (merchant_id, exception_id, sequence);

CREATE FUNCTION exception_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'exception_events is append-only';
END $$;
CREATE TRIGGER exception_events_append_only BEFORE UPDATE OR DELETE ON exception_events
    FOR EACH ROW EXECUTE FUNCTION exception_events_append_only();

-- Who acts: a use case acting for a person sets `tally.actor` (and
-- `tally.note`) for its transaction; anything else is the rules.
CREATE FUNCTION exceptions_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor text := coalesce(nullif(current_setting('tally.actor', true), ''), 'rules');
BEGIN
    IF jsonb_typeof(NEW.details->'difference') = 'object' THEN
        NEW.at_risk_amount := abs((NEW.details->'difference'->>'amount')::numeric);
        NEW.at_risk_currency := NEW.details->'difference'->>'currency';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.state IS DISTINCT FROM OLD.state OR NEW.owner IS DISTINCT FROM OLD.owner
           OR NEW.due_time IS DISTINCT FROM OLD.due_time
           OR NEW.details IS DISTINCT FROM OLD.details THEN
            NEW.version := OLD.version + 1;
        END IF;
        IF NEW.state = 'resolved' AND OLD.state <> 'resolved' THEN
            NEW.resolved_by := actor;
        ELSIF NEW.state <> 'resolved' THEN
            NEW.resolved_by := NULL;
            NEW.resolution_note := NULL;
        END IF;
    ELSE
        -- Owner and due time from the contract in force at detection: a
        -- contract changed later applies to what is detected from then on.
        IF NEW.owner IS NULL OR NEW.due_time IS NULL THEN
            SELECT coalesce(NEW.owner, c.settings->>'owner', d.settings->>'owner'),
                   coalesce(NEW.due_time, NEW.create_time + make_interval(secs =>
                       coalesce(c.settings->>'max_lag_seconds',
                                d.settings->>'max_lag_seconds')::double precision))
              INTO NEW.owner, NEW.due_time
              FROM (SELECT 1) one
              LEFT JOIN handoff_defaults d ON d.handoff = NEW.handoff
              LEFT JOIN handoff_contracts c
                ON c.merchant_id = NEW.merchant_id AND c.handoff = NEW.handoff;
        END IF;
        IF NEW.state = 'resolved' THEN
            NEW.resolved_by := actor;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER exceptions_stamp BEFORE INSERT OR UPDATE ON exceptions
    FOR EACH ROW EXECUTE FUNCTION exceptions_stamp();

-- The alert outbox: one row per exception whose owner has a webhook,
-- claimed by a delivery loop (SKIP LOCKED), retried with back-off until
-- delivered; a restart loses nothing.
CREATE TABLE alert_deliveries (
    merchant_id   text COLLATE "C" NOT NULL,
    exception_id  uuid        NOT NULL,
    webhook_uri   text        NOT NULL,
    state         text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
    attempts      integer     NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    create_time   timestamptz NOT NULL DEFAULT now(),
    deliver_time  timestamptz,
    PRIMARY KEY (merchant_id, exception_id)
);
SELECT pg_temp.tally_distribute('alert_deliveries');
CREATE INDEX alert_deliveries_due ON alert_deliveries (merchant_id, next_attempt)
    WHERE state = 'pending';

-- The history is written by the database for every writer, the rules'
-- reconcile included, so no change can skip it.
CREATE FUNCTION exceptions_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor text := coalesce(nullif(current_setting('tally.actor', true), ''), 'rules');
    note text := nullif(current_setting('tally.note', true), '');
    act text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        act := 'opened';
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        act := CASE NEW.state WHEN 'open' THEN 'reopened' ELSE NEW.state END;
    ELSIF NEW.owner IS DISTINCT FROM OLD.owner THEN
        act := 'assigned';
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO exception_events (merchant_id, exception_id, action, actor, state, owner, note)
    VALUES (NEW.merchant_id, NEW.exception_id, act, actor, NEW.state, NEW.owner, note);
    -- One alert per exception, ever, to the owner's webhook of the
    -- contract in force when it opened; kept until delivered.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO alert_deliveries (merchant_id, exception_id, webhook_uri)
        SELECT NEW.merchant_id, NEW.exception_id, u.uri
        FROM (SELECT coalesce(
                  (SELECT c.settings->>'alert_webhook_uri' FROM handoff_contracts c
                   WHERE c.merchant_id = NEW.merchant_id AND c.handoff = NEW.handoff),
                  (SELECT d.settings->>'alert_webhook_uri' FROM handoff_defaults d
                   WHERE d.handoff = NEW.handoff)) AS uri) u
        WHERE coalesce(u.uri, '') <> ''
        ON CONFLICT (merchant_id, exception_id) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER exceptions_history AFTER INSERT OR UPDATE ON exceptions
    FOR EACH ROW EXECUTE FUNCTION exceptions_history();

-- What should arrive next for each open handoff, by when: the sweeper
-- reads due ones by (merchant_id, due_time), never every order.
CREATE TABLE expectations (
    merchant_id   text COLLATE "C" NOT NULL,
    order_id      text        NOT NULL,
    handoff       text        NOT NULL,
    expected_kind text        NOT NULL,
    due_time      timestamptz NOT NULL,
    -- The sending step's amount: what is at risk while the next is late.
    at_risk       jsonb,
    -- Set once the sweeper has raised LATE_HANDOFF for it.
    raised        boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (merchant_id, order_id, handoff)
);
SELECT pg_temp.tally_distribute('expectations');
CREATE INDEX expectations_due ON expectations (merchant_id, due_time) WHERE NOT raised;
