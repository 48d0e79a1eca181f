-- Dashboard sessions and failed sign-ins. Portable between SQLite and PostgreSQL:
-- TEXT and BIGINT only, times as Unix seconds.

-- One row per signed-in browser. The cookie holds a random token; only its SHA-256 is stored,
-- so a copy of this table does not let anyone in. Signing out deletes the row.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    -- the token every form of this session must carry
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_by_username ON sessions (username);

-- Failed sign-ins, by subject: 'user:<name>' or 'addr:<ip>'. Rows older than the lockout
-- window are deleted as new ones arrive.
CREATE TABLE login_attempts (
    subject     TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_subject ON login_attempts (subject, at);
