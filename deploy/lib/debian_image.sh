# Sourced by deploy/build_runner_image.sh and deploy/build_app_image.sh: what both images share —
# the content-hash cache check, the registry-free Debian base (mmdebstrap + podman import) and the
# offline build on it. Each caller sets NAME (its log prefix), SUITE, PACKAGES, IMAGE, HASH, FORCE
# and work (a temporary directory) before calling these.

# The image is current when it carries the content hash of what it is made from.
image_is_current() {
  local have
  have=$(podman image inspect --format '{{ index .Labels "sipflow.content-hash" }}' "$IMAGE" 2>/dev/null || true)
  [ "$FORCE" = 0 ] && [ "$have" = "$HASH" ]
}

# The first Debian mirror apt uses here, unless DEBIAN_MIRROR names one.
debian_mirror() {
  local mirror=${DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
             | awk '/security/ {next} /^URIs:/ {print $2; exit} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' || true)
  fi
  [ -n "$mirror" ] || { echo "$NAME: no Debian mirror found; set DEBIAN_MIRROR" >&2; return 1; }
  echo "$mirror"
}

# Makes base image $1 (SUITE with PACKAGES) unless it exists; its tag is the package list's hash,
# so it is made once per package list.
ensure_debian_base() {
  local base=$1 mirror
  if [ "$FORCE" = 1 ] || ! podman image exists "$base"; then
    mirror=$(debian_mirror)
    echo "$NAME: debootstrapping $SUITE ($PACKAGES)" >&2
    mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      "$SUITE" "$work/rootfs.tar" "$mirror"
    podman import --quiet --change 'CMD ["/bin/bash"]' "$work/rootfs.tar" "$base" >/dev/null
    rm -f "$work/rootfs.tar"
  fi
}

# Builds IMAGE from Containerfile $1 in context $2 on base $3, without network, labelled with
# HASH; earlier builds of it, now untagged, go.
build_offline() {
  podman build --quiet --format docker --network none --pull=never \
    --build-arg BASE_IMAGE="$3" --build-arg PIP_OFFLINE=1 \
    --label sipflow.content-hash="$HASH" \
    -f "$1" -t "$IMAGE" "$2" >/dev/null
  podman image prune -f --filter label=sipflow.content-hash >/dev/null 2>&1 || true
}
