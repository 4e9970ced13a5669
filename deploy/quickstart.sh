#!/usr/bin/env bash
# One command on a fresh machine: install, start the embedded stack, run a real SIP session
# (SIPp caller -> SIPp callee, 200 calls) and print its verdict. Exit code: 0 pass, 1 fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
exec .venv/bin/sipflow run --embedded "${1:-examples/quickstart.yaml}"
