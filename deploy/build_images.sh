#!/usr/bin/env bash
# Builds sipflow's two images with one version tag: the `sipflow` image (deploy/app/Containerfile:
# API, worker, runner host, and the PostgreSQL, mosquitto and Temporal services of
# deploy/compose.yaml) and the runner image (deploy/runner/Containerfile, image `sipflow-runner`),
# both also tagged `latest`; with --push, tags and pushes both to a registry (e.g. Amazon ECR, for
# deploy/aws/). With podman both are built offline (deploy/build_app_image.sh and
# deploy/build_runner_image.sh: mmdebstrap, no registry, cached by content hash); with docker from
# debian:bookworm-slim (docker.io, or a mirror of it: --base IMAGE).
#
#   bash deploy/build_images.sh                         # version: pyproject.toml's
#   bash deploy/build_images.sh --version 0.2.1 --push 123456789012.dkr.ecr.us-east-1.amazonaws.com
#   bash deploy/build_images.sh --print                 # only the image names it would build
#
# ENGINE: podman (default when installed) or docker. With podman, CONTAINERS_CONF defaults to
# deploy/containers.conf.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
PUSH=""
PRINT=0
BASE=""
while [ $# -gt 0 ]; do
  case $1 in
    --version) VERSION=$2; shift 2 ;;
    --push) PUSH=${2%/}; shift 2 ;;
    --base|--app-base) BASE=$2; shift 2 ;;
    --print) PRINT=1; shift ;;
    *) echo "build_images: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "build_images: bad version '$VERSION'" >&2; exit 2; }
APP=sipflow:$VERSION
RUNNER=sipflow-runner:$VERSION
if [ "$PRINT" = 1 ]; then
  echo "$APP"
  echo "$RUNNER"
  [ -z "$PUSH" ] || { echo "$PUSH/$APP"; echo "$PUSH/$RUNNER"; }
  exit 0
fi
ENGINE=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
[ "$ENGINE" != podman ] || export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/containers.conf}

if [ "$ENGINE" = podman ]; then
  # offline and cached; the version is a tag of the same image
  SIPFLOW_RUNNER_IMAGE=$RUNNER bash deploy/build_runner_image.sh >/dev/null
  SIPFLOW_APP_IMAGE=$APP bash deploy/build_app_image.sh >/dev/null
else
  base_args=()
  [ -z "$BASE" ] || base_args=(--build-arg BASE_IMAGE="$BASE")
  docker build "${base_args[@]}" -f deploy/runner/Containerfile -t "$RUNNER" .
  docker build "${base_args[@]}" -f deploy/app/Containerfile \
    --label org.opencontainers.image.version="$VERSION" -t "$APP" .
fi
for image in "$APP" "$RUNNER"; do
  "$ENGINE" tag "$image" "${image%%:*}:latest"
  if [ -n "$PUSH" ]; then
    "$ENGINE" tag "$image" "$PUSH/$image"
    "$ENGINE" push "$PUSH/$image"
  fi
done
echo "$APP"
echo "$RUNNER"
