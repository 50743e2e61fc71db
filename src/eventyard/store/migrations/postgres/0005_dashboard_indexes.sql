-- Indexes for the overview and the consumers page (GET /v1/stats, consumer health), so they
-- read what their window or backlog holds rather than every transaction of the database.
-- The two on transactions are partial: only open or failed transactions are in them, so
-- they stay small and cost little on ingest.

CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
CREATE INDEX transactions_open ON transactions (project_id, environment, consumer_id, created_at)
    WHERE state NOT IN ('finished', 'failed');
CREATE INDEX transactions_failed ON transactions (project_id, environment, updated_at)
    WHERE state = 'failed';
