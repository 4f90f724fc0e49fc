-- The durable job queue: a job names the queue of workers that may run it, and a
-- worker holds it under a lease it renews; an expired lease is what recovery takes.
ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until REAL;
UPDATE jobs SET queue = platform WHERE queue = '';
CREATE INDEX jobs_queued ON jobs (queue, created_at)
    WHERE state = 'RESERVED' AND claimed_by IS NULL;
CREATE INDEX jobs_claims ON jobs (lease_until)
    WHERE claimed_by IS NOT NULL AND state NOT IN ('SUCCEEDED', 'FAILED');
CREATE INDEX jobs_account_claims ON jobs (account_id)
    WHERE claimed_by IS NOT NULL AND state IN ('RESERVED', 'SUBMITTING', 'POLLING');

-- Shared concurrency limits (the vendor's): every process claims under the same row.
CREATE TABLE limits (
    name       TEXT    PRIMARY KEY,
    value      INTEGER NOT NULL CHECK (value >= 1),
    ceiling    INTEGER NOT NULL CHECK (ceiling >= 1),
    not_before REAL    NOT NULL DEFAULT 0,
    cut_at     REAL    NOT NULL DEFAULT 0,
    updated_at REAL    NOT NULL
);

-- Credits are integers: SQLite would silently turn an overflowing sum into REAL.
CREATE TRIGGER accounts_integer_update BEFORE UPDATE ON accounts
WHEN typeof(NEW.balance) <> 'integer' OR typeof(NEW.pending) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'account balances must stay integers');
END;
CREATE TRIGGER accounts_integer_insert BEFORE INSERT ON accounts
WHEN typeof(NEW.balance) <> 'integer' OR typeof(NEW.pending) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'account balances must stay integers');
END;
