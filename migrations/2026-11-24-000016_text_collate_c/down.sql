DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND table_name NOT LIKE '\_\_diesel%' AND collation_name = 'C'
        ORDER BY table_name, ordinal_position
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "default"',
                       c.table_name, c.column_name);
    END LOOP;
END $$;
