DROP TRIGGER journal_lines_balance_insert ON journal_lines;
CREATE TRIGGER journal_lines_balance_insert
    AFTER INSERT ON journal_lines REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entry_balances();
DROP FUNCTION journal_new_lines_balance();
