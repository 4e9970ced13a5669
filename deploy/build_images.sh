#!/usr/bin/env bash
# Builds sipflow's two images with one version tag: the API/worker image (deploy/app/Containerfile,
# image `sipflow`) and the runner image (deploy/runner/Containerfile, image `sipflow-runner`,
# built offline by deploy/build_runner_image.sh and cached by content hash), both also tagged
# `latest`; with --push, tags and pushes both to a registry (e.g. Amazon ECR, for deploy/aws/).
#
#   bash deploy/build_images.sh                         # version: pyproject.toml's
#   bash deploy/build_images.sh --version 0.2.1 --push 123456789012.dkr.ecr.us-east-1.amazonaws.com
#   bash deploy/build_images.sh --print                 # only the image names it would build
#
# The API/worker image starts FROM python:3.11-slim (docker.io), so it needs that registry (or
# a mirror of it: --app-base IMAGE); the runner image needs none. ENGINE: podman (default when
# installed) or docker. With podman, CONTAINERS_CONF defaults to deploy/containers.conf.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
PUSH=""
PRINT=0
APP_BASE=""
while [ $# -gt 0 ]; do
  case $1 in
    --version) VERSION=$2; shift 2 ;;
    --push) PUSH=${2%/}; shift 2 ;;
    --app-base) APP_BASE=$2; shift 2 ;;
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

# The runner image: offline and cached (podman); with docker, the plain Containerfile.
if [ "$ENGINE" = podman ]; then
  SIPFLOW_RUNNER_IMAGE=$RUNNER bash deploy/build_runner_image.sh >/dev/null
else
  docker build -f deploy/runner/Containerfile -t "$RUNNER" .
fi
app_args=()
if [ -n "$APP_BASE" ]; then
  # the same Containerfile from another base image (a mirror of python:3.11-slim-bookworm)
  sed "s#^FROM .*#FROM $APP_BASE#" deploy/app/Containerfile > "${TMPDIR:-/tmp}/sipflow-app.Containerfile"
  app_args=(-f "${TMPDIR:-/tmp}/sipflow-app.Containerfile")
else
  app_args=(-f deploy/app/Containerfile)
fi
"$ENGINE" build "${app_args[@]}" --label org.opencontainers.image.version="$VERSION" -t "$APP" .
for image in "$APP" "$RUNNER"; do
  "$ENGINE" tag "$image" "${image%%:*}:latest"
  if [ -n "$PUSH" ]; then
    "$ENGINE" tag "$image" "$PUSH/$image"
    "$ENGINE" push "$PUSH/$image"
  fi
done
echo "$APP"
echo "$RUNNER"
