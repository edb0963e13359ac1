#!/bin/sh
# First start: initialise PGDATA with the POSTGRES_USER superuser (password POSTGRES_PASSWORD, scram-sha-256
# over the network, trust over the local socket as in the official image) and the POSTGRES_DB database.
# Every start: run the server in the foreground, listening on every address of the container.
set -eu
if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres: POSTGRES_PASSWORD is not set; the database is not initialised without a password" >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  database=${POSTGRES_DB:-$user}
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
  initdb -D "$PGDATA" --username="$user" --pwfile="$password_file" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  if [ "$database" != postgres ]; then
    createdb --username="$user" "$database"
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "postgres: initialised $PGDATA (user $user, database $database)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
