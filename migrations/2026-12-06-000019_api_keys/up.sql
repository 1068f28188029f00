-- Issue 22: API keys. A key is shown once, when created; only the SHA-256
-- of its secret is kept (the secret is 256 random bits, so a plain hash is
-- enough: there is nothing to guess a dictionary word of). The key id is
-- public (it is the first part of the key) and finds the row.
CREATE TABLE api_keys (
    key_id        text COLLATE "C" PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    -- Who calls with it: recorded as the actor of what it changes.
    name          text COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    secret_sha256 bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
    scopes        text[] COLLATE "C" NOT NULL
        CHECK (cardinality(scopes) >= 1
               AND scopes <@ ARRAY['submit', 'read', 'work', 'admin', 'act_as']::text[]),
    -- The common name (CN) of a client certificate that authenticates as
    -- this key over mutual TLS (verified against --tls-client-ca).
    client_cn     text COLLATE "C" UNIQUE CHECK (length(client_cn) BETWEEN 1 AND 255),
    create_time   timestamptz NOT NULL DEFAULT now(),
    expire_time   timestamptz,
    revoke_time   timestamptz
);
SELECT pg_temp.tally_reference('api_keys');

-- The merchants a key may act for, keyed by merchant like every other
-- table ("which keys reach acme" is one index range).
CREATE TABLE api_key_merchants (
    merchant_id text COLLATE "C" NOT NULL,
    key_id      text COLLATE "C" NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    PRIMARY KEY (merchant_id, key_id)
);
SELECT pg_temp.tally_reference('api_key_merchants');
CREATE INDEX api_key_merchants_by_key ON api_key_merchants (key_id);
