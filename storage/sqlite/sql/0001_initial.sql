-- The first schema: accounts, the append-only transfer log, holds, jobs, audit, flags.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'system')),
    platform    TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    username    TEXT    COLLATE NOCASE,
    balance     INTEGER NOT NULL DEFAULT 0,
    pending     INTEGER NOT NULL DEFAULT 0,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL,
    UNIQUE (platform, external_id),
    -- Belt and braces: the repository guards every debit, but the database itself
    -- refuses to let a user account go below zero available credits.
    CHECK (pending >= 0),
    CHECK (kind = 'system' OR balance - pending >= 0)
);
CREATE INDEX accounts_username ON accounts (platform, username) WHERE username IS NOT NULL;

-- System accounts exist from the start so every transfer has both legs.
INSERT INTO accounts (kind, platform, external_id, created_at, updated_at) VALUES
    ('system', 'system', 'topup',       strftime('%s', 'now'), strftime('%s', 'now')),
    ('system', 'system', 'revenue',     strftime('%s', 'now'), strftime('%s', 'now')),
    ('system', 'system', 'vendor_loss', strftime('%s', 'now'), strftime('%s', 'now')),
    ('system', 'system', 'welcome',     strftime('%s', 'now'), strftime('%s', 'now'));

CREATE TABLE transfers (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id       TEXT    NOT NULL UNIQUE,
    debit_account_id  INTEGER NOT NULL REFERENCES accounts (id),
    credit_account_id INTEGER NOT NULL REFERENCES accounts (id),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    kind              TEXT    NOT NULL,
    actor             TEXT,
    reason            TEXT,
    job_id            TEXT,
    hold_id           TEXT,
    created_at        REAL    NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX transfers_debit  ON transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers (credit_account_id, seq);
CREATE INDEX transfers_hold   ON transfers (hold_id) WHERE hold_id IS NOT NULL;

-- The transfer log is append-only: corrections are new rows, never edits.
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers are append-only');
END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers are append-only');
END;

CREATE TABLE holds (
    id          TEXT    PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    job_id      TEXT,
    expires_at  REAL,
    created_at  REAL    NOT NULL,
    resolved_at REAL,
    charged     INTEGER NOT NULL DEFAULT 0 CHECK (charged >= 0 AND charged <= amount),
    transfer_id TEXT,
    reason      TEXT
);
CREATE INDEX holds_pending ON holds (expires_at) WHERE status = 'pending';
CREATE INDEX holds_account ON holds (account_id) WHERE status = 'pending';
CREATE INDEX holds_job     ON holds (job_id) WHERE job_id IS NOT NULL;

-- A resolved hold can never change again (the CAS in the repository already
-- guarantees it; this makes a buggy caller fail loudly instead).
CREATE TRIGGER holds_resolved_frozen BEFORE UPDATE ON holds
WHEN OLD.status <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'hold already resolved');
END;

CREATE TABLE jobs (
    id         TEXT    PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    platform   TEXT    NOT NULL,
    chat       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('generate', 'edit')),
    params     TEXT    NOT NULL,
    estimate   INTEGER NOT NULL,
    hold_id    TEXT,
    state      TEXT    NOT NULL CHECK (state IN
               ('NEW', 'RESERVED', 'SUBMITTING', 'POLLING', 'DELIVERING', 'SUCCEEDED', 'FAILED')),
    vendor_ref TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    result     TEXT,
    cost       INTEGER,
    error      TEXT,
    notified   INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_at REAL,
    created_at REAL    NOT NULL,
    updated_at REAL    NOT NULL
);
CREATE INDEX jobs_state_updated   ON jobs (state, updated_at);
CREATE INDEX jobs_account_created ON jobs (account_id, created_at);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL    NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT,
    detail  TEXT,
    allowed INTEGER NOT NULL
);

CREATE TABLE flags (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
);
