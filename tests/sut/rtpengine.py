"""Kamailio + rtpengine, a system under test that relays the calls' media, for tests:

    with media_relay(work_dir) as sut: ...   # sut.host, sut.port: the SIP target

Both listen on an address of their own, 198.18.X.1/32 (X in 20..99, not taken on this machine),
on an empty bridge `sfrtp<X>` in the root namespace: the sessions' runners (in their namespaces,
routed through the host) reach it and it reaches them, without the loopback rewriting a SUT on
127.0.0.1 gets (rtpengine puts its own address into the SDP, which must be reachable from the
runners). rtpengine runs in userspace (`--table=-1`, no kernel module), its control (NG) socket
on 127.0.0.1:<free port>, RTP on a port range chosen at random; Kamailio runs
kamailio-rtpengine.cfg (registrar: alice, bob / secret; rtpengine_offer/answer/delete). Stopped
and the bridge removed on exit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from entrypoints.stack import free_port
from tests.sut.kamailio import _udp_bound, kamailio

CONFIG = Path(__file__).resolve().parent / "kamailio-rtpengine.cfg"
RTPENGINE = "/usr/bin/rtpengine"


@dataclass
class MediaRelay:
    host: str  # Kamailio's and rtpengine's address
    port: int  # Kamailio's SIP port
    ng_port: int  # rtpengine's control socket on 127.0.0.1
    port_min: int
    port_max: int
    work_dir: Path
    rtpengine: subprocess.Popen[bytes]

    def stop_rtpengine(self) -> None:
        """Stops the relay (mid-session: calls lose their media)."""
        _stop(self.rtpengine)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _taken(address: str) -> bool:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    return f" {address}/" in out.stdout


def _sh(*argv: str) -> None:
    res = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")


@contextmanager
def media_relay(work_dir: Path, rtp_ports: int = 2000) -> Iterator[MediaRelay]:
    work_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(50):
        x = random.randint(20, 99)
        host, bridge = f"198.18.{x}.1", f"sfrtp{x}"
        if not _taken(host) and not Path(f"/sys/class/net/{bridge}").exists():
            break
    else:
        raise RuntimeError("no free 198.18.X.1 address for the media relay")
    _sh("ip", "link", "add", bridge, "type", "bridge")
    proc: subprocess.Popen[bytes] | None = None
    try:
        _sh("ip", "addr", "add", f"{host}/32", "dev", bridge)
        _sh("ip", "link", "set", bridge, "up")
        ng_port = free_port()
        port_min = random.randrange(30000, 60000 - rtp_ports, 2)
        port_max = port_min + rtp_ports - 1
        argv = [
            RTPENGINE,
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=5",
            "--table=-1",
            f"--interface={host}",
            f"--listen-ng=127.0.0.1:{ng_port}",
            f"--port-min={port_min}",
            f"--port-max={port_max}",
            f"--pidfile={work_dir / 'rtpengine.pid'}",
            "--num-threads=2",
        ]
        log = (work_dir / "rtpengine.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while not _udp_bound("127.0.0.1", ng_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rtpengine did not start: see {work_dir / 'rtpengine.log'}")
            time.sleep(0.05)
        cfg = work_dir / "kamailio-rtpengine.cfg"
        cfg.write_text(CONFIG.read_text().replace("RTPENGINE_SOCK", f"udp:127.0.0.1:{ng_port}"))
        sip_port = free_port()
        with kamailio(sip_port, work_dir / "kamailio", ip=host, config=cfg):
            yield MediaRelay(host, sip_port, ng_port, port_min, port_max, work_dir, proc)
    finally:
        if proc is not None:
            _stop(proc)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
