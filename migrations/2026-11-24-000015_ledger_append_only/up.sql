-- Issue 7 item 9: the ledger is append-only. A booked entry is never changed
-- or removed (a correction is a reversing entry, as in any ledger), so the
-- database refuses UPDATE and DELETE on journal_entries and journal_lines.
--
-- That lets the lines' foreign key to their entry go: it ran one lookup
-- and one row lock per line (about a fifth of a payout's journal insert).
-- The insert trigger instead checks, once per statement, that every entry
-- the new lines name exists; as no entry can be deleted or re-keyed, that
-- is the same guarantee the foreign key gave.
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_merchant_id_entry_id_fkey;

CREATE OR REPLACE FUNCTION journal_new_lines_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- One key probe per entry (a scalar subquery stays a per-row probe of
    -- the primary key, whatever the statistics say).
    SELECT t.merchant_id, t.entry_id
      INTO bad
      FROM (SELECT DISTINCT merchant_id, entry_id FROM touched) t
     WHERE (SELECT e.entry_id FROM journal_entries e
             WHERE e.merchant_id = t.merchant_id AND e.entry_id = t.entry_id) IS NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal lines name entry % of merchant %, which does not exist',
            bad.entry_id, bad.merchant_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT t.merchant_id, t.entry_id, t.currency_code, sum(t.debit) AS d, sum(t.credit) AS c
      INTO bad
      FROM touched t
     GROUP BY t.merchant_id, t.entry_id, t.currency_code
    HAVING sum(t.debit) <> sum(t.credit)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % of merchant % does not balance in %: debits %, credits %',
            bad.entry_id, bad.merchant_id, bad.currency_code, bad.d, bad.c
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused (book a reversing entry instead)',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

-- Statement-level and BEFORE: refused before any row is touched.
DROP TRIGGER journal_lines_balance_update ON journal_lines;
DROP TRIGGER journal_lines_balance_delete ON journal_lines;
DROP FUNCTION journal_entry_balances();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
