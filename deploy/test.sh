#!/usr/bin/env bash
# Runs the test suite on real parts: Temporal dev server, mosquitto, SIPp, Kamailio, SQLite and
# PostgreSQL (a local server at 127.0.0.1:5432; override with SIPFLOW_TEST_PG_ADMIN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h | grep -q down; then
  for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
fi
exec .venv/bin/pytest "$@"
