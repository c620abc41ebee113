/**
 * The PostgreSQL schema: versioned migrations, the roles the store works under, and the vector indexes.
 *
 * Tenancy is enforced by the database itself:
 * - every table carries tenant_id; row-level security is ENABLEd and FORCEd (so even the owner is subject to it)
 *   with the policy `tenant_id = current_setting('mcp_pa.tenant', true)` for reads and writes;
 * - the store works under `mcp_pa_app`, a NOLOGIN role that owns nothing and holds only SELECT, INSERT, UPDATE
 *   and DELETE on the tenant tables: every store transaction sets that role and the tenant (SET LOCAL), so a
 *   query that forgot its tenant filter still sees, changes and deletes only its own tenant's rows.
 *
 * Two narrow exceptions run as `mcp_pa_definer`, a NOLOGIN role nobody logs in as, through SECURITY DEFINER
 * functions that only `mcp_pa_app` may execute. The role has a policy letting it read `items` (a handful of
 * columns, SELECT only) without the tenant predicate, for two reasons:
 * - `mcp_pa_search_items`: full-text search. PostgreSQL applies a row-level-security predicate before any
 *   user condition whose operator is not LEAKPROOF, and the text-search match operator (`@@`) is not, so under
 *   the tenant policy the GIN index can never be used (measured: 120 ms instead of 1.5 ms at 100 000 items
 *   per tenant). Marking `@@` leakproof would need a superuser and would change a system function. The
 *   function filters by the transaction's tenant setting itself (the same expression as the policy; no tenant
 *   set: no rows), so it returns exactly what the policy would allow, only through the index.
 * - `mcp_pa_tenants_needing_vectors`: the background re-embedder's question across tenants. It returns tenant
 *   ids only, never item data.
 * The tenants function is in SQL-standard form (BEGIN ATOMIC): its references are bound when it is created.
 * The search function is PL/pgSQL (for plans made with the actual query) with its search_path pinned to
 * pg_catalog, the schema it was created in, and pg_temp last, so no other object can stand in for its own.
 *
 * Roles are cluster-wide while migrations are serialised per database (an advisory lock): creating a role
 * tolerates another database's migration creating it at the same moment.
 */
import type { Sql } from './driver.js';
import { DatabaseStartupError, pgvectorMissing, pgvectorNotPermitted } from './errors.js';

export const APP_ROLE = 'mcp_pa_app';
export const DEFINER_ROLE = 'mcp_pa_definer';
export const TENANT_SETTING = 'mcp_pa.tenant';
export const TS_CONFIG = 'mcp_pa_english';
/** The tables holding tenant data (every one carries tenant_id and row-level security). */
export const TENANT_TABLES = [
  'profiles',
  'items',
  'item_vectors',
  'document_contents',
  'legacy_imports',
] as const;
/** Tables outside tenancy (authorization-server state): no tenant_id, no RLS, no privileges for the app role. */
export const SERVER_STATE_TABLES = [
  'oauth_state',
  'users',
  'oauth_keys',
  'oauth_grant_usage',
  'audit_events',
  'audit_usage_hourly',
] as const;
/** Set (SET LOCAL) by the audit trail's prune only: the one transaction allowed to delete from audit_events. */
export const AUDIT_PRUNE_SETTING = 'mcp_pa.audit_prune';
/** Taken with pg_advisory_xact_lock while migrating, so replicas starting together migrate one at a time. */
const MIGRATION_LOCK = '7362813509450117';

/**
 * Characters indexed as word separators, as SQLite's unicode61 tokenizer treats them: every ASCII punctuation
 * character and a few common Unicode ones. Without this PostgreSQL's parser keeps "john@example.com",
 * "notes.txt" or "a-b" as single tokens that no word typed in a search matches.
 */
export const SEPARATORS = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~«»‹›“”„‘’‚–—…·•';
const SEPARATOR_SPACES = ' '.repeat([...SEPARATORS].length);
/** Body text beyond this is not indexed: a tsvector holds at most 1 MB, and no search needs more. */
export const INDEXED_BODY_CHARS = 500_000;

function separatorsLiteral(): string {
  if (SEPARATORS.includes('$p$')) throw new Error('separator list breaks its quoting');
  return `$p$${SEPARATORS}$p$`;
}

