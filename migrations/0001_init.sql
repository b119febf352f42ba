-- oidc-realm on PostgreSQL, schema version 1. Applied once, inside one transaction, by the
-- migrator embedded in the binary (src/store/postgres/migrate.rs), under an advisory lock.
--
-- Names (realms, users, mappings, uids) are UTF-8 in bytea columns: any character, NUL too,
-- and byte order.
--
-- Tokens: the whole record in `doc` (the binary form of src/store/codec.rs), plus the
-- fields the store looks records up by. Those never change after insert: refresh and
-- invalidation rewrite `doc` only.
CREATE TABLE tokens (
    access_hash  bytea  PRIMARY KEY,
    refresh_hash bytea  UNIQUE,
    family       bytea  NOT NULL,
    realm        bytea  NOT NULL,
    username     bytea  NOT NULL,
    expires_at   bigint NOT NULL,
    doc          bytea  NOT NULL
);
CREATE INDEX tokens_family ON tokens (family);
CREATE INDEX tokens_owner ON tokens (realm, username);
CREATE INDEX tokens_username ON tokens (username);
CREATE INDEX tokens_expiry ON tokens (expires_at);

-- Pending logins: shared by every node, need not survive a crash of the database (a user
-- whose login was in flight logs in again), so not written to the WAL (and not replicated).
CREATE UNLOGGED TABLE flows (
    state_hash bytea  PRIMARY KEY,
    realm      bytea  NOT NULL,
    caller     bytea  NOT NULL,
    expires_at bigint NOT NULL,
    sealed     bytea  NOT NULL
);
CREATE INDEX flows_caller ON flows (caller, expires_at);
CREATE INDEX flows_expiry ON flows (expires_at);

-- Role mappings written through the API: the API's JSON body, by name.
CREATE TABLE role_mappings (
    name bytea PRIMARY KEY,
    body bytea NOT NULL
);

-- User profiles: the record (JSON) and its version, by uid.
CREATE TABLE profiles (
    uid    bytea  PRIMARY KEY,
    seq_no bigint NOT NULL,
    body   bytea  NOT NULL
);

-- Live counts of `flows` rows per caller, and in total under the empty caller '\x' (callers
-- are 32-byte hashes), kept by a trigger on every insert and delete (takes, sweeps, purges),
-- so the limit checks read two rows instead of counting. UNLOGGED like `flows`: a crash
-- empties both together. Every change locks the total row first, then the caller's: one
-- order for all, so the counters cannot deadlock.
CREATE UNLOGGED TABLE flow_counts (
    caller bytea  PRIMARY KEY,
    n      bigint NOT NULL
);

CREATE FUNCTION flow_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flow_counts (caller, n) VALUES ('\x'::bytea, 1)
            ON CONFLICT (caller) DO UPDATE SET n = flow_counts.n + 1;
        INSERT INTO flow_counts (caller, n) VALUES (NEW.caller, 1)
            ON CONFLICT (caller) DO UPDATE SET n = flow_counts.n + 1;
        RETURN NEW;
    END IF;
    UPDATE flow_counts SET n = n - 1 WHERE caller = '\x'::bytea;
    UPDATE flow_counts SET n = n - 1 WHERE caller = OLD.caller;
    RETURN OLD;
END
$$;

CREATE TRIGGER flows_counted AFTER INSERT OR DELETE ON flows
    FOR EACH ROW EXECUTE FUNCTION flow_counted();

-- Record a pending login if the limits allow, in one call (one round trip), under a
-- transaction-scoped advisory lock (the caller passes its key) so the checks and the insert
-- of every node are serialised: expired flows are removed first (so they never count), then
-- the counters are read.
CREATE FUNCTION insert_flow(
    p_state bytea, p_realm bytea, p_caller bytea, p_expires_at bigint, p_sealed bytea,
    p_now bigint, p_per_caller bigint, p_total bigint, p_lock bigint
) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    DELETE FROM flows WHERE expires_at <= p_now;
    IF EXISTS (SELECT 1 FROM flows WHERE state_hash = p_state) THEN
        RETURN 'state_in_use';
    END IF;
    IF coalesce((SELECT n FROM flow_counts WHERE caller = p_caller), 0) >= p_per_caller THEN
        RETURN 'caller_full';
    END IF;
    IF coalesce((SELECT n FROM flow_counts WHERE caller = '\x'::bytea), 0) >= p_total THEN
        RETURN 'table_full';
    END IF;
    INSERT INTO flows (state_hash, realm, caller, expires_at, sealed)
        VALUES (p_state, p_realm, p_caller, p_expires_at, p_sealed);
    RETURN 'inserted';
END
$$;
