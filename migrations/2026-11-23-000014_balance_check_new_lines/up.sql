-- Issue 7 item 9: the balance trigger on INSERT checks only the lines the
-- statement inserted. The function of 000004 re-read every stored line of
-- the touched entries, through a join the planner cannot estimate (a
-- transition table has no statistics): a scan of journal_lines, growing with
-- the ledger, for every booking.
--
-- Checking the new lines alone is the same guarantee: every statement that
-- changes journal_lines is checked, so the lines already stored balance per
-- entry and currency; the new ones keep an entry balanced exactly when they
-- balance among themselves (per entry and currency). UPDATE and DELETE keep
-- the whole-entry check of 000004 (their transition tables hold only the
-- changed lines; what is left of the entry must be read).
CREATE FUNCTION journal_new_lines_balance() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP TRIGGER journal_lines_balance_insert ON journal_lines;
CREATE TRIGGER journal_lines_balance_insert
    AFTER INSERT ON journal_lines REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_new_lines_balance();
