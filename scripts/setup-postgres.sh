#!/usr/bin/env bash
# Makes the local PostgreSQL server ready for mcp-pa's tests and for development:
#   1. installs the pgvector extension when the server lacks it, built from Debian's source package
#      (Debian 12 has no pgvector; Debian 13 "trixie" has its source, which builds against postgresql-server-dev-N);
#   2. creates the test database (default mcp_pa_test) with the extension in it.
# Idempotent: when the extension is already there it only checks the database (a second or so).
# The machine's apt configuration is left untouched: the source list lives in a private folder, derived from the
# machine's own first Debian source stanza, so no host name is written here.
#
# Environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), MCP_PA_TEST_DB (mcp_pa_test).
set -euo pipefail

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
TEST_DB="${MCP_PA_TEST_DB:-mcp_pa_test}"
log() { printf 'setup-postgres: %s\n' "$*" >&2; }

if ! pg_isready -q -t 5; then
  log "no PostgreSQL server answers on ${PGHOST}:${PGPORT}"
  if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    log "starting cluster ${version}/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    pg_isready -q -t 30
  else
    log "start PostgreSQL (15 or later) and run this script again"
    exit 1
  fi
fi

server_major="$(psql -d postgres -tAc 'show server_version_num' | cut -c1-2)"
has_vector() { [ "$(psql -d postgres -tAc "select count(*) from pg_available_extensions where name = 'vector'")" = 1 ]; }

if has_vector; then
  log "pgvector is installed"
else
  [ "$(id -u)" = 0 ] || { log "pgvector is missing; run this script as root to build it"; exit 1; }
  log "pgvector is missing: building it from Debian's source package for PostgreSQL ${server_major}"
  export DEBIAN_FRONTEND=noninteractive
  pkgs=()
  dpkg -s "postgresql-server-dev-${server_major}" >/dev/null 2>&1 || pkgs+=("postgresql-server-dev-${server_major}")
  command -v make >/dev/null || pkgs+=(make)
  command -v gcc >/dev/null || pkgs+=(gcc)
  dpkg -s dpkg-dev >/dev/null 2>&1 || pkgs+=(dpkg-dev)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi

  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/parts" "$work/lists/partial"
  # The machine's first deb822 stanza, turned into a source stanza for trixie.
  src=/etc/apt/sources.list.d/debian.sources
  [ -f "$src" ] || { log "no $src to derive a source list from"; exit 1; }
  awk 'BEGIN{RS=""; ORS="\n\n"} NR==1{print; exit}' "$src" \
    | sed -e 's/^Types:.*/Types: deb-src/' -e 's/^Suites:.*/Suites: trixie/' >"$work/parts/trixie-src.sources"
  apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts"
    -o "Dir::State::Lists=$work/lists" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${apt_private[@]}" update -qq
  (cd "$work" && apt-get "${apt_private[@]}" source --download-only pgvector >/dev/null)
  (cd "$work" && dpkg-source --no-check -x pgvector_*.dsc build >/dev/null)
  pg_config="/usr/lib/postgresql/${server_major}/bin/pg_config"
  make -s -C "$work/build" OPTFLAGS="" PG_CONFIG="$pg_config" >/dev/null
  make -s -C "$work/build" OPTFLAGS="" PG_CONFIG="$pg_config" install >/dev/null
  has_vector || { log "pgvector was built but the server does not list it"; exit 1; }
  log "pgvector installed"
fi

if [ "$(psql -d postgres -tAc "select count(*) from pg_database where datname = '${TEST_DB}'")" != 1 ]; then
  createdb "$TEST_DB"
  log "created database ${TEST_DB}"
fi
psql -q -d "$TEST_DB" -c 'create extension if not exists vector' >/dev/null
log "ready: postgresql://${PGUSER}@${PGHOST}:${PGPORT}/${TEST_DB}"
