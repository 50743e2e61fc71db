-- Retention and TTL. A project may keep its events for `retention_days` (NULL: forever);
-- an event may carry its own `expires_at` (Buildable's ttl). Reads hide both at once;
-- housekeeping removes them from disk (services/housekeeping.py).
-- `events_expiring` holds only events with a TTL, so events without one (most) cost ingest
-- nothing more, and a housekeeping pass finds the expired ones without reading the table.
-- `idempotency_keys_expiry` lets a pass delete keys past their window (they were never
-- removed before; a reused key only overwrote its row). Both indexes are append-mostly:
-- a key expires a fixed window after it was made.

ALTER TABLE projects ADD COLUMN retention_days INTEGER;
CREATE INDEX events_expiring ON events (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
