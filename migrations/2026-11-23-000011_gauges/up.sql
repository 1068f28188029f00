-- Issue 9: the open-exceptions gauge (by type and owner) is counted at
-- each scrape; this partial index keeps that to the unresolved rows,
-- however many resolved ones accumulate.
CREATE INDEX exceptions_unresolved ON exceptions (merchant_id, type, owner)
    WHERE state <> 'resolved';
