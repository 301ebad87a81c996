-- A user's version: bumped by every update. A cached copy is replaced only by a newer version, so
-- a reader that loaded the row before an update (a disable, a permission change) cannot put the
-- old row back into the cache after the update's own entry.
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
