"""How long the compose stack's sipflow image takes to build offline (deploy/build_app_image.sh).

    .venv/bin/python -m bench.compose_images [--cold]

Prints the seconds of: the up-to-date check (nothing changed: what CI pays on a re-run), a
rebuild after a code change (base image and wheels cached: a scratch tag with no image yet), and
with --cold the whole build from nothing (the base image removed and an empty wheel cache: the
Debian root file system, the wheels and the image). The scratch tag is removed afterwards; the
cold run rebuilds the real base image, which later builds reuse.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "build_app_image.sh"
ENV = {
    **os.environ,
    "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(ROOT / "deploy" / "containers.conf")),
    "PYTHON": os.environ.get("PYTHON", sys.executable),
}


def build(image: str, **env: str) -> float:
    started = time.monotonic()
    res = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**ENV, "SIPFLOW_APP_IMAGE": image, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if res.returncode != 0:
        raise SystemExit(f"build failed:\n{res.stderr[-3000:]}")
    return time.monotonic() - started


def podman(*args: str) -> str:
    return subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, check=False
    ).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cold", action="store_true", help="also build from nothing")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"load {load:.1f}, {os.cpu_count()} cores")
    build("sipflow:latest")  # current, so the checks below start from a built image
    print(f"up to date (content hash matches): {build('sipflow:latest'):.1f} s")
    scratch = "localhost/sipflow-bench:scratch"
    try:
        print(f"code change (base and wheels cached): {build(scratch):.1f} s")
        if args.cold:
            bases = podman("images", "--format", "{{.Repository}}:{{.Tag}}", "sipflow-base")
            for base in bases.split():
                podman("rmi", "-f", base)
            with tempfile.TemporaryDirectory() as wheels:
                podman("rmi", "-f", scratch)
                cold = build(scratch, SIPFLOW_WHEEL_CACHE=wheels)
                print(f"cold (debootstrap, wheels, image): {cold:.1f} s")
    finally:
        podman("rmi", "-f", scratch)
    size = podman("image", "inspect", "--format", "{{.Size}}", "sipflow:latest").strip()
    print(f"image size: {size} bytes")


if __name__ == "__main__":
    main()
