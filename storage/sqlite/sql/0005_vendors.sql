-- With several vendors (VENDORS) a job records the one that took its request: the
-- caption names it, the charge uses its prices and a restarted poll asks it again.
-- NULL: the one configured vendor (rows written before, or VENDOR= alone).
ALTER TABLE jobs ADD COLUMN vendor TEXT;
