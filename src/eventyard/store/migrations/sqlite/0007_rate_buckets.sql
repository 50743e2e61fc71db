-- Token buckets shared by every server process on the database: per API key when rate
-- limits are on (PostgreSQL only; on SQLite one process holds the database and keeps its
-- buckets in memory), and per email for dashboard sign-in. A bucket holds `tokens` as of
-- `updated_us`; it refills at its rate up to its burst, computed when it is next taken from.
-- `taken` is how many tokens the last take got (a take may ask for several at once).
CREATE TABLE rate_buckets (
    bucket TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_us INTEGER NOT NULL,
    taken INTEGER NOT NULL
);
