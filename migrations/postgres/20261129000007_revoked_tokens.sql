-- Access tokens revoked by logout, kept until they expire: the source of truth behind the cache's
-- copy, so a revocation survives a cache that restarts empty.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
