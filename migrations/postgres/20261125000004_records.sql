-- Plugins' JSON documents (the records capability). A document belongs to one plugin's collection
-- and, in a `user` collection, to one user (`owner`); shared collections use owner ''. Listing
-- walks `id` order within (plugin, collection, owner), which the primary key serves; ids compare
-- bytewise ("C" collation), as in SQLite.
CREATE TABLE records (
    plugin      TEXT NOT NULL,
    collection  TEXT NOT NULL,
    owner       TEXT NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    data        JSONB NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (plugin, collection, owner, id)
);

-- A deleted user's documents are deleted with them.
CREATE INDEX records_owner ON records (owner) WHERE owner <> '';
