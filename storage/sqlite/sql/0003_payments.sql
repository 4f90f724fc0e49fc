-- Purchases users make themselves (Telegram Stars, Discord consumable SKUs). A
-- payment's credits come from the ``system:sales`` account, so the books still sum
-- to zero; the platform's charge id (Telegram's telegram_payment_charge_id, a
-- Discord entitlement id) is the key that makes crediting happen once.
INSERT INTO accounts (kind, platform, external_id, created_at, updated_at) VALUES
    ('system', 'system', 'sales', strftime('%s', 'now'), strftime('%s', 'now'));

CREATE TABLE payments (
    platform    TEXT    NOT NULL,
    charge_id   TEXT    NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    credits     INTEGER NOT NULL CHECK (credits > 0),
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    currency    TEXT    NOT NULL,
    pack        TEXT    NOT NULL,
    transfer_id TEXT    NOT NULL UNIQUE,
    status      TEXT    NOT NULL DEFAULT 'credited'
                CHECK (status IN ('credited', 'refunding', 'refunded')),
    consumed_at REAL,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL,
    PRIMARY KEY (platform, charge_id)
);
CREATE INDEX payments_recent ON payments (created_at);
-- Discord entitlements credited but not yet consumed (a crash in between).
CREATE INDEX payments_unconsumed ON payments (platform) WHERE consumed_at IS NULL;