const TENANT_PREDICATE = `tenant_id = current_setting('${TENANT_SETTING}', true)`;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Versioned schema migrations. Never edit a released one: add the next. */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'items, profiles, full-text, vectors, document contents, tenant isolation',
    sql: `
-- English stemming like SQLite's porter tokenizer, without a stop-word list (SQLite has none either: a query of
-- nothing but "the" still finds items containing it).
CREATE TEXT SEARCH DICTIONARY mcp_pa_english_stem (TEMPLATE = pg_catalog.snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION ${TS_CONFIG} (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION ${TS_CONFIG}
  ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH mcp_pa_english_stem;

-- The words of a title as the index sees them (also indexed on their own: see mcp_pa_search_items).
CREATE FUNCTION mcp_pa_title_vector(p_title text) RETURNS tsvector
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN to_tsvector('${TS_CONFIG}'::regconfig, translate(p_title, ${separatorsLiteral()}, '${SEPARATOR_SPACES}'));

-- Title weighted above tags, tags above body. The parts are concatenated in that order, so a word's first
-- position always carries its highest weight (the search function's ranking shortcut relies on it).
CREATE FUNCTION mcp_pa_search_vector(p_title text, p_body text, p_tags text[]) RETURNS tsvector
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN setweight(mcp_pa_title_vector(p_title), 'A')
      || setweight(to_tsvector('${TS_CONFIG}'::regconfig, translate(array_to_string(p_tags, ' '), ${separatorsLiteral()}, '${SEPARATOR_SPACES}')), 'B')
      || setweight(to_tsvector('${TS_CONFIG}'::regconfig, translate(left(p_body, ${INDEXED_BODY_CHARS}), ${separatorsLiteral()}, '${SEPARATOR_SPACES}')), 'C');

CREATE TABLE profiles (
  tenant_id  text COLLATE "C" PRIMARY KEY,
  data       jsonb NOT NULL,
  version    integer NOT NULL,
  updated_at text NOT NULL
);

-- Instants are ISO 8601 text, as the records carry them, compared byte-wise (COLLATE "C") like SQLite does.
CREATE TABLE items (
  tenant_id    text COLLATE "C" NOT NULL,
  id           text COLLATE "C" NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('project','task','event','document','note')),
  title        text NOT NULL,
  body         text NOT NULL DEFAULT '',
  status       text,
  priority     text,
  project_id   text COLLATE "C",
  tags         text[] NOT NULL DEFAULT '{}',
  starts_at    text COLLATE "C",
  ends_at      text COLLATE "C",
  client_ref   text,
  data         jsonb NOT NULL DEFAULT '{}',
  version      integer NOT NULL DEFAULT 1,
  created_at   text COLLATE "C" NOT NULL,
  updated_at   text COLLATE "C" NOT NULL,
  deleted_at   text COLLATE "C",
  -- The model of the item's ready vector (NULL: none ready). Kept with item_vectors by putVector, so "is any
  -- vector pending?" is three index probes instead of an anti-join over every item.
  vector_model text COLLATE "C",
  search       tsvector GENERATED ALWAYS AS (mcp_pa_search_vector(title, body, tags)) STORED,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, project_id) REFERENCES items (tenant_id, id) ON DELETE SET NULL (project_id)
);
CREATE UNIQUE INDEX items_client_ref ON items (tenant_id, kind, client_ref) WHERE client_ref IS NOT NULL;
CREATE INDEX items_by_start ON items (tenant_id, kind, (COALESCE(starts_at, '9999-12-31T23:59:59.999Z')), id);
CREATE INDEX items_by_created ON items (tenant_id, kind, created_at, id);
CREATE INDEX items_by_updated ON items (tenant_id, kind, updated_at, id);
CREATE INDEX items_by_project ON items (tenant_id, project_id) WHERE project_id IS NOT NULL;
CREATE INDEX items_vector_state ON items (tenant_id, vector_model) WHERE deleted_at IS NULL;
CREATE INDEX items_search ON items USING gin (search);
CREATE INDEX items_title_search ON items USING gin (mcp_pa_title_vector(title));
-- Counting live items of a kind (optionally by status) reads this index alone.
CREATE INDEX items_live ON items (tenant_id, kind, status) WHERE deleted_at IS NULL;

CREATE TABLE item_vectors (
  tenant_id  text COLLATE "C" NOT NULL,
  item_id    text COLLATE "C" NOT NULL,
  model      text NOT NULL,
  -- NULL while pending; the HNSW indexes are partial on it (one per dimension count).
  dims       integer,
  state      text NOT NULL CHECK (state IN ('pending','ready')),
  -- Pending vectors are NULL, never zero.
  embedding  vector,
  updated_at text NOT NULL,
  PRIMARY KEY (tenant_id, item_id),
  FOREIGN KEY (tenant_id, item_id) REFERENCES items (tenant_id, id) ON DELETE CASCADE,
  CHECK ((state = 'ready') = (embedding IS NOT NULL)),
  CHECK (embedding IS NULL OR vector_dims(embedding) = dims)
);

CREATE TABLE document_contents (
  tenant_id text COLLATE "C" NOT NULL,
  item_id   text COLLATE "C" NOT NULL,
  content   bytea NOT NULL,
  PRIMARY KEY (tenant_id, item_id),
  FOREIGN KEY (tenant_id, item_id) REFERENCES items (tenant_id, id) ON DELETE CASCADE
);

-- Records of the original program imported here (by client_ref), kept even when the item is later deleted,
-- so a permanently deleted record is not imported again.
CREATE TABLE legacy_imports (
  tenant_id   text COLLATE "C" NOT NULL,
  ref         text NOT NULL,
  item_id     text,
  imported_at text NOT NULL,
  PRIMARY KEY (tenant_id, ref)
);

${TENANT_TABLES.map(
  (t) => `ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE ${t} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ${t} USING (${TENANT_PREDICATE}) WITH CHECK (${TENANT_PREDICATE});
