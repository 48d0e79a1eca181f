-- Users of the API and (soon) the dashboard. Portable between SQLite and PostgreSQL:
-- TEXT and BIGINT only, times as Unix seconds.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    -- argon2id, PHC string format
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer', 'api')),
    -- comma-separated namespaces the user may see; empty: all of them
    namespaces    TEXT NOT NULL DEFAULT '',
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);
