-- A stored reply belongs to the method that answered it, and is kept in a
-- transport-neutral form (JSON of the outcomes) that the API encodes, not
-- as wire bytes. Replies stored before this migration were wire bytes of an
-- unknown method; they are dropped (a retry of such a request is then
-- judged record by record: duplicates, nothing written twice).
DELETE FROM submissions;
-- The check is added by name: Citus needs every constraint named.
ALTER TABLE submissions
    DROP COLUMN response,
    ADD COLUMN method text NOT NULL,
    ADD COLUMN reply jsonb;
ALTER TABLE submissions ADD CONSTRAINT submissions_method_check
    CHECK (method IN ('submit_records', 'stream_records'));
