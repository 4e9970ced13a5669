"""Kamailio registrar/proxy (kamailio-registrar.cfg: users alice and bob, password secret) in
the foreground for tests: `with kamailio(port, work_dir) as address: ...`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "kamailio-registrar.cfg"
KAMAILIO = "/usr/sbin/kamailio"


def _udp_bound(ip: str, port: int, netns: str | None = None) -> bool:
    if ":" in ip:  # /proc/net/udp6: four 32-bit words, each in host (little-endian) order
        packed = socket.inet_pton(socket.AF_INET6, ip)
        words = "".join(f"{int.from_bytes(packed[i : i + 4], 'little'):08X}" for i in (0, 4, 8, 12))
        want, table = f"{words}:{port:04X}", "/proc/net/udp6"
    else:
        want = f"{int.from_bytes(socket.inet_aton(ip), 'little'):08X}:{port:04X}"
        table = "/proc/net/udp"
    if netns is None:
        text = Path(table).read_text()
    else:
        argv = ["ip", "netns", "exec", netns, "cat", table]
        text = subprocess.run(argv, capture_output=True, text=True).stdout
    lines = text.splitlines()[1:]
    return any(line.split()[1] == want for line in lines)


@contextmanager
def kamailio(
    port: int,
    work_dir: Path,
    ip: str = "127.0.0.1",
    netns: str | None = None,
    config: Path = CONFIG,
    defines: tuple[str, ...] = (),
) -> Iterator[str]:
    """Yields "ip:port"; runs `config` (its `listen=` set to ip:port, a `CTL_SOCKET` in it set to
    work_dir/kamailio-ctl.sock, waited for) in network namespace `netns` if given; `defines`
    become `-A NAME`. Flags: -DD (no daemon, children still forked), -E (log to stderr), -m 256
    shared memory (64 MB default answered 500 under load), -n 1 worker per interface, -w and -Y
    in work_dir (no /var/run needed). Stopped with SIGTERM to its process group."""
    work_dir.mkdir(parents=True, exist_ok=True)
    listen = f"[{ip}]" if ":" in ip else ip
    text = re.sub(r"^listen=.*$", f"listen=udp:{listen}:{port}", config.read_text(), flags=re.M)
    ctl = work_dir / "kamailio-ctl.sock" if "CTL_SOCKET" in text else None
    text = text.replace("CTL_SOCKET", str(ctl))
    cfg_path = work_dir / "kamailio.cfg"
    cfg_path.write_text(text)
    log = (work_dir / "kamailio.log").open("ab")
    argv = ["ip", "netns", "exec", netns] if netns else []
    argv += [KAMAILIO, "-f", str(cfg_path), "-DD", "-E", "-m", "256", "-n", "1"]
    argv += ["-w", str(work_dir), "-Y", str(work_dir), "-P", str(work_dir / "kamailio.pid")]
    for name in defines:
        argv += ["-A", name]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (_udp_bound(ip, port, netns) and (ctl is None or ctl.exists())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start: see {work_dir / 'kamailio.log'}")
            time.sleep(0.05)
        yield f"{ip}:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
