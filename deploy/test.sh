#!/usr/bin/env bash
# Runs the test suite on real parts: Temporal dev server, mosquitto, SIPp, Kamailio, SQLite and
# PostgreSQL. PostgreSQL: SIPFLOW_TEST_PG_ADMIN if set; else a local server at 127.0.0.1:5432
# if one answers; else a private throw-away server (deploy/private-pg.sh) on a free port,
# removed afterwards, so this works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h | grep -q down; then
  for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
fi
private_pg=""
if [ -z "${SIPFLOW_TEST_PG_ADMIN:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  private_pg=$(mktemp -d /tmp/sipflow-test-pg.XXXXXX)
  chmod 755 "$private_pg"
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  bash deploy/private-pg.sh start "$private_pg/pg" "$port"
  export SIPFLOW_TEST_PG_ADMIN="postgresql://postgres@127.0.0.1:$port/postgres"
  echo "test: private PostgreSQL on 127.0.0.1:$port ($private_pg)"
  trap 'bash deploy/private-pg.sh stop "$private_pg/pg"; rm -rf "$private_pg"' EXIT
fi
rc=0
.venv/bin/pytest "$@" || rc=$?
exit $rc
