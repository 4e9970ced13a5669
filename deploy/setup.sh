#!/usr/bin/env bash
# Installs what sipflow needs on a Debian/Ubuntu machine: SIPp, Kamailio (the test SUT),
# mosquitto, iproute2, nftables and iptables (the local backend's session namespaces and delayer),
# Prometheus (the metrics tests), rtpengine, sox, espeak-ng and tcpdump (media) from Debian's
# packages, and a virtualenv pinned by
# requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have sipp || missing+=(sip-tester)
have kamailio || missing+=(kamailio)
have mosquitto || missing+=(mosquitto)
have ip || missing+=(iproute2)
have nft || missing+=(nftables)
# The delayer (delay_ms/jitter_ms): iptables' NFQUEUE target (this kernel lacks nftables' own
# `queue`) and the library netfilterqueue builds against.
have iptables || missing+=(iptables)
[ -f /usr/include/libnetfilter_queue/libnetfilter_queue.h ] || missing+=(libnetfilter-queue-dev)
have gcc || missing+=(gcc)
have pgrep || missing+=(procps)
# Prometheus (and promtool): the metrics tests scrape the stack with a real one.
have prometheus || missing+=(prometheus)
# The tests' own DNS server (a target given by domain, tests/sut/dnsmasq.py).
have dnsmasq || missing+=(dnsmasq-base)
# An independent pcap reader: the evidence tests read the kept calls' pcaps with it.
have tcpdump || missing+=(tcpdump)
# PostgreSQL's server binaries: deploy/test.sh starts a private server for the tests.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -c requirements.lock -e '.[dev,media,delay]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import sipflow, temporalio, fastapi' # fails loudly if the install did not work
# --- dashboard (issue 4): Chart.js from dashboard/package-lock.json, headless Chromium for the
# browser tests (Debian's package; Playwright drives it via executable_path) --------------------
if ! command -v chromium >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  dash_missing=()
  command -v chromium >/dev/null 2>&1 || dash_missing+=(chromium)
  command -v npm >/dev/null 2>&1 || dash_missing+=(nodejs npm)
  echo "setup: installing ${dash_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${dash_missing[@]}" >/dev/null
fi
(cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
# --- end dashboard -------------------------------------------------------------------------------
# --- containers (issue 3): podman + runc serve the Docker API for the docker backend's tests
# (no Docker engine needed; deploy/containers.conf configures podman through CONTAINERS_CONF),
# netavark + aardvark-dns give per-session networks with name resolution, mmdebstrap builds the
# runner image's Debian base without a registry (deploy/build_runner_image.sh) --------------------
ctr_missing=()
have podman || ctr_missing+=(podman)
have runc || ctr_missing+=(runc)
have mmdebstrap || ctr_missing+=(mmdebstrap)
[ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] || have netavark || ctr_missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || [ -x /usr/libexec/podman/aardvark-dns ] || have aardvark-dns || ctr_missing+=(aardvark-dns)
if [ ${#ctr_missing[@]} -gt 0 ]; then
  echo "setup: installing ${ctr_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${ctr_missing[@]}" uidmap slirp4netns iptables >/dev/null
fi
# --- end containers ------------------------------------------------------------------------------
# --- media (issue 12): rtpengine (userspace, --table=-1: the tests' Kamailio + rtpengine SUT,
# tests/sut/rtpengine.py, starts its own on its own ports), sox + espeak-ng (reference speech made
# offline), tcpdump (captures), nftables (loss on the input path: installed above) -------------
media_missing=()
have rtpengine || media_missing+=(rtpengine-daemon)
have sox || media_missing+=(sox)
have espeak-ng || media_missing+=(espeak-ng)
have tcpdump || media_missing+=(tcpdump)
if [ ${#media_missing[@]} -gt 0 ]; then
  echo "setup: installing ${media_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${media_missing[@]}" >/dev/null
  # The packaged service is not what the tests use (and would hold rtpengine's default ports).
  if [[ " ${media_missing[*]} " == *" rtpengine-daemon "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now rtpengine-daemon.service >/dev/null 2>&1 || true
  fi
fi
# --- end media -----------------------------------------------------------------------------------
echo "setup: ready (.venv/bin/sipflow)"
