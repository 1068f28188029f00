-- Issue 23: a writer never waits on a job row a worker holds.
--
-- A worker's claim is a row lock held for its whole batch (seconds for a
-- large payout). Ingest used to make a job ready with an upsert, which
-- waits on that lock: a daily payout named by thousands of balance
-- transactions held ingest up behind the worker all day. Now a writer
-- inserts the job if absent and bumps it if nobody holds it; when a worker
-- holds it (or a concurrent writer was inserting it), the writer appends a
-- signal here instead. The worker folds signals into jobs between batches
-- (storage::jobs::fold_signals): a signal whose job is still held stays
-- for the next fold, so a fact committed while its job ran is always run
-- again after.
CREATE TABLE job_signals (
    merchant_id text COLLATE "C" NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    kind        text COLLATE "C" NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    subject_id  text COLLATE "C" NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 255),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, seq)
);
SELECT pg_temp.tally_distribute('job_signals');
