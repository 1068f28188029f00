DROP TRIGGER journal_entries_append_only ON journal_entries;
DROP TRIGGER journal_lines_append_only ON journal_lines;
DROP FUNCTION ledger_append_only();
DROP TRIGGER journal_lines_entries_exist ON journal_lines;
DROP FUNCTION journal_lines_entries_exist();
ALTER TABLE journal_lines ADD FOREIGN KEY (merchant_id, entry_id)
    REFERENCES journal_entries (merchant_id, entry_id);