REVOKE ALL ON ${t} FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON ${t} TO ${APP_ROLE};`,
).join('\n')}

CREATE POLICY definer_reads ON items FOR SELECT TO ${DEFINER_ROLE} USING (true);
GRANT SELECT (tenant_id, id, kind, title, body, tags, status, starts_at, deleted_at, search, vector_model)
  ON items TO ${DEFINER_ROLE};

-- Full-text search for the current tenant through the GIN indexes (see the header of schema.ts). The terms are
-- quoted by phraseto_tsquery (no operator in user text is ever read) and joined with AND (p_all) or OR. Every
-- match that passes the filters is ranked (ts_rank, weights title 1.0, tags 0.4, body 0.2, no length
-- normalisation), the best p_limit are kept, then their snippets are made.
--
-- A shortcut keeps common words cheap, exactly. For one word, ts_rank gives a document
-- c = (w0 + sum over later occurrences j of w_j / (j+1)^2) / (pi^2/6), where w0, the weight of the first
-- occurrence, is the highest (title words come first in the vector). So a word in the title gives c >= 0.61, a
-- word elsewhere c < 0.4; with OR over n words a document scores the sum of its c over n. Hence: rank first the
-- documents with a query word in the title (through the title index); if p_limit of them pass the filters and
-- the last kept scores theta, a document without a title match beats theta only if it matches at least
-- k = floor(theta * n / 0.4) + 1 of the words, so ranking the title matches plus the documents matching k of
-- the words gives the same answer as ranking every match. Used for OR queries (and single words) of up to four
-- one-lexeme terms; anything else ranks every match.
--
-- PL/pgSQL with custom plans only: the planner sees the actual query, tenant and filters, and so knows how
-- selective the match is (a SQL function is planned for unknown parameters and then prefers scanning the
-- tenant's rows).
CREATE FUNCTION mcp_pa_search_items(
  p_terms text[], p_all boolean, p_kinds text[], p_tags text[], p_status text[],
  p_starts_from text, p_starts_before text, p_limit integer)
RETURNS TABLE (id text, rank real, snippet text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET plan_cache_mode = force_custom_plan
AS $fn$
#variable_conflict use_column
DECLARE
  v_tenant text := current_setting('${TENANT_SETTING}', true);
  v_parts tsquery[];
  v_n integer;
  v_query tsquery;
  v_more tsquery;
  v_conj tsquery;
  v_mode integer;
  v_k integer;
  v_ids text[];
  v_ranks real[];
BEGIN
  IF v_tenant IS NULL OR v_tenant = '' OR p_limit < 1 THEN
    RETURN;
  END IF;
  SELECT coalesce(array_agg(DISTINCT q), '{}') INTO v_parts
    FROM (SELECT phraseto_tsquery('${TS_CONFIG}'::regconfig, t) AS q FROM unnest(p_terms) AS t) s
    WHERE numnode(q) > 0;
  v_n := cardinality(v_parts);
  IF v_n = 0 THEN
    RETURN;
  END IF;
  v_query := v_parts[1];
  FOR i IN 2 .. v_n LOOP
    v_query := CASE WHEN p_all THEN v_query && v_parts[i] ELSE v_query || v_parts[i] END;
  END LOOP;

  -- mode 1: title matches only; mode 2: title matches and documents matching v_more; mode 3: every match.
  v_mode := 3;
  IF v_n <= 4 AND (v_n = 1 OR NOT p_all) AND NOT EXISTS (SELECT 1 FROM unnest(v_parts) q WHERE numnode(q) <> 1) THEN
    v_mode := 1;
  END IF;
  LOOP
    SELECT array_agg(h.hid ORDER BY h.hrank DESC, h.hid), array_agg(h.hrank ORDER BY h.hrank DESC, h.hid)
      INTO v_ids, v_ranks
      FROM (
        SELECT m.id AS hid, ts_rank('{0.1, 0.2, 0.4, 1.0}'::real[], m.search, v_query, 0) AS hrank
        FROM items m
        WHERE m.tenant_id = v_tenant
          AND m.deleted_at IS NULL
          AND CASE v_mode
                WHEN 1 THEN mcp_pa_title_vector(m.title) @@ v_query
                WHEN 2 THEN (mcp_pa_title_vector(m.title) @@ v_query OR m.search @@ v_more)
                ELSE m.search @@ v_query
              END
          AND (p_kinds IS NULL OR m.kind = ANY (p_kinds))
          AND (p_tags IS NULL OR m.tags && p_tags)
          AND (p_status IS NULL OR m.status = ANY (p_status))
          AND (p_starts_from IS NULL OR m.starts_at >= p_starts_from)
          AND (p_starts_before IS NULL OR m.starts_at < p_starts_before)
        ORDER BY 2 DESC, 1
        LIMIT p_limit
      ) h;
    EXIT WHEN v_mode <> 1;
    IF coalesce(cardinality(v_ids), 0) < p_limit THEN
      v_mode := 3; -- too few title matches: rank everything
      CONTINUE;
    END IF;
    -- A little below the exact bound, so rounding can only add candidates.
    v_k := floor(v_ranks[p_limit] * v_n / 0.4 - 0.0001)::integer + 1;
    EXIT WHEN v_k > v_n; -- nothing without a title match can reach the kept ones
    v_more := NULL;
    FOR mask IN 1 .. (1 << v_n) - 1 LOOP
      CONTINUE WHEN (SELECT count(*) FROM generate_series(0, v_n - 1) AS b WHERE (mask >> b) & 1 = 1) <> v_k;
      v_conj := NULL;
      FOR b IN 0 .. v_n - 1 LOOP
        IF (mask >> b) & 1 = 1 THEN
          v_conj := CASE WHEN v_conj IS NULL THEN v_parts[b + 1] ELSE v_conj && v_parts[b + 1] END;
        END IF;
      END LOOP;
      v_more := CASE WHEN v_more IS NULL THEN v_conj ELSE v_more || v_conj END;
    END LOOP;
    v_mode := 2;
  END LOOP;

  RETURN QUERY
  SELECT u.hid, u.hrank,
         ts_headline('${TS_CONFIG}'::regconfig,
                     left(concat_ws(' — ', i.title, NULLIF(i.body, ''), NULLIF(array_to_string(i.tags, ' '), '')), 50000),
                     v_query,
                     'StartSel=«, StopSel=», MaxWords=16, MinWords=6, MaxFragments=1, FragmentDelimiter=" … "')
  FROM unnest(v_ids, v_ranks) WITH ORDINALITY AS u (hid, hrank, ord)
  JOIN items i ON i.tenant_id = v_tenant AND i.id = u.hid
  ORDER BY u.ord;
END
$fn$;

-- Tenants that have live items without a ready vector for a model: tenant ids only, in order. Walks the
-- distinct tenants through the items_vector_state index (a loose index scan) and probes each.
CREATE FUNCTION mcp_pa_tenants_needing_vectors(p_model text, p_limit integer)
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH RECURSIVE tenants (tenant_id) AS (
      (SELECT f.tenant_id FROM items f WHERE f.deleted_at IS NULL ORDER BY f.tenant_id LIMIT 1)
    UNION ALL
      SELECT (SELECT n.tenant_id FROM items n
              WHERE n.deleted_at IS NULL AND n.tenant_id > t.tenant_id ORDER BY n.tenant_id LIMIT 1)
      FROM tenants t WHERE t.tenant_id IS NOT NULL
  )
  SELECT t.tenant_id FROM tenants t
  WHERE t.tenant_id IS NOT NULL
    AND (EXISTS (SELECT 1 FROM items a WHERE a.tenant_id = t.tenant_id AND a.deleted_at IS NULL
                   AND a.vector_model IS NULL)
      OR EXISTS (SELECT 1 FROM items b WHERE b.tenant_id = t.tenant_id AND b.deleted_at IS NULL
                   AND b.vector_model < p_model)
      OR EXISTS (SELECT 1 FROM items c WHERE c.tenant_id = t.tenant_id AND c.deleted_at IS NULL
                   AND c.vector_model > p_model))
  LIMIT p_limit;
END;

REVOKE ALL ON FUNCTION mcp_pa_search_items(text[], boolean, text[], text[], text[], text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION mcp_pa_tenants_needing_vectors(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mcp_pa_search_items(text[], boolean, text[], text[], text[], text, text, integer) TO ${APP_ROLE};
GRANT EXECUTE ON FUNCTION mcp_pa_tenants_needing_vectors(text, integer) TO ${APP_ROLE};

DO $do$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${APP_ROLE}, ${DEFINER_ROLE}', s);
  -- A new owner needs CREATE on the schema at the moment of the change only.
  EXECUTE format('GRANT CREATE ON SCHEMA %I TO ${DEFINER_ROLE}', s);
  ALTER FUNCTION mcp_pa_search_items(text[], boolean, text[], text[], text[], text, text, integer) OWNER TO ${DEFINER_ROLE};
  ALTER FUNCTION mcp_pa_tenants_needing_vectors(text, integer) OWNER TO ${DEFINER_ROLE};
  EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM ${DEFINER_ROLE}', s);
  -- PL/pgSQL resolves names when it runs: pin them to this schema, after pg_catalog, pg_temp last.
  EXECUTE format('ALTER FUNCTION mcp_pa_search_items(text[], boolean, text[], text[], text[], text, text, integer) '
                 'SET search_path = pg_catalog, %I, pg_temp', s);
END
$do$;
`,
  },
  {
    version: 2,
    name: 'full-text indexes led by the tenant',
    // The GIN indexes of version 1 hold every tenant's words: a common word's posting list covers all tenants,
    // and each search then throws the other tenants' rows away. With btree_gin (a contrib extension PostgreSQL
    // trusts database owners to create) tenant_id joins the index, so a search reads its own tenant's postings.
    // Measured at 2 × 100 000 items: text search p95 54 → 34 ms; the gap grows with the number of tenants.
    sql: `
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX items_search_by_tenant ON items USING gin (tenant_id, search);
CREATE INDEX items_title_search_by_tenant ON items USING gin (tenant_id, mcp_pa_title_vector(title));
`,
  },
  {
    version: 3,
    name: 'authorization server state',
    // The OAuth authorization server's records (grants, codes, tokens, sessions, interactions…), kept by the
    // oidc-provider adapter (src/auth/oidc-adapter.ts). Not tenant data: no tenant_id and no row-level security,
    // and nothing granted to the application role (or PUBLIC), so tenant code can never read a token. The
    // adapter works as the login user, outside the application role.
    sql: `
CREATE TABLE oauth_state (
  model       text COLLATE "C" NOT NULL,
  id          text COLLATE "C" NOT NULL,
  payload     jsonb NOT NULL,
  grant_id    text COLLATE "C",
  user_code   text COLLATE "C",
  uid         text COLLATE "C",
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oauth_state_grant ON oauth_state (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oauth_state_user_code ON oauth_state (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oauth_state_uid ON oauth_state (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oauth_state_expiry ON oauth_state (expires_at) WHERE expires_at IS NOT NULL;
REVOKE ALL ON TABLE oauth_state FROM PUBLIC;
REVOKE ALL ON TABLE oauth_state FROM ${APP_ROLE};
`,
  },
  {
    version: 4,
    name: 'accounts, signing keys and grant usage',
    // Server state like oauth_state: no tenant_id, no row-level security, nothing for the application role.
    // users: one row per account; its id is the tenant id every tool call runs under (the token's subject).
    // oauth_keys: the authorization server's signing keys; the private half is encrypted with the server secret
    // (src/auth/keys.ts). A key with retire_at set is published (tokens it signed still verify) but no longer
    // signs; it is deleted once retire_at has passed.
    // oauth_grant_usage: when a grant last obtained or used a token (the connected-apps page).
    sql: `
CREATE TABLE users (
  id            text COLLATE "C" PRIMARY KEY,
  username      text COLLATE "C" NOT NULL UNIQUE,
  password_hash text NOT NULL,
  disabled      boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz
);
CREATE TABLE oauth_keys (
  kid                   text COLLATE "C" PRIMARY KEY,
  alg                   text NOT NULL,
  public_jwk            jsonb NOT NULL,
  private_jwk_encrypted text NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  retire_at             timestamptz
);
CREATE TABLE oauth_grant_usage (
  grant_id     text COLLATE "C" PRIMARY KEY,
  last_used_at timestamptz NOT NULL
);
REVOKE ALL ON TABLE users, oauth_keys, oauth_grant_usage FROM PUBLIC;
REVOKE ALL ON TABLE users, oauth_keys, oauth_grant_usage FROM ${APP_ROLE};
`,
  },
  {
    version: 5,
    name: 'audit trail',
    // The HTTP mode's security audit trail (src/security/audit.ts). Server state: no tenant_id column (tenant is
    // what the event is about, not who may read it), no row-level security, nothing for the application role or
    // PUBLIC. audit_events is append-only: a trigger refuses UPDATE and TRUNCATE always, and DELETE unless the
    // transaction set ${AUDIT_PRUNE_SETTING} to 'on' (SET LOCAL), which only the retention prune does.
    // audit_usage_hourly counts /mcp requests per hour, tenant and client ('' when none).
    sql: `
CREATE TABLE audit_events (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  type       text NOT NULL,
  request_id text,
  tenant     text,
  client_id  text,
  ip         text,
  token_hash text,
  details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_type_at ON audit_events (type, at);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant, at);

CREATE FUNCTION mcp_pa_audit_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('${AUDIT_PRUNE_SETTING}', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'only the retention prune (mcp-pa audit prune) deletes audit events';
END
$fn$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION mcp_pa_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION mcp_pa_audit_append_only();

CREATE TABLE audit_usage_hourly (
  hour      timestamptz NOT NULL,
  tenant    text NOT NULL,
  client_id text NOT NULL DEFAULT '',
  requests  bigint NOT NULL,
  PRIMARY KEY (hour, tenant, client_id)
);

REVOKE ALL ON TABLE audit_events, audit_usage_hourly FROM PUBLIC;
REVOKE ALL ON TABLE audit_events, audit_usage_hourly FROM ${APP_ROLE};
REVOKE ALL ON SEQUENCE audit_events_id_seq FROM PUBLIC;
REVOKE ALL ON SEQUENCE audit_events_id_seq FROM ${APP_ROLE};
`,
  },
  {
    version: 6,
    name: 'count of items waiting for a vector',
    // For the embedding queue gauge (src/observability/metrics.ts): one number across tenants, counted up to a
    // bound so a scrape stays cheap whatever the backlog. SECURITY DEFINER like mcp_pa_tenants_needing_vectors —
    // it returns a count only, never a tenant or a row.
    sql: `
CREATE FUNCTION mcp_pa_items_waiting_for_vectors(p_model text, p_bound integer)
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT count(*) FROM (
    SELECT 1 FROM items i
    WHERE i.deleted_at IS NULL AND (i.vector_model IS NULL OR i.vector_model <> p_model)
    LIMIT p_bound
  ) AS waiting;
END;

REVOKE ALL ON FUNCTION mcp_pa_items_waiting_for_vectors(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mcp_pa_items_waiting_for_vectors(text, integer) TO ${APP_ROLE};

DO $do$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('GRANT CREATE ON SCHEMA %I TO ${DEFINER_ROLE}', s);
  ALTER FUNCTION mcp_pa_items_waiting_for_vectors(text, integer) OWNER TO ${DEFINER_ROLE};
  EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM ${DEFINER_ROLE}', s);
END
$do$;
`,
  },
];

