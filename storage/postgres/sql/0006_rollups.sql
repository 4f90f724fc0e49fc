-- The dashboard reads small daily rollups instead of a million job and transfer
-- rows. Triggers keep them in the transaction that writes the source row, so they
-- are exact and counted once: a job ends through one compare-and-swap transition
-- (only the first move into SUCCEEDED/FAILED matches the trigger's WHEN), and a
-- transfer row is written once (ON CONFLICT DO NOTHING fires no row trigger).
--
-- The size tier is a column written with the job (storage reads it from the
-- params at intake), so no report parses JSON.
ALTER TABLE jobs ADD COLUMN tier TEXT;
UPDATE jobs SET tier = params::jsonb ->> 'resolution';

-- Job times as a histogram: bucket 0 holds everything under 0.1 s, bucket k >= 1
-- the times in [0.1 * 1.1^(k-1), 0.1 * 1.1^k). A percentile is read as its
-- bucket's geometric middle: within about 5 % of the exact value.
CREATE TABLE time_buckets (
    bucket INTEGER          PRIMARY KEY,
    lo     DOUBLE PRECISION NOT NULL UNIQUE
);
INSERT INTO time_buckets (bucket, lo) VALUES (0, -1e300);
INSERT INTO time_buckets (bucket, lo)
    WITH RECURSIVE b (k, lo) AS (
        SELECT 1, 0.1::double precision UNION ALL SELECT k + 1, lo * 1.1 FROM b WHERE k < 200)
    SELECT k, lo FROM b;

-- Jobs by the UTC day they were created: how many, and how many of those ended
-- each way (the rest are still active).
CREATE TABLE job_created_days (
    day       BIGINT PRIMARY KEY,
    jobs      BIGINT NOT NULL,
    succeeded BIGINT NOT NULL,
    failed    BIGINT NOT NULL
);

-- Ended jobs by the UTC day they ended, vendor ('' = the one configured vendor),
-- tier, outcome, error code (failures) and time bucket (successes; -1 otherwise).
CREATE TABLE job_days (
    day    BIGINT  NOT NULL,
    state  TEXT    NOT NULL,
    vendor TEXT    NOT NULL,
    tier   TEXT    NOT NULL,
    error  TEXT    NOT NULL,
    bucket INTEGER NOT NULL,
    jobs   BIGINT  NOT NULL,
    PRIMARY KEY (day, state, vendor, tier, error, bucket)
);

-- Transfers the money figures add up, by UTC day and kind.
CREATE TABLE money_days (
    day       BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    transfers BIGINT NOT NULL,
    amount    BIGINT NOT NULL,
    PRIMARY KEY (day, kind)
);

-- Charges by UTC day and user: the top users of a window.
CREATE TABLE user_days (
    day        BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    jobs       BIGINT NOT NULL,
    charged    BIGINT NOT NULL,
    PRIMARY KEY (day, account_id)
);
CREATE INDEX user_days_cover ON user_days (day) INCLUDE (account_id, jobs, charged);

CREATE FUNCTION time_bucket(took DOUBLE PRECISION) RETURNS INTEGER
LANGUAGE sql STABLE AS $$
    SELECT bucket FROM time_buckets WHERE lo <= took ORDER BY lo DESC LIMIT 1
$$;

CREATE FUNCTION job_days_add(j jobs) RETURNS void LANGUAGE sql AS $$
    INSERT INTO job_days (day, state, vendor, tier, error, bucket, jobs)
    VALUES (floor(j.updated_at / 86400)::bigint, j.state, COALESCE(j.vendor, ''),
            COALESCE(j.tier, ''),
            CASE WHEN j.state = 'FAILED' THEN COALESCE(j.error, '') ELSE '' END,
            CASE WHEN j.state = 'SUCCEEDED' THEN time_bucket(j.updated_at - j.created_at)
                 ELSE -1 END,
            1)
    ON CONFLICT (day, state, vendor, tier, error, bucket)
    DO UPDATE SET jobs = job_days.jobs + 1
$$;

CREATE FUNCTION jobs_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_created_days (day, jobs, succeeded, failed)
    VALUES (floor(NEW.created_at / 86400)::bigint, 1,
            CASE WHEN NEW.state = 'SUCCEEDED' THEN 1 ELSE 0 END,
            CASE WHEN NEW.state = 'FAILED' THEN 1 ELSE 0 END)
    ON CONFLICT (day) DO UPDATE SET jobs = job_created_days.jobs + 1,
        succeeded = job_created_days.succeeded + excluded.succeeded,
        failed = job_created_days.failed + excluded.failed;
    IF NEW.state IN ('SUCCEEDED', 'FAILED') THEN
        PERFORM job_days_add(NEW);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION jobs_rollup_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_created_days (day, jobs, succeeded, failed)
    VALUES (floor(NEW.created_at / 86400)::bigint, 0,
            CASE WHEN NEW.state = 'SUCCEEDED' THEN 1 ELSE 0 END,
            CASE WHEN NEW.state = 'FAILED' THEN 1 ELSE 0 END)
    ON CONFLICT (day) DO UPDATE SET
        succeeded = job_created_days.succeeded + excluded.succeeded,
        failed = job_created_days.failed + excluded.failed;
    PERFORM job_days_add(NEW);
    RETURN NULL;
END
$$;

CREATE FUNCTION transfers_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO money_days (day, kind, transfers, amount)
    VALUES (floor(NEW.created_at / 86400)::bigint, NEW.kind, 1, NEW.amount)
    ON CONFLICT (day, kind) DO UPDATE SET transfers = money_days.transfers + 1,
        amount = money_days.amount + excluded.amount;
    IF NEW.kind = 'charge' THEN
        INSERT INTO user_days (day, account_id, jobs, charged)
        VALUES (floor(NEW.created_at / 86400)::bigint, NEW.debit_account_id, 1, NEW.amount)
        ON CONFLICT (day, account_id) DO UPDATE SET jobs = user_days.jobs + 1,
            charged = user_days.charged + excluded.charged;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_rollup_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_rollup_insert();
CREATE TRIGGER jobs_rollup_end AFTER UPDATE OF state ON jobs
    FOR EACH ROW
    WHEN (NEW.state IN ('SUCCEEDED', 'FAILED') AND OLD.state NOT IN ('SUCCEEDED', 'FAILED'))
    EXECUTE FUNCTION jobs_rollup_end();
CREATE TRIGGER transfers_rollup AFTER INSERT ON transfers
    FOR EACH ROW WHEN (NEW.kind IN ('charge', 'vendor_loss', 'purchase'))
    EXECUTE FUNCTION transfers_rollup();

-- Backfill from the rows already there (the durations as the rows stand now).
INSERT INTO job_created_days (day, jobs, succeeded, failed)
    SELECT floor(created_at / 86400)::bigint AS d, COUNT(*),
           COUNT(*) FILTER (WHERE state = 'SUCCEEDED'), COUNT(*) FILTER (WHERE state = 'FAILED')
    FROM jobs GROUP BY d;
INSERT INTO job_days (day, state, vendor, tier, error, bucket, jobs)
    SELECT floor(updated_at / 86400)::bigint AS d, state, COALESCE(vendor, '') AS v,
           COALESCE(tier, '') AS t,
           CASE WHEN state = 'FAILED' THEN COALESCE(error, '') ELSE '' END AS e,
           CASE WHEN state = 'SUCCEEDED' THEN time_bucket(updated_at - created_at)
                ELSE -1 END AS b,
           COUNT(*)
    FROM jobs WHERE state IN ('SUCCEEDED', 'FAILED')
    GROUP BY d, state, v, t, e, b;
INSERT INTO money_days (day, kind, transfers, amount)
    SELECT floor(created_at / 86400)::bigint AS d, kind, COUNT(*), SUM(amount)
    FROM transfers WHERE kind IN ('charge', 'vendor_loss', 'purchase') GROUP BY d, kind;
INSERT INTO user_days (day, account_id, jobs, charged)
    SELECT floor(created_at / 86400)::bigint AS d, debit_account_id, COUNT(*), SUM(amount)
    FROM transfers WHERE kind = 'charge' GROUP BY d, debit_account_id;

-- The queue right now: only the jobs not ended, answered from the index alone.
CREATE INDEX jobs_active ON jobs (queue, state, claimed_by, created_at)
    WHERE state IN ('NEW', 'RESERVED', 'SUBMITTING', 'POLLING', 'DELIVERING');
