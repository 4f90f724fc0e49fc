-- When the platform itself refunded the purchase (Discord deleted its entitlement)
-- and the bot acted on it: the credits were taken back (status 'refunded') or,
-- already spent, left with the user (status stays 'credited') and the admins were
-- alerted. Set once, in the transaction that takes the credits back, so a
-- redelivered event or the next start acts on it never twice; NULL = not refunded
-- by the platform.
ALTER TABLE payments ADD COLUMN platform_refunded_at REAL;
