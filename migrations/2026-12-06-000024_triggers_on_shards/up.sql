-- Issue 24: the statement-level triggers that read another table, made to
-- work on a Citus shard as well as on PostgreSQL. On Citus a trigger fires
-- on the shard, and a query there that joins its transition table to a
-- distributed table (journal_entries, expectations) cannot be planned: the
-- merchant comes from the transition table, so Citus cannot tell which
-- shard to read ("complex joins are only supported ..."). Each function now
-- reads the other table merchant by merchant, with the merchant a parameter
-- (a router query, local to the shard's node), into arrays, and joins the
-- transition table to those. A statement of Tally's touches one merchant,
-- so each loop runs once. The rows to write into a distributed table are
-- likewise gathered into arrays first: Citus runs the SELECT of an
-- INSERT ... SELECT apart from the trigger, where its transition table
-- does not exist. Same results as 000015 and 000020.

CREATE OR REPLACE FUNCTION journal_lines_entries_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m text;
    ids bigint[];
    found_ids bigint[];
    missing bigint;
BEGIN
    FOR m, ids IN SELECT merchant_id, array_agg(DISTINCT entry_id) FROM touched GROUP BY merchant_id
    LOOP
        -- One primary-key probe per entry.
        SELECT array_agg(e.entry_id) INTO found_ids FROM journal_entries e
         WHERE e.merchant_id = m AND e.entry_id = ANY(ids);
        SELECT i INTO missing FROM unnest(ids) i
         WHERE found_ids IS NULL OR i <> ALL(found_ids) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'journal lines name entry % of merchant %, which does not exist',
                missing, m
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION transactions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m text;
    buckets timestamptz[];
    counts bigint[];
BEGIN
    FOR m IN SELECT DISTINCT merchant_id FROM touched LOOP
        SELECT array_agg(b), array_agg(n) INTO buckets, counts
          FROM (SELECT report_bucket(event_time) AS b, count(*) AS n FROM touched
                 WHERE merchant_id = m GROUP BY 1) s;
        INSERT INTO report_deltas AS d (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
        SELECT m, t.b, now(), 'completeness.orders', '', 0, t.n
          FROM unnest(buckets, counts) AS t(b, n)
        ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
            SET count = d.count + EXCLUDED.count;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION journal_lines_report() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m text;
    ids bigint[];
    e_ids bigint[];
    e_dates date[];
    r record;
BEGIN
    FOR m, ids IN SELECT merchant_id, array_agg(DISTINCT entry_id) FROM touched GROUP BY merchant_id
    LOOP
        SELECT array_agg(e.entry_id), array_agg(e.effective_date) INTO e_ids, e_dates
          FROM journal_entries e WHERE e.merchant_id = m AND e.entry_id = ANY(ids);
        SELECT array_agg(g.effective_date) AS dates, array_agg(g.account) AS accounts,
               array_agg(g.currency_code) AS currencies, array_agg(g.amount) AS amounts,
               array_agg(g.lines) AS lines
          INTO r
          FROM (SELECT e.effective_date, l.account, l.currency_code,
                       sum(l.debit - l.credit) AS amount, count(*) AS lines
                  FROM touched l
                  JOIN unnest(e_ids, e_dates) AS e(entry_id, effective_date) USING (entry_id)
                 WHERE l.merchant_id = m
                 GROUP BY 1, 2, 3) g;
        INSERT INTO report_ledger_deltas AS d (merchant_id, effective_date, known_at, account,
                                              currency_code, amount, lines)
        SELECT m, t.effective_date, now(), t.account, t.currency_code, t.amount, t.lines
          FROM unnest(r.dates, r.accounts, r.currencies, r.amounts, r.lines)
            AS t(effective_date, account, currency_code, amount, lines)
        ON CONFLICT (merchant_id, effective_date, known_at, account, currency_code) DO UPDATE
            SET amount = d.amount + EXCLUDED.amount, lines = d.lines + EXCLUDED.lines;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION transactions_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m text;
    moved text[];
    w_orders text[];
    w_handoffs text[];
    r record;
BEGIN
    FOR m, moved IN
        SELECT n.merchant_id, array_agg(n.order_id)
          FROM before o JOIN after n USING (merchant_id, order_id)
         WHERE report_bucket(o.event_time) <> report_bucket(n.event_time)
         GROUP BY n.merchant_id
    LOOP
        -- The handoffs the moved orders wait on.
        SELECT array_agg(x.order_id), array_agg(x.handoff) INTO w_orders, w_handoffs
          FROM expectations x WHERE x.merchant_id = m AND x.order_id = ANY(moved);
        SELECT array_agg(g.bucket) AS buckets, array_agg(g.figure) AS figures,
               array_agg(g.n) AS counts
          INTO r
          FROM (SELECT f.bucket, f.figure, sum(f.n) AS n
                  FROM (SELECT o.order_id, report_bucket(o.event_time) AS was,
                               report_bucket(n.event_time) AS now_at
                          FROM before o JOIN after n USING (merchant_id, order_id)
                         WHERE n.merchant_id = m
                           AND report_bucket(o.event_time) <> report_bucket(n.event_time)) mv
                  CROSS JOIN LATERAL (
                      SELECT 'completeness.orders' AS figure, 1 AS w
                      UNION ALL
                      SELECT 'completeness.waiting.' || x.handoff, 1
                        FROM unnest(w_orders, w_handoffs) AS x(order_id, handoff)
                       WHERE x.order_id = mv.order_id
                      UNION ALL
                      SELECT 'completeness.orders_waiting', 1
                       WHERE mv.order_id = ANY(coalesce(w_orders, '{}'))) c
                  CROSS JOIN LATERAL (VALUES (mv.was, c.figure, -c.w), (mv.now_at, c.figure, c.w))
                    f(bucket, figure, n)
                 GROUP BY 1, 2) g;
        INSERT INTO report_deltas AS d (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
        SELECT m, t.bucket, now(), t.figure, '', 0, t.n
          FROM unnest(r.buckets, r.figures, r.counts) AS t(bucket, figure, n)
        ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
            SET count = d.count + EXCLUDED.count;
    END LOOP;
    RETURN NULL;
END $$;
