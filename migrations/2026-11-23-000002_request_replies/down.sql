DELETE FROM submissions;
ALTER TABLE submissions
    DROP COLUMN reply,
    DROP COLUMN method,
    ADD COLUMN response bytea NOT NULL;
