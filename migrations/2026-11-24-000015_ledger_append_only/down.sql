DROP TRIGGER journal_entries_append_only ON journal_entries;
DROP TRIGGER journal_lines_append_only ON journal_lines;
DROP FUNCTION ledger_append_only();

-- The whole-entry check of 000004 for changed and removed lines.
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
CREATE TRIGGER journal_lines_balance_update
    AFTER UPDATE ON journal_lines REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entry_balances();
CREATE TRIGGER journal_lines_balance_delete
    AFTER DELETE ON journal_lines REFERENCING OLD TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entry_balances();

-- 000014's insert check, without the entry check.
CREATE OR REPLACE FUNCTION journal_new_lines_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
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

ALTER TABLE journal_lines ADD FOREIGN KEY (merchant_id, entry_id)
    REFERENCES journal_entries (merchant_id, entry_id);