export const LATEST_VERSION = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]?.version ?? 0;

/** Creates the two roles when missing (tolerating a concurrent creator) and makes the current user a member. */
const ENSURE_ROLES = `
DO $do$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['${APP_ROLE}', '${DEFINER_ROLE}'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- another database's migration created it at the same moment
      END;
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, r, 'MEMBER') THEN
      BEGIN
        EXECUTE format('GRANT %I TO %I', r, current_user);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$do$;
`;

/** pgvector's HNSW index takes `vector` up to 2000 dimensions and `halfvec` up to 4000. */
export function vectorExpression(dims: number): { cast: string; ops: string; indexName: string } | null {
  if (!Number.isInteger(dims) || dims < 1 || dims > 16_000) {
    throw new Error(`vector dimensions must be a whole number from 1 to 16000 (got ${dims})`);
  }
  if (dims <= 2000)
    return { cast: `vector(${dims})`, ops: 'vector_cosine_ops', indexName: `item_vectors_hnsw_${dims}` };
  if (dims <= 4000) {
    return {
      cast: `halfvec(${dims})`,
      ops: 'halfvec_cosine_ops',
      indexName: `item_vectors_hnsw_half_${dims}`,
    };
  }
  return null;
}

/** The cast searchVectors applies to both sides, identical to the index expression so the index is used. */
export function vectorCast(dims: number): string {
  return vectorExpression(dims)?.cast ?? `vector(${dims})`;
}

