-- Every text column compares as bytes (collation "C"). They hold ids,
-- codes, kinds and states: opaque strings whose order only has to be
-- stable, and bytewise order is also the order Rust sorts them in. Under a
-- locale collation (the server's default, e.g. en_US.UTF-8 or C.UTF-8) each
-- comparison in an index goes through strcoll, and an index built under
-- one C library's collation rules can silently disagree with the next
-- (the glibc 2.28 upgrade corrupted such indexes). Changing a column's
-- collation rewrites no table, only the indexes on it.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND table_name NOT LIKE '\_\_diesel%'
          AND collation_name IS DISTINCT FROM 'C'
        ORDER BY table_name, ordinal_position
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"',
                       c.table_name, c.column_name);
    END LOOP;
END $$;
