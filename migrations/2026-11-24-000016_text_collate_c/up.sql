-- Every text column compares as bytes (collation "C"). They hold ids,
-- codes, kinds and states: opaque strings whose order only has to be
-- stable, and bytewise order is also the order Rust sorts them in. Under a
-- locale collation (the server's default, e.g. en_US.UTF-8 or C.UTF-8) each
-- comparison in an index goes through strcoll, and an index built under
-- one C library's collation rules can silently disagree with the next
-- (the glibc 2.28 upgrade corrupted such indexes). Changing a column's
-- collation rewrites no table, only the indexes on it.
--
-- Only Tally's own tables: ordinary tables of this schema that no extension
-- owns (Citus, for one, keeps catalog tables and views in the schema Tally
-- uses, and they are not Tally's to change).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT t.relname AS table_name, a.attname AS column_name
          FROM pg_class t
          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE t.relnamespace = current_schema()::regnamespace
           AND t.relkind IN ('r', 'p')
           AND t.relname NOT LIKE '\_\_diesel%'
           AND a.atttypid = 'text'::regtype
           AND a.attcollation <> '"C"'::regcollation
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = t.oid
                              AND d.deptype = 'e')
         ORDER BY t.relname, a.attnum
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"',
                       c.table_name, c.column_name);
    END LOOP;
END $$;