export interface PrepareResult {
  readonly applied: readonly number[];
  readonly pgvectorVersion: string;
  readonly serverMajor: number;
  readonly vectorIndex: string | null;
}

export interface PrepareOptions {
  readonly vectorDimensions: number | null;
  /** For messages. */
  readonly where: string;
  readonly user: string;
  readonly database: string;
  /** Called before an HNSW index is built (it takes a while when many vectors exist already). */
  readonly onIndexBuild?: (name: string, vectors: number) => void;
  /** Called before each pending migration runs (progress on a terminal: `migrating database: 2/5 <name>`). */
  readonly onMigration?: (step: MigrationStep) => void;
}

/** One pending migration about to run: the `index`-th of `total` pending ones (from 1). */
export interface MigrationStep {
  readonly index: number;
  readonly total: number;
  readonly version: number;
  readonly name: string;
}

/**
 * Brings a database up to date in one transaction under an advisory lock: pgvector, the roles, the pending
 * migrations, and the HNSW index for the configured dimensions. Throws DatabaseStartupError with the fix.
 */
export async function prepareDatabase(sql: Sql, options: PrepareOptions): Promise<PrepareResult> {
  try {
    return await prepare(sql, options);
  } catch (err) {
    if (err instanceof DatabaseStartupError || (err as { code?: string }).code !== '42501') throw err;
    const user = options.user;
    throw new DatabaseStartupError(
      `user "${user}" lacks a privilege mcp-pa needs in database "${options.database}" (${options.where}): ` +
        `${(err as Error).message}. Connect as the owner of the database and its schema (the user that ` +
        'created the tables; it also needs CREATEROLE, or membership in the roles ' +
        `${APP_ROLE} and ${DEFINER_ROLE}).`,
      { cause: err },
    );
  }
}

