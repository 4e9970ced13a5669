"""Kamailio registrar/proxy (kamailio-registrar.cfg: users alice and bob, password secret) in
the foreground for tests: `with kamailio(port, work_dir) as address: ...`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runners.sipp_process import proc_net_address, proc_net_table
from sipflow.addresses import host_port

CONFIG = Path(__file__).resolve().parent / "kamailio-registrar.cfg"
KAMAILIO = "/usr/sbin/kamailio"


def _udp_bound(ip: str, port: int, netns: str | None = None) -> bool:
    want, table = proc_net_address(ip, port), f"/proc/net/{proc_net_table(ip, 'udp')}"
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
    text = re.sub(
        r"^listen=.*$", f"listen=udp:{host_port(ip, port)}", config.read_text(), flags=re.M
    )
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
