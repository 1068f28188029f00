-- Issue 23: a writer never waits on the worker.
--
-- A worker's claim is a row lock held for its whole batch (seconds for a
-- large payout), and a job it completed is a row it deleted, locked until
-- the batch commits. Ingest made jobs ready with an upsert on `jobs`, which
-- waits on either (even `INSERT ... ON CONFLICT DO NOTHING` waits on an
-- uncommitted delete of the same key): a daily payout named by thousands of
-- balance transactions held ingest up behind the worker all day. Now every
-- writer appends a signal here, a table with no unique key, and the worker
-- folds signals into jobs before each batch (storage::job_signals::fold):
-- a job still held keeps its signals for the next fold, so a fact
-- committed while its job ran always runs it again.
CREATE TABLE job_signals (
    merchant_id text COLLATE "C" NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    kind        text COLLATE "C" NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    subject_id  text COLLATE "C" NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 255),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, seq)
);
SELECT pg_temp.tally_distribute('job_signals');