async function prepare(sql: Sql, options: PrepareOptions): Promise<PrepareResult> {
  await sql.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
  const info = (
    await sql.query<{ num: number; usr: string; db: string; sup: boolean }>(
      `SELECT current_setting('server_version_num')::int AS num, current_user AS usr, current_database() AS db,
              (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS sup`,
    )
  ).rows[0];
  const major = Math.floor((info?.num ?? 0) / 10_000);
  const user = info?.usr ?? options.user;
  const database = info?.db ?? options.database;
  if (major < 15) {
    throw new DatabaseStartupError(
      `${options.where} runs PostgreSQL ${major}; mcp-pa needs PostgreSQL 15 or later (with pgvector).`,
    );
  }

  let pgvectorVersion = (
    await sql.query<{ v: string }>(
      `SELECT extversion AS v FROM pg_catalog.pg_extension WHERE extname = 'vector'`,
    )
  ).rows[0]?.v;
  if (pgvectorVersion === undefined) {
    const available = await sql.query(
      `SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'vector'`,
    );
    if (available.rows.length === 0) throw pgvectorMissing(options.where, major);
    try {
      await sql.exec('CREATE EXTENSION IF NOT EXISTS vector');
    } catch (err) {
      if ((err as { code?: string }).code === '42501')
        throw pgvectorNotPermitted(options.where, user, database);
      throw err;
    }
    pgvectorVersion =
      (
        await sql.query<{ v: string }>(
          `SELECT extversion AS v FROM pg_catalog.pg_extension WHERE extname = 'vector'`,
        )
      ).rows[0]?.v ?? '?';
  }

  const hasTable = await sql.query<{ t: string | null }>(
    `SELECT to_regclass('schema_migrations')::text AS t`,
  );
  if (hasTable.rows[0]?.t == null) {
    await sql.exec(`CREATE TABLE schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  }
  const current =
    (await sql.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations')).rows[0]?.v ??
    0;
  if (current > LATEST_VERSION) {
    throw new DatabaseStartupError(
      `the database was created by a newer mcp-pa (schema ${current}, this version knows ${LATEST_VERSION}); ` +
        'upgrade mcp-pa',
    );
  }

  try {
    await sql.exec(ENSURE_ROLES);
  } catch (err) {
    if ((err as { code?: string }).code === '42501') {
      throw new DatabaseStartupError(
        `user "${user}" may not create the roles mcp-pa works under (${options.where}): as a superuser run ` +
          `CREATE ROLE ${APP_ROLE} NOLOGIN; CREATE ROLE ${DEFINER_ROLE} NOLOGIN; ` +
          `GRANT ${APP_ROLE}, ${DEFINER_ROLE} TO "${user}"; (or give "${user}" CREATEROLE).`,
      );
    }
    throw err;
  }
  const app = (
    await sql.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
      'SELECT rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1',
      [APP_ROLE],
    )
  ).rows[0];
  if (!app || app.rolsuper || app.rolbypassrls) {
    throw new DatabaseStartupError(
      `role ${APP_ROLE} would bypass row-level security (superuser or BYPASSRLS): run ` +
        `ALTER ROLE ${APP_ROLE} NOSUPERUSER NOBYPASSRLS; as a superuser.`,
    );
  }

  const applied: number[] = [];
  const pending = POSTGRES_MIGRATIONS.filter((m) => m.version > current);
  for (const [i, m] of pending.entries()) {
    options.onMigration?.({ index: i + 1, total: pending.length, version: m.version, name: m.name });
    await sql.exec(m.sql);
    await sql.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    applied.push(m.version);
  }

  let vectorIndex: string | null = null;
  if (options.vectorDimensions !== null) {
    const expr = vectorExpression(options.vectorDimensions);
    if (expr) {
      const d = options.vectorDimensions;
      const exists = await sql.query('SELECT 1 FROM pg_catalog.pg_indexes WHERE indexname = $1', [
        expr.indexName,
      ]);
      if (exists.rows.length === 0 && options.onIndexBuild) {
        const n = await sql.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM item_vectors WHERE dims = $1',
          [d],
        );
        options.onIndexBuild(expr.indexName, n.rows[0]?.n ?? 0);
      }
      await sql.exec(
        `CREATE INDEX IF NOT EXISTS ${expr.indexName} ON item_vectors
           USING hnsw ((embedding::${expr.cast}) ${expr.ops}) WHERE dims = ${d}`,
      );
      vectorIndex = expr.indexName;
    }
  }
  return { applied, pgvectorVersion, serverMajor: major, vectorIndex };
}

/** Whether a pgvector version has iterative index scans (0.8.0 and later). */
export function hasIterativeScan(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10));
  return major > 0 || minor >= 8;
}
