-- Issue 20: period reports as of a knowledge time.
--
-- Every figure of a period report is a sum of signed deltas. Each writer
-- adds its deltas in the transaction that changes the fact, keyed by the
-- fact's event time (a 15-minute bucket: every real time zone's offset is a
-- multiple of 15 minutes, so any zone's day or month is a whole number of
-- buckets) and by the knowledge time (`known_at`, the writing
-- transaction's now()). A report as of T sums the deltas with
-- known_at <= T: what Tally knew at T, whenever it is run. Deltas are only
-- ever added, never rewritten.
--
--   records      ingest (Rust: domain::report::contributions), new version
--                minus the version it superseded;
--   exceptions   the trigger below: an unresolved exception counts (and
--                its amount at risk) from the moment it opens until resolved;
--   completeness the triggers on transactions (the period's orders, moved
--                with their event time) and Tally as it syncs expectations
--                (those still waiting on a handoff);
--   ledger       report_ledger_deltas, by the trigger on journal_lines.

CREATE TABLE report_deltas (
    merchant_id   text COLLATE "C" NOT NULL,
    event_bucket  timestamptz NOT NULL,
    known_at      timestamptz NOT NULL,
    figure        text COLLATE "C" NOT NULL CHECK (figure ~ '^[a-z_]+(\.[a-z_]+)+$'),
    -- '' for a count with no money (orders waiting, an exception with no amount).
    currency_code text COLLATE "C" NOT NULL CHECK (currency_code ~ '^([A-Z]{3})?$'),
    amount        numeric NOT NULL DEFAULT 0,
    count         bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, event_bucket, known_at, figure, currency_code),
    CHECK (event_bucket = date_bin('15 minutes', event_bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
);
SELECT pg_temp.tally_distribute('report_deltas');

-- Tally's own ledger by effective date: a balance at a period's end sums
-- every earlier date.
CREATE TABLE report_ledger_deltas (
    merchant_id    text COLLATE "C" NOT NULL,
    effective_date date NOT NULL,
    known_at       timestamptz NOT NULL,
    account        text COLLATE "C" NOT NULL,
    currency_code  text COLLATE "C" NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    -- Debits minus credits.
    amount         numeric NOT NULL,
    lines          bigint  NOT NULL,
    PRIMARY KEY (merchant_id, effective_date, known_at, account, currency_code)
);
SELECT pg_temp.tally_distribute('report_ledger_deltas');

CREATE FUNCTION report_bucket(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('15 minutes', t, TIMESTAMPTZ '2000-01-01 00:00:00+00');

-- Adds one delta; rows of one transaction (one known_at) merge.
CREATE FUNCTION report_add(m text, bucket timestamptz, fig text, cur text, amt numeric, n bigint)
    RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_deltas (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
    VALUES (m, report_bucket(bucket), now(), fig, cur, amt, n)
    ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
        SET amount = report_deltas.amount + EXCLUDED.amount,
            count = report_deltas.count + EXCLUDED.count
$$;

-- Knowledge-time windows (a diff's facts) over the append-only tables:
-- BRIN, since rows arrive in knowledge order and a BRIN entry costs the
-- write path next to nothing.
CREATE INDEX record_log_received ON record_log USING brin (receive_time);
CREATE INDEX journal_entries_booked ON journal_entries USING brin (booked_at);

-- Exceptions: their event time (the order's, else the evidence's, else
-- when detected), stamped once at detection.
ALTER TABLE exceptions ADD COLUMN event_time timestamptz;
UPDATE exceptions e SET event_time = coalesce(
    (SELECT t.event_time FROM transactions t
      WHERE t.merchant_id = e.merchant_id AND t.order_id = e.order_id),
    e.create_time);

CREATE FUNCTION exceptions_event_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_time IS NULL THEN
        NEW.event_time := coalesce(
            (SELECT t.event_time FROM transactions t
              WHERE t.merchant_id = NEW.merchant_id AND t.order_id = NEW.order_id),
            (SELECT min((o->>'event_time')::timestamptz)
               FROM jsonb_array_elements(CASE jsonb_typeof(NEW.details->'observations')
                    WHEN 'array' THEN NEW.details->'observations' ELSE '[]' END) o
              WHERE o ? 'event_time'),
            NEW.create_time);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER exceptions_event_time BEFORE INSERT ON exceptions
    FOR EACH ROW EXECUTE FUNCTION exceptions_event_time();

-- Each change of what an exception counts for in a report (open or not,
-- its amount at risk), as signed rows: the exceptions a report's figure
-- comes from as of any time, and what a diff lists.
CREATE TABLE exception_report_log (
    merchant_id   text COLLATE "C" NOT NULL,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    exception_id  uuid NOT NULL,
    known_at      timestamptz NOT NULL DEFAULT now(),
    event_time    timestamptz NOT NULL,
    type          text COLLATE "C" NOT NULL,
    currency_code text COLLATE "C" NOT NULL,
    amount        numeric NOT NULL,
    count         integer NOT NULL CHECK (count IN (-1, 1)),
    PRIMARY KEY (merchant_id, seq)
);
SELECT pg_temp.tally_distribute('exception_report_log');
CREATE INDEX exception_report_log_known ON exception_report_log USING brin (known_at);
CREATE INDEX exception_report_log_event ON exception_report_log (merchant_id, event_time);

CREATE FUNCTION exception_report_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER exception_report_log_append_only BEFORE UPDATE OR DELETE ON exception_report_log
    FOR EACH ROW EXECUTE FUNCTION exception_report_log_append_only();
-- A delta row merges the deltas of its own transaction (one known_at) and
-- is never changed after: a knowledge time that has passed stays as it was.
CREATE FUNCTION report_deltas_settled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.known_at <> now() OR NEW.known_at <> OLD.known_at THEN
        RAISE EXCEPTION '% rows of a past knowledge time are never changed', TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER report_deltas_settled BEFORE UPDATE OR DELETE ON report_deltas
    FOR EACH ROW EXECUTE FUNCTION report_deltas_settled();
CREATE TRIGGER report_ledger_deltas_settled BEFORE UPDATE OR DELETE ON report_ledger_deltas
    FOR EACH ROW EXECUTE FUNCTION report_deltas_settled();

CREATE FUNCTION exceptions_report() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was boolean := TG_OP = 'UPDATE' AND OLD.state <> 'resolved';
    now_counts boolean := NEW.state <> 'resolved';
BEGIN
    IF was AND now_counts
       AND OLD.at_risk_amount IS NOT DISTINCT FROM NEW.at_risk_amount
       AND OLD.at_risk_currency IS NOT DISTINCT FROM NEW.at_risk_currency
       AND OLD.type = NEW.type AND OLD.event_time = NEW.event_time THEN
        RETURN NULL;
    END IF;
    IF was THEN
        INSERT INTO exception_report_log (merchant_id, exception_id, event_time, type, currency_code, amount, count)
        VALUES (OLD.merchant_id, OLD.exception_id, OLD.event_time, OLD.type,
                coalesce(OLD.at_risk_currency, ''), -coalesce(OLD.at_risk_amount, 0), -1);
        PERFORM report_add(OLD.merchant_id, OLD.event_time, 'exceptions.' || OLD.type,
                           coalesce(OLD.at_risk_currency, ''), -coalesce(OLD.at_risk_amount, 0), -1);
    END IF;
    IF now_counts THEN
        INSERT INTO exception_report_log (merchant_id, exception_id, event_time, type, currency_code, amount, count)
        VALUES (NEW.merchant_id, NEW.exception_id, NEW.event_time, NEW.type,
                coalesce(NEW.at_risk_currency, ''), coalesce(NEW.at_risk_amount, 0), 1);
        PERFORM report_add(NEW.merchant_id, NEW.event_time, 'exceptions.' || NEW.type,
                           coalesce(NEW.at_risk_currency, ''), coalesce(NEW.at_risk_amount, 0), 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER exceptions_report AFTER INSERT OR UPDATE ON exceptions
    FOR EACH ROW EXECUTE FUNCTION exceptions_report();

-- Completeness: the orders of a period (transactions by event time), and
-- how many of them wait on each handoff / on any. Statement-level, with
-- transition tables: one upsert per statement, not one per order.
CREATE FUNCTION transactions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_deltas AS d (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
    SELECT merchant_id, report_bucket(event_time), now(), 'completeness.orders', '', 0, count(*)
      FROM touched GROUP BY 1, 2
    ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
        SET count = d.count + EXCLUDED.count;
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_inserted AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION transactions_inserted();

-- An order whose event time moved to another bucket takes all it counts
-- for along: itself, each handoff it waits on, and whether it waits.
CREATE FUNCTION transactions_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_deltas AS d (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
    SELECT m.merchant_id, f.bucket, now(), f.figure, '', 0, sum(f.n)
      FROM (SELECT o.merchant_id, o.order_id, report_bucket(o.event_time) AS was,
                   report_bucket(n.event_time) AS now_at
              FROM before o JOIN after n USING (merchant_id, order_id)
             WHERE report_bucket(o.event_time) <> report_bucket(n.event_time)) m
      CROSS JOIN LATERAL (
          SELECT 'completeness.orders' AS figure, 1 AS w
          UNION ALL
          SELECT 'completeness.waiting.' || x.handoff, 1 FROM expectations x
           WHERE x.merchant_id = m.merchant_id AND x.order_id = m.order_id
          UNION ALL
          SELECT 'completeness.orders_waiting', 1
           WHERE EXISTS (SELECT 1 FROM expectations x
                          WHERE x.merchant_id = m.merchant_id AND x.order_id = m.order_id)) c
      CROSS JOIN LATERAL (VALUES (m.was, c.figure, -c.w), (m.now_at, c.figure, c.w)) f(bucket, figure, n)
     GROUP BY 1, 2, 3, 4
    ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
        SET count = d.count + EXCLUDED.count;
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_moved AFTER UPDATE ON transactions
    REFERENCING OLD TABLE AS before NEW TABLE AS after
    FOR EACH STATEMENT EXECUTE FUNCTION transactions_moved();

-- The handoffs each order waits on are counted by Tally as it syncs them
-- (app::handoffs::track), where it knows each order's event time.

-- Tally's ledger: every line booked, by its entry's effective date.
CREATE FUNCTION journal_lines_report() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_ledger_deltas AS d (merchant_id, effective_date, known_at, account,
                                          currency_code, amount, lines)
    SELECT l.merchant_id, e.effective_date, now(), l.account, l.currency_code,
           sum(l.debit - l.credit), count(*)
      FROM touched l
      JOIN journal_entries e USING (merchant_id, entry_id)
     GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (merchant_id, effective_date, known_at, account, currency_code) DO UPDATE
        SET amount = d.amount + EXCLUDED.amount, lines = d.lines + EXCLUDED.lines;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_lines_report AFTER INSERT ON journal_lines
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION journal_lines_report();

-- Period closes: the knowledge time finance closed a period at. A period
-- (its bounds and zone) has at most one close in force; every close and
-- reopen stays as history.
CREATE TABLE period_closes (
    merchant_id  text COLLATE "C" NOT NULL,
    period       text COLLATE "C" NOT NULL,
    close_no     integer NOT NULL,
    action       text COLLATE "C" NOT NULL CHECK (action IN ('closed', 'reopened')),
    closed_as_of timestamptz,
    actor        text COLLATE "C" NOT NULL,
    note         text COLLATE "C" NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, period, close_no),
    CHECK ((action = 'closed') = (closed_as_of IS NOT NULL))
);
SELECT pg_temp.tally_distribute('period_closes');
CREATE TRIGGER period_closes_append_only BEFORE UPDATE OR DELETE ON period_closes
    FOR EACH ROW EXECUTE FUNCTION exception_report_log_append_only();

-- What was there before this migration, counted as known when it was
-- learned where the tables say so: the ledger by booked_at, open
-- exceptions from when they last opened, orders and their open handoffs
-- from when the order was first seen. Records are counted by Tally itself
-- (app::reports::backfill, after migrations), which knows what each record
-- contributes: each merchant's records up to its last one now, from the
-- cursor on, resumable.
CREATE TABLE report_backfills (
    merchant_id    text COLLATE "C" PRIMARY KEY,
    upto_record_id bigint NOT NULL,
    after_time     timestamptz,
    after_id       bigint NOT NULL DEFAULT 0
);
SELECT pg_temp.tally_distribute('report_backfills');
INSERT INTO report_backfills (merchant_id, upto_record_id)
SELECT merchant_id, max(record_id) FROM record_log GROUP BY merchant_id;
INSERT INTO report_ledger_deltas (merchant_id, effective_date, known_at, account, currency_code, amount, lines)
SELECT l.merchant_id, e.effective_date, e.booked_at, l.account, l.currency_code,
       sum(l.debit - l.credit), count(*)
  FROM journal_lines l JOIN journal_entries e USING (merchant_id, entry_id)
 GROUP BY 1, 2, 3, 4, 5;
INSERT INTO exception_report_log (merchant_id, exception_id, known_at, event_time, type, currency_code, amount, count)
SELECT merchant_id, exception_id, update_time, event_time, type,
       coalesce(at_risk_currency, ''), coalesce(at_risk_amount, 0), 1
  FROM exceptions WHERE state <> 'resolved';
INSERT INTO report_deltas (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
SELECT merchant_id, report_bucket(event_time), known_at, 'exceptions.' || type, currency_code,
       sum(amount), sum(count)
  FROM exception_report_log GROUP BY 1, 2, 3, 4, 5;
INSERT INTO report_deltas (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
SELECT merchant_id, report_bucket(event_time), create_time, 'completeness.orders', '', 0, count(*)
  FROM transactions GROUP BY 1, 2, 3
UNION ALL
SELECT t.merchant_id, report_bucket(t.event_time), t.create_time, 'completeness.waiting.' || x.handoff,
       '', 0, count(*)
  FROM expectations x JOIN transactions t USING (merchant_id, order_id) GROUP BY 1, 2, 3, 4
UNION ALL
SELECT t.merchant_id, report_bucket(t.event_time), t.create_time, 'completeness.orders_waiting', '', 0, count(*)
  FROM transactions t
 WHERE EXISTS (SELECT 1 FROM expectations x WHERE x.merchant_id = t.merchant_id AND x.order_id = t.order_id)
 GROUP BY 1, 2, 3;
