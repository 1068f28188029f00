-- A stored reply belongs to the method that answered it, and is kept in a
-- transport-neutral form (JSON of the outcomes) that the API encodes, not
-- as wire bytes. Replies stored before this migration were wire bytes of an
-- unknown method; they are dropped (a retry of such a request is then
-- judged record by record: duplicates, nothing written twice).
DELETE FROM submissions;
ALTER TABLE submissions
    DROP COLUMN response,
    ADD COLUMN method text NOT NULL CHECK (method IN ('submit_records', 'stream_records')),
    ADD COLUMN reply jsonb;
