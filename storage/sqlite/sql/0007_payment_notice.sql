-- When the buyer was told their new balance. Claimed in its own transaction after
-- the credit (and, on Discord, after the consume), so a restart after a crash in
-- between tells them once instead of never; NULL = not told yet. Payments made
-- before this column existed were told then, except Discord entitlements still
-- unconsumed (credited just before a crash), which the next start tells.
ALTER TABLE payments ADD COLUMN notified_at REAL;
UPDATE payments SET notified_at = updated_at
    WHERE platform <> 'discord' OR consumed_at IS NOT NULL;
CREATE INDEX payments_unnotified ON payments (platform) WHERE notified_at IS NULL;
