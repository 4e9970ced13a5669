"""Kamailio with one of the UA-behaviour configs (kamailio-flaky-registrar.cfg,
kamailio-invite-auth.cfg) in the foreground for tests, with its log and its usrloc table at hand:

    with kamailio_sut(FLAKY_REGISTRAR, port, work_dir) as sut:
        sut.address            # "127.0.0.1:port"
        sut.log_lines("sipflow-saved")
        sut.contacts("bob")    # bindings of bob, from `kamcmd ul.dump` over the ctl socket
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.sut.kamailio import kamailio

HERE = Path(__file__).resolve().parent
FLAKY_REGISTRAR = HERE / "kamailio-flaky-registrar.cfg"
INVITE_AUTH = HERE / "kamailio-invite-auth.cfg"
KAMCMD = "/usr/sbin/kamcmd"


@dataclass
class KamailioSut:
    address: str
    log_path: Path
    ctl_socket: Path

    def log_lines(self, marker: str) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if marker in line]

    def kamcmd(self, *args: str) -> str:
        argv = [KAMCMD, "-s", f"unix:{self.ctl_socket}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout

    def contacts(self, user: str) -> list[str]:
        """The Contact URIs bound to `user` now (kamcmd prints ul.dump as loose JSON-ish text;
        only the `Address:` lines under the user's AoR are taken)."""
        out = self.kamcmd("ul.dump")
        found: list[str] = []
        current: str | None = None
        for line in out.splitlines():
            aor = re.match(r"\s*AoR:\s*(\S+)", line)
            if aor:
                current = aor.group(1)
                continue
            addr = re.match(r"\s*Address:\s*(\S+)", line)
            if addr and current == user:
                found.append(addr.group(1))
        return found


@contextmanager
def kamailio_sut(
    config: Path, port: int, work_dir: Path, defines: tuple[str, ...] = (), ip: str = "127.0.0.1"
) -> Iterator[KamailioSut]:
    """tests.sut.kamailio.kamailio with another config, its log and its ctl socket at hand."""
    with kamailio(port, work_dir, ip=ip, config=config, defines=defines) as address:
        yield KamailioSut(address, work_dir / "kamailio.log", work_dir / "kamailio-ctl.sock")
