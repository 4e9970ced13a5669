#!/usr/bin/env bash
# Builds the runner image (deploy/runner/Containerfile) with podman and no image registry:
# mmdebstrap makes a Debian root file system holding SIPp, Python and tini, `podman import`
# turns it into the base image, and the production Containerfile is built on that base with the
# agent's Python dependencies from wheels fetched here with pip (the build itself has no network).
#
#   bash deploy/build_runner_image.sh [--force]      # prints the image's name when done
#
# Cached: the image carries a label with the hash of everything it is made from (this script,
# the Containerfile, the agent's sources and pins); when an image with that hash exists nothing
# is built. The base image is cached the same way under a tag of its own package list's hash.
# Environment: SIPFLOW_RUNNER_IMAGE (default sipflow-runner:latest), DEBIAN_MIRROR (default:
# the first Debian mirror apt uses here), CONTAINERS_CONF (default deploy/containers.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NAME=build_runner_image
# shellcheck source=deploy/lib/debian_image.sh
source deploy/lib/debian_image.sh
IMAGE=${SIPFLOW_RUNNER_IMAGE:-sipflow-runner:latest}
SUITE=bookworm
PACKAGES=sip-tester,python3,python3-venv,tini,ca-certificates
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/containers.conf}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build_runner_image: $tool is missing (bash deploy/setup.sh installs it)" >&2; exit 1; }
done

# Everything the image is made from, in a fixed order.
sources=(deploy/build_runner_image.sh deploy/lib/debian_image.sh deploy/runner/Containerfile deploy/runner/requirements.txt
         sipflow/__init__.py sipflow/addresses.py sipflow/histogram.py sipflow/messages.py
         sipflow/runner_config.py sipflow/g711.py sipflow/media_upload.py)
while IFS= read -r f; do sources+=("$f"); done < <(find runners -type f \( -name '*.py' -o -name '*.xml' \) ! -path '*/__pycache__/*' | LC_ALL=C sort)
HASH=$( { echo "$SUITE $PACKAGES"; for f in "${sources[@]}"; do echo "== $f"; cat "$f"; done; } | sha256sum | cut -c1-16)
BASE_HASH=$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-16)
BASE=localhost/sipflow-runner-base:$BASE_HASH

if image_is_current; then
  echo "build_runner_image: $IMAGE is up to date (content hash $HASH)" >&2
  echo "$IMAGE"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d /tmp/sipflow-runner-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

ensure_debian_base "$BASE"

# The build context: only what the Containerfile copies, plus the wheels.
ctx=$work/context
mkdir -p "$ctx/deploy/runner/wheels" "$ctx/sipflow"
cp deploy/runner/Containerfile deploy/runner/requirements.txt "$ctx/deploy/runner/"
cp sipflow/__init__.py sipflow/addresses.py sipflow/histogram.py sipflow/messages.py \
   sipflow/runner_config.py sipflow/g711.py sipflow/media_upload.py "$ctx/sipflow/"
tar -C "$ROOT" --exclude=__pycache__ -cf - runners | tar -C "$ctx" -xf -
case "$(uname -m)" in
  x86_64) platform=manylinux2014_x86_64 ;;
  aarch64) platform=manylinux2014_aarch64 ;;
  *) echo "build_runner_image: no wheel platform for $(uname -m)" >&2; exit 1 ;;
esac
PIP=python3
[ -x .venv/bin/python ] && PIP=.venv/bin/python
"$PIP" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --platform "$platform" --python-version 3.11 --implementation cp \
  -r deploy/runner/requirements.txt -d "$ctx/deploy/runner/wheels" 2>&1 | grep -v '^WARNING: Location' >&2 || true
ls "$ctx"/deploy/runner/wheels/*.whl >/dev/null

build_offline "$ctx/deploy/runner/Containerfile" "$ctx" "$BASE"
echo "build_runner_image: built $IMAGE (content hash $HASH) in $(( $(date +%s) - started ))s" >&2
echo "$IMAGE"
