-- Prepares PostgreSQL for mcp-pa so that mcp-pa never needs a superuser (docs/http-mode.md, "PostgreSQL with
-- pgvector"). deploy/compose.yaml mounts it into the postgres container's /docker-entrypoint-initdb.d/, which runs it
-- once, when the data volume is first initialised, as the superuser, connected to POSTGRES_DB (mcp_pa). It also runs
-- by hand on any PostgreSQL 15+ server with pgvector installed:
--   APP_DB_PASSWORD=… psql -v ON_ERROR_STOP=1 -U postgres -d mcp_pa -f deploy/postgres-init.sql
-- Safe to run again (every step checks first).
\set ON_ERROR_STOP on

-- The login mcp-pa connects as (MCP_DATABASE_URL): `psql -v app_user=NAME` to change it, default mcp_pa.
\if :{?app_user}
\else
  \set app_user mcp_pa
\endif
-- Its password, from the environment (compose passes APP_DB_PASSWORD from deploy/.env). Unset, the statements below
-- fail and the initialisation stops.
\getenv app_password APP_DB_PASSWORD

-- The login: no superuser, no CREATEROLE, no CREATEDB, no BYPASSRLS. It owns the database (and so, on PostgreSQL 15+,
-- its public schema), where mcp-pa's migrations create the tables on the first start.
SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'app_user') AS create_login \gset
\if :create_login
  CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
\endif
ALTER ROLE :"app_user" PASSWORD :'app_password';
SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'app_user') \gexec

-- pgvector: creating an extension needs a superuser, so it is done here, once.
CREATE EXTENSION IF NOT EXISTS vector;

-- The two NOLOGIN roles every query runs under (mcp_pa_app: row-level security; mcp_pa_definer: owns two SECURITY
-- DEFINER functions). mcp-pa would create them itself only with CREATEROLE; made here (as mcp-pa makes them), its
-- login needs just the memberships. Roles are cluster-wide: they may exist already for another mcp-pa database.
DO $do$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['mcp_pa_app', 'mcp_pa_definer'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT', r);
    END IF;
  END LOOP;
END
$do$;
GRANT mcp_pa_app, mcp_pa_definer TO :"app_user";
