#!/usr/bin/env bash
# A Prometheus scraping the stack `sipflow up` runs on DATA_DIR, with
# deploy/prometheus/prometheus.yml aimed at the URLs `sipflow status --json` reports.
#   bash examples/metrics/run-prometheus.sh [DATA_DIR] [PROMETHEUS_PORT]
set -euo pipefail
data_dir=$(realpath "${1:-var}")
port=${2:-9090}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
SIPFLOW_DATA_DIR=$data_dir sipflow status --json > "$work/status.json" || true
python3 - "$here/deploy/prometheus/prometheus.yml" "$work" "$data_dir" <<'PY'
import json, re, sys
src, work, data_dir = sys.argv[1:]
urls = json.load(open(f"{work}/status.json"))["metrics"]
text = open(src).read()
host = lambda url: url.split("/")[2]
text = text.replace('"127.0.0.1:8000"', f'"{host(urls["api"])}"')
text = text.replace('"127.0.0.1:9464"', f'"{host(urls["worker"])}"')
text = text.replace("/var/lib/sipflow/secrets/metrics.token", f"{data_dir}/secrets/metrics.token")
text = text.replace('"runner-hosts.json"', f'"{work}/runner-hosts.json"')
open(f"{work}/runner-hosts.json", "w").write("[]")
open(f"{work}/prometheus.yml", "w").write(text)
PY
echo "Prometheus on http://127.0.0.1:$port (config and data in $work)"
exec prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$port"
