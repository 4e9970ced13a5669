"""A DNS server of the test's own: dnsmasq answering only from the records it is given, on a
loopback address and port the test chose (nothing forwarded, no system files read)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.resolver

DNSMASQ = "/usr/sbin/dnsmasq"


@contextmanager
def dnsmasq(ip: str, port: int, zone: str, records: list[str], work_dir: Path) -> Iterator[str]:
    """Yields "ip:port". records: dnsmasq options such as "--srv-host=...", "--host-record=...",
    "--naptr-record=..."; other names under `zone` get NXDOMAIN."""
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file="]
    argv += ["--no-resolv", "--no-hosts", "--no-poll", f"--local=/{zone}/"]
    argv += ["--bind-interfaces", f"--listen-address={ip}", f"--port={port}"]
    argv += [f"--log-facility={work_dir / 'dnsmasq.log'}", "--log-queries", *records]
    log = (work_dir / "dnsmasq.out").open("ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        probe = dns.resolver.Resolver(configure=False)
        probe.nameservers, probe.port, probe.lifetime = [ip], port, 0.5
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.resolve(f"probe.{zone}", "A")
            except dns.resolver.NXDOMAIN:
                break  # it answers
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dnsmasq did not start: {work_dir}") from None
                time.sleep(0.05)
        yield f"{ip}:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
