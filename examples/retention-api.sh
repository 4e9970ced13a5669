#!/bin/sh
# Retention over the API (admins): disk use, policy, what a pass would purge, the last pass; then
# a dry run and a real pass (audited as retention.run). Needs SIPFLOW_API_URL and an admin key in
# SIPFLOW_API_KEY (`sipflow up` writes the local admin's key to <data dir>/admin.key).
set -eu
url="${SIPFLOW_API_URL:-http://127.0.0.1:8000}"
auth="Authorization: Bearer ${SIPFLOW_API_KEY:?an admin key}"
curl -fsS -H "$auth" "$url/v1/retention"
echo
curl -fsS -H "$auth" -H 'Content-Type: application/json' -d '{"dry_run": true}' \
  "$url/v1/retention/run"
echo
# The pass the worker runs every SIPFLOW_RETENTION_INTERVAL_S, now:
# curl -fsS -H "$auth" -H 'Content-Type: application/json' -d '{}' "$url/v1/retention/run"
