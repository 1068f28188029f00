-- The bodies of 000015 and 000020.
CREATE OR REPLACE FUNCTION journal_lines_entries_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing record;
BEGIN
    -- One primary-key probe per entry: a scalar subquery stays a per-row
    -- probe whatever the statistics say (a NOT EXISTS could become a hash
    -- join over the merchant's whole ledger).
    SELECT t.merchant_id, t.entry_id
      INTO missing
      FROM (SELECT DISTINCT merchant_id, entry_id FROM touched) t
     WHERE (SELECT e.entry_id FROM journal_entries e
             WHERE e.merchant_id = t.merchant_id AND e.entry_id = t.entry_id) IS NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal lines name entry % of merchant %, which does not exist',
            missing.entry_id, missing.merchant_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION transactions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_deltas AS d (merchant_id, event_bucket, known_at, figure, currency_code, amount, count)
    SELECT merchant_id, report_bucket(event_time), now(), 'completeness.orders', '', 0, count(*)
      FROM touched GROUP BY 1, 2
    ON CONFLICT (merchant_id, event_bucket, known_at, figure, currency_code) DO UPDATE
        SET count = d.count + EXCLUDED.count;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION journal_lines_report() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION transactions_moved() RETURNS trigger LANGUAGE plpgsql AS $$
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
