#!/bin/bash
# Test-image stand-in for the postgres image's docker-entrypoint.sh, written for mxstack's tests: only the
# behaviour the rendered manifests rely on. POSTGRES_{PASSWORD,USER,DB,INITDB_ARGS} (and *_FILE), initdb
# into an empty $PGDATA as POSTGRES_USER with that password, a `host all all all <password_encryption>`
# line appended to pg_hba.conf, POSTGRES_DB created through a socket-only temporary server, then
# `exec "$@"`. A first argument starting with '-' means `postgres <arguments>`.
set -Eeo pipefail

from_file() { # NAME [DEFAULT]: $NAME, else the contents of $NAME_FILE, else DEFAULT
  local name="$1" file_name="${1}_FILE" value="${2:-}"
  if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
    echo "error: both $name and $file_name are set" >&2
    exit 1
  fi
  if [ -n "${!name:-}" ]; then value="${!name}"; elif [ -n "${!file_name:-}" ]; then value="$(<"${!file_name}")"; fi
  export "$name=$value"
  unset "$file_name"
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ]; then
  from_file POSTGRES_PASSWORD
  from_file POSTGRES_USER postgres
  from_file POSTGRES_DB "$POSTGRES_USER"
  from_file POSTGRES_INITDB_ARGS
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA" || :
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
      echo 'Error: Database is uninitialized and superuser password is not specified.' >&2
      exit 1
    fi
    # POSTGRES_INITDB_ARGS is split by the shell, as upstream does.
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
    shift
    method="${POSTGRES_HOST_AUTH_METHOD:-$(postgres -C password_encryption "$@")}"
    printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
    export PGPASSWORD="$POSTGRES_PASSWORD"
    pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@" -c listen_addresses='' -p "${PGPORT:-5432}")" -w start
    exists="$(psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [ -z "${exists// /}" ]; then
      psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    set -- postgres "$@"
    echo 'PostgreSQL init process complete; ready for start up.'
  fi
fi
exec "$@"
