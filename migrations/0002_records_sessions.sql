-- oidc-realm on PostgreSQL, schema version 2: connected accounts and back-channel logout.
-- Only adds (nodes of version 1 keep running while the others are replaced).

-- The provider session of an OIDC login (Back-Channel Logout selects tokens by realm and
-- `sid` and/or `sub`): copied from the record on insert, like the other lookup columns, and
-- never changed after. NULL for tokens without one (and for every token written before this
-- migration: no record of schema version 1 carries a session). Adding nullable columns
-- rewrites nothing; the partial indexes hold only the rows that have a session.
ALTER TABLE tokens ADD COLUMN oidc_sub bytea, ADD COLUMN oidc_sid bytea;
CREATE INDEX tokens_oidc_sub ON tokens (realm, oidc_sub) WHERE oidc_sub IS NOT NULL;
CREATE INDEX tokens_oidc_sid ON tokens (realm, oidc_sid) WHERE oidc_sid IS NOT NULL;

-- Generic versioned records (connections defined through the API, per-user grants, refresh
-- leases): opaque bytes by (kind, key), with a version the store owns (compare-and-set).
CREATE TABLE records (
    kind    bytea  NOT NULL,
    key     bytea  NOT NULL,
    version bigint NOT NULL,
    value   bytea  NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Single-use expiring records (pending connection authorizations): like `flows`, shared by
-- every node and need not survive a crash of the database, so UNLOGGED.
CREATE UNLOGGED TABLE once_records (
    kind       bytea  NOT NULL,
    key        bytea  NOT NULL,
    expires_at bigint NOT NULL,
    value      bytea  NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX once_records_expiry ON once_records (expires_at);
