#!/usr/bin/env bash
# A private, throw-away PostgreSQL server (Debian's binaries) in DIR on 127.0.0.1:PORT, trust
# authentication for user postgres; never the machine's shared server.
#   deploy/private-pg.sh start DIR PORT   (initdb on first use, then pg_ctl start)
#   deploy/private-pg.sh stop DIR         (pg_ctl stop -m fast)
# PostgreSQL refuses to run as root: as root the server runs as user `postgres` (DIR is given to
# it, so every parent directory must let it through); as another user it runs as that user.
set -euo pipefail
cmd=$1 dir=$2 port=${3:-}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "user postgres cannot reach $dir (a parent directory is private): use e.g. mktemp -d and chmod 755" >&2
        exit 1
      fi
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" >/dev/null
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || true
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
