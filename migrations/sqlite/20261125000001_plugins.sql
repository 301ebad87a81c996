-- Plugins a host has loaded: which build (content hash) of each is serving, and since when.
CREATE TABLE plugins (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    loaded_at    TEXT NOT NULL
);
