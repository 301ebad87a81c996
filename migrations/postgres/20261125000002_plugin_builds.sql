-- Plugin builds uploaded through the admin API: the source every host sharing this database
-- loads them from. A deleted build stays as a tombstone so hosts that were down also unload it.
CREATE TABLE plugin_builds (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    component    BYTEA NOT NULL,
    uploaded_at  TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);
