-- Issue 7 item 9: the ledger is append-only. A booked entry is never changed
-- or removed (a correction is a reversing entry, as in any ledger), so the
-- database refuses UPDATE and DELETE on journal_entries and journal_lines.
--
-- That lets the lines' foreign key to their entry go: it ran one lookup
-- and one row lock per line (about a fifth of a payout's journal insert).
-- A second insert trigger instead checks, once per statement, that every
-- entry the new lines name exists; as no entry can be deleted or re-keyed,
-- that is the guarantee the foreign key gave.
--
-- The whole-entry balance checks on UPDATE and DELETE (000004) stay: they
-- no longer run, and would again if the append-only triggers were dropped.
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_merchant_id_entry_id_fkey;

CREATE FUNCTION journal_lines_entries_exist() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER journal_lines_entries_exist
    AFTER INSERT ON journal_lines REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_lines_entries_exist();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused (book a reversing entry instead)',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

-- Statement-level and BEFORE: refused before any row is touched.
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
