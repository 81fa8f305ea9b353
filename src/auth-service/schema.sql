-- mxstack auth component: schema of its own database. Idempotent: safe to apply at every start.
-- Secrets never appear in plain form: passwords are argon2id hashes, TOTP seeds are sealed (AES-256-GCM,
-- "v1.<key id>.…"), recovery codes are keyed hashes; the audit log records events, never secrets.

CREATE TABLE IF NOT EXISTS auth_accounts (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The Matrix localpart; unique regardless of case (Synapse lower-cases user ids).
  username        text NOT NULL,
  is_admin        boolean NOT NULL DEFAULT false,
  -- Set when the account must enrol a second factor at its next sign-in (policy `required`, reset-2fa).
  must_enrol      boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT auth_accounts_username_format CHECK (username <> '' AND username = lower(username))
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_accounts_username ON auth_accounts (username);

CREATE TABLE IF NOT EXISTS auth_passwords (
  account_id      bigint PRIMARY KEY REFERENCES auth_accounts (id) ON DELETE CASCADE,
  -- argon2id PHC string, or a Synapse bcrypt hash waiting for its one-time import at first sign-in.
  hash            text NOT NULL,
  scheme          text NOT NULL CHECK (scheme IN ('argon2id', 'synapse-bcrypt')),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_totp (
  account_id      bigint PRIMARY KEY REFERENCES auth_accounts (id) ON DELETE CASCADE,
  sealed_secret   text NOT NULL CHECK (sealed_secret LIKE 'v1.%'),
  algorithm       text NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  digits          smallint NOT NULL CHECK (digits BETWEEN 6 AND 10),
  period          smallint NOT NULL CHECK (period > 0),
  -- false until the user confirmed enrolment with a first code.
  confirmed       boolean NOT NULL DEFAULT false,
  -- Step of the last accepted code: a code of this step or an earlier one is a replay.
  last_used_step  bigint,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_webauthn_credentials (
  credential_id   bytea PRIMARY KEY,
  account_id      bigint NOT NULL REFERENCES auth_accounts (id) ON DELETE CASCADE,
  -- COSE public key as registered.
  public_key      bytea NOT NULL,
  sign_count      bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
  transports      text[] NOT NULL DEFAULT '{}',
  name            text NOT NULL DEFAULT '',
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_used_at    timestamptz
);
CREATE INDEX IF NOT EXISTS auth_webauthn_credentials_account ON auth_webauthn_credentials (account_id);

CREATE TABLE IF NOT EXISTS auth_recovery_codes (
  account_id      bigint NOT NULL REFERENCES auth_accounts (id) ON DELETE CASCADE,
  code_hash       text NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
  used_at         timestamptz,
  PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE IF NOT EXISTS auth_lockouts (
  -- 'account:<username>' or 'address:<ip>' (see throttle.ts).
  throttle_key    text PRIMARY KEY,
  failures        integer NOT NULL CHECK (failures >= 0),
  window_start    timestamptz NOT NULL,
  locked_until    timestamptz
);

CREATE TABLE IF NOT EXISTS auth_audit_log (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at              timestamptz NOT NULL DEFAULT now(),
  -- Kept when the account is deleted: the log outlives it.
  account_id      bigint REFERENCES auth_accounts (id) ON DELETE SET NULL,
  username        text,
  event           text NOT NULL CHECK (event IN (
                    'sign-in', 'sign-in-failed', 'locked-out', 'password-changed', 'password-imported',
                    'totp-enrolled', 'totp-removed', 'webauthn-added', 'webauthn-removed',
                    'recovery-codes-generated', 'recovery-code-used', 'second-factors-reset')),
  address         text,
  -- Non-secret details only (factor kind, credential name, reason of a failure).
  detail          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS auth_audit_log_account ON auth_audit_log (account_id, at);

-- oidc-provider's models (sessions, interactions, grants, codes, tokens) and the service's own web sessions,
-- shared by every replica. `payload` is the model's JSON; the other columns are its look-up keys.
CREATE TABLE IF NOT EXISTS auth_oidc_payloads (
  model           text NOT NULL,
  id              text NOT NULL,
  payload         jsonb NOT NULL,
  grant_id        text,
  user_code       text,
  uid             text,
  expires_at      timestamptz,
  consumed_at     timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX IF NOT EXISTS auth_oidc_payloads_grant ON auth_oidc_payloads (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS auth_oidc_payloads_uid ON auth_oidc_payloads (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX IF NOT EXISTS auth_oidc_payloads_user_code ON auth_oidc_payloads (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS auth_oidc_payloads_expiry ON auth_oidc_payloads (expires_at);
