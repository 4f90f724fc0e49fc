-- The dashboard reads small daily rollups instead of a million job and transfer
-- rows. Triggers keep them in the transaction that writes the source row, so they
-- are exact and counted once: a job ends through one compare-and-swap transition
-- (only the first move into SUCCEEDED/FAILED matches the trigger's WHEN), and a
-- transfer row is written once (its id is unique).
--
-- The size tier is a column written with the job (storage reads it from the
-- params at intake), so no report parses JSON.
ALTER TABLE jobs ADD COLUMN tier TEXT;
UPDATE jobs SET tier = json_extract(params, '$.resolution');

-- Job times as a histogram: bucket 0 holds everything under 0.1 s, bucket k >= 1
-- the times in [0.1 * 1.1^(k-1), 0.1 * 1.1^k). A percentile is read as its
-- bucket's geometric middle: within about 5 % of the exact value.
CREATE TABLE time_buckets (
    bucket INTEGER PRIMARY KEY,
    lo     REAL    NOT NULL UNIQUE
);
INSERT INTO time_buckets (bucket, lo) VALUES (0, -1e300);
INSERT INTO time_buckets (bucket, lo)
    WITH RECURSIVE b (k, lo) AS (SELECT 1, 0.1 UNION ALL SELECT k + 1, lo * 1.1 FROM b WHERE k < 200)
    SELECT k, lo FROM b;

-- Jobs by the UTC day they were created: how many, and how many of those ended
-- each way (the rest are still active).
CREATE TABLE job_created_days (
    day       INTEGER PRIMARY KEY,
    jobs      INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    failed    INTEGER NOT NULL
);

-- Ended jobs by the UTC day they ended, vendor ('' = the one configured vendor),
-- tier, outcome, error code (failures) and time bucket (successes; -1 otherwise).
CREATE TABLE job_days (
    day    INTEGER NOT NULL,
    state  TEXT    NOT NULL,
    vendor TEXT    NOT NULL,
    tier   TEXT    NOT NULL,
    error  TEXT    NOT NULL,
    bucket INTEGER NOT NULL,
    jobs   INTEGER NOT NULL,
    PRIMARY KEY (day, state, vendor, tier, error, bucket)
) WITHOUT ROWID;

-- Transfers the money figures add up, by UTC day and kind.
CREATE TABLE money_days (
    day       INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    transfers INTEGER NOT NULL,
    amount    INTEGER NOT NULL,
    PRIMARY KEY (day, kind)
) WITHOUT ROWID;

-- Charges by UTC day and user: the top users of a window.
CREATE TABLE user_days (
    day        INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    jobs       INTEGER NOT NULL,
    charged    INTEGER NOT NULL,
    PRIMARY KEY (day, account_id)
) WITHOUT ROWID;

CREATE TRIGGER jobs_rollup_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_created_days (day, jobs, succeeded, failed)
        VALUES (CAST(NEW.created_at / 86400 AS INTEGER), 1,
                NEW.state = 'SUCCEEDED', NEW.state = 'FAILED')
        ON CONFLICT (day) DO UPDATE SET jobs = jobs + 1,
            succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed;
    INSERT INTO job_days (day, state, vendor, tier, error, bucket, jobs)
        SELECT CAST(NEW.updated_at / 86400 AS INTEGER), NEW.state, COALESCE(NEW.vendor, ''),
               COALESCE(NEW.tier, ''),
               CASE WHEN NEW.state = 'FAILED' THEN COALESCE(NEW.error, '') ELSE '' END,
               CASE WHEN NEW.state = 'SUCCEEDED' THEN
                   (SELECT bucket FROM time_buckets WHERE lo <= NEW.updated_at - NEW.created_at
                    ORDER BY lo DESC LIMIT 1)
               ELSE -1 END,
               1
        WHERE NEW.state IN ('SUCCEEDED', 'FAILED')
        ON CONFLICT (day, state, vendor, tier, error, bucket) DO UPDATE SET jobs = jobs + 1;
END;

CREATE TRIGGER jobs_rollup_end AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('SUCCEEDED', 'FAILED') AND OLD.state NOT IN ('SUCCEEDED', 'FAILED')
BEGIN
    INSERT INTO job_created_days (day, jobs, succeeded, failed)
        VALUES (CAST(NEW.created_at / 86400 AS INTEGER), 0,
                NEW.state = 'SUCCEEDED', NEW.state = 'FAILED')
        ON CONFLICT (day) DO UPDATE SET
            succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed;
    INSERT INTO job_days (day, state, vendor, tier, error, bucket, jobs)
        SELECT CAST(NEW.updated_at / 86400 AS INTEGER), NEW.state, COALESCE(NEW.vendor, ''),
               COALESCE(NEW.tier, ''),
               CASE WHEN NEW.state = 'FAILED' THEN COALESCE(NEW.error, '') ELSE '' END,
               CASE WHEN NEW.state = 'SUCCEEDED' THEN
                   (SELECT bucket FROM time_buckets WHERE lo <= NEW.updated_at - NEW.created_at
                    ORDER BY lo DESC LIMIT 1)
               ELSE -1 END,
               1
        WHERE true
        ON CONFLICT (day, state, vendor, tier, error, bucket) DO UPDATE SET jobs = jobs + 1;
END;

CREATE TRIGGER transfers_rollup AFTER INSERT ON transfers
WHEN NEW.kind IN ('charge', 'vendor_loss', 'purchase')
BEGIN
    INSERT INTO money_days (day, kind, transfers, amount)
        VALUES (CAST(NEW.created_at / 86400 AS INTEGER), NEW.kind, 1, NEW.amount)
        ON CONFLICT (day, kind) DO UPDATE SET
            transfers = transfers + 1, amount = amount + excluded.amount;
    INSERT INTO user_days (day, account_id, jobs, charged)
        SELECT CAST(NEW.created_at / 86400 AS INTEGER), NEW.debit_account_id, 1, NEW.amount
        WHERE NEW.kind = 'charge'
        ON CONFLICT (day, account_id) DO UPDATE SET
            jobs = jobs + 1, charged = charged + excluded.charged;
END;

-- Backfill from the rows already there (the durations as the rows stand now).
INSERT INTO job_created_days (day, jobs, succeeded, failed)
    SELECT CAST(created_at / 86400 AS INTEGER) AS d, COUNT(*),
           SUM(state = 'SUCCEEDED'), SUM(state = 'FAILED')
    FROM jobs GROUP BY d;
INSERT INTO job_days (day, state, vendor, tier, error, bucket, jobs)
    SELECT d, state, vendor, tier, error, bucket, COUNT(*) FROM (
        SELECT CAST(updated_at / 86400 AS INTEGER) AS d, state,
               COALESCE(vendor, '') AS vendor, COALESCE(tier, '') AS tier,
               CASE WHEN state = 'FAILED' THEN COALESCE(error, '') ELSE '' END AS error,
               CASE WHEN state = 'SUCCEEDED' THEN
                   (SELECT bucket FROM time_buckets WHERE lo <= updated_at - created_at
                    ORDER BY lo DESC LIMIT 1)
               ELSE -1 END AS bucket
        FROM jobs WHERE state IN ('SUCCEEDED', 'FAILED'))
    GROUP BY d, state, vendor, tier, error, bucket;
INSERT INTO money_days (day, kind, transfers, amount)
    SELECT CAST(created_at / 86400 AS INTEGER) AS d, kind, COUNT(*), SUM(amount)
    FROM transfers WHERE kind IN ('charge', 'vendor_loss', 'purchase') GROUP BY d, kind;
INSERT INTO user_days (day, account_id, jobs, charged)
    SELECT CAST(created_at / 86400 AS INTEGER) AS d, debit_account_id, COUNT(*), SUM(amount)
    FROM transfers WHERE kind = 'charge' GROUP BY d, debit_account_id;


-- The queue right now: only the jobs not ended, answered from the index alone.
CREATE INDEX jobs_active ON jobs (queue, state, claimed_by, created_at)
    WHERE state IN ('NEW', 'RESERVED', 'SUBMITTING', 'POLLING', 'DELIVERING');
