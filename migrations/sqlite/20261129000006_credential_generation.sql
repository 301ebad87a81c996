-- A user's credential generation: bumped whenever their password changes. Access tokens carry the
-- generation they were issued under, and a token of an older generation is refused, so a password
-- change signs the user out everywhere.
ALTER TABLE users ADD COLUMN credential_generation INTEGER NOT NULL DEFAULT 0;
