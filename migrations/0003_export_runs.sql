-- Billing exports, one row per run of `kubemeter export`: what was exported, where to, and the
-- SHA-256 of the bytes, so a statement a billing system received can be matched to its run and
-- a re-run shown to be identical. Portable between SQLite and PostgreSQL: TEXT and BIGINT only,
-- times as Unix seconds (period bounds in nanoseconds, as statements have them).
CREATE TABLE export_runs (
    id           TEXT PRIMARY KEY,
    period_from  BIGINT NOT NULL,
    period_to    BIGINT NOT NULL,
    grouping     TEXT NOT NULL,
    format       TEXT NOT NULL,
    modes        TEXT NOT NULL,
    row_count    BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    -- a file path, '-' for standard output, or the URL the statement was posted to
    destination  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX export_runs_by_period ON export_runs (period_from, period_to);
