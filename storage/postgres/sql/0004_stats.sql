-- The dashboard's reads: jobs by the day they were created, and the transfers the
-- money figures add up (charges, vendor losses, purchases) by kind and day, both
-- answered from the index alone. Job times and failures use jobs_state_updated.
CREATE INDEX jobs_created ON jobs (created_at, state);
CREATE INDEX transfers_kind_created ON transfers (kind, created_at)
    INCLUDE (amount, debit_account_id);
