#!/usr/bin/env bash
# The CI gate: runs one sipflow session against a sipflow server, writes its JUnit report and
# exits with the verdict, so the job fails unless the session passed. Called by the GitHub
# Action (github-action/action.yml); the GitLab template (gitlab-ci.yml) runs the same command.
#
#   SIPFLOW_API_KEY=sfk_... deploy/ci/sipflow-gate.sh https://sipflow.example.com tests/sip.yaml [junit.xml]
#
# Exit codes (sipflow run's): 0 pass, 1 fail verdict, 2 invalid spec, 3 error (API unreachable,
# session error). SIPFLOW: the sipflow command (default: sipflow on PATH).
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: sipflow-gate.sh API_URL SPEC [JUNIT_FILE]" >&2
  exit 2
fi
api=$1
spec=$2
junit=${3:-sipflow-junit.xml}
if [ -z "${SIPFLOW_API_KEY:-}" ]; then
  echo "sipflow-gate: SIPFLOW_API_KEY is not set (an operator key of your tenant, as a CI secret)" >&2
fi
# shellcheck disable=SC2086  # SIPFLOW may be a command with arguments
${SIPFLOW:-sipflow} run --api "$api" --junit "$junit" "$spec"
code=$?
case $code in
  0) echo "sipflow-gate: pass" ;;
  1) echo "sipflow-gate: FAIL: the session's verdict is fail (report: $junit)" ;;
  2) echo "sipflow-gate: FAIL: invalid spec $spec (report: $junit)" ;;
  *) echo "sipflow-gate: FAIL: error $code (report: $junit)" ;;
esac
exit $code
