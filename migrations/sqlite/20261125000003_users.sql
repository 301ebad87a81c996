-- Users of the identity service. `email_key` is the lower-cased email, unique, so addresses are
-- unique case-insensitively while `email` keeps the spelling the user gave. Permissions are a
-- JSON array of strings; `password_hash` is an Argon2id PHC string and never leaves the host.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    permissions   TEXT NOT NULL DEFAULT '[]',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
