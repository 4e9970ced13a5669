"""Per-session addresses of the local backend: a /24 of the loopback range, as labelled aliases.

Each session gets 127.<octet>.N.0/24; its runners' addresses are added to `lo` with the label
`lo:<session id>`, so they can be found and removed by session (also after a crash). Linux
routes all of 127.0.0.0/8 to loopback, so without permission to add aliases (not root) the
addresses still work and only the bookkeeping is skipped.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from backends.locked_table import locked_table

log = logging.getLogger(__name__)
MACHINE_LOCK = Path("/tmp/sipflow-loopback.lock")


def _label(session_id: str) -> str:
    return f"lo:{session_id[:12]}"  # interface labels are at most 15 characters


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def loopback_aliases() -> dict[str, list[str]]:
    """label -> addresses currently on lo (labelled ones only)."""
    out = _ip("-j", "addr", "show", "dev", "lo")
    if out.returncode != 0:
        return {}
    result: dict[str, list[str]] = {}
    for link in json.loads(out.stdout or "[]"):
        for a in link.get("addr_info", []):
            label = a.get("label", "lo")
            if label != "lo" and a.get("family") == "inet":
                result.setdefault(label, []).append(a["local"])
    return result


class LoopbackNetworks:
    def __init__(self, state_dir: Path, octet: int = 201) -> None:
        self.state_dir = state_dir
        self.octet = octet
        state_dir.mkdir(parents=True, exist_ok=True)

    def _subnets_on_lo(self) -> set[int]:
        prefix = f"127.{self.octet}."
        return {
            int(addr.split(".")[2])
            for addrs in loopback_aliases().values()
            for addr in addrs
            if addr.startswith(prefix)
        }

    def _locked(self) -> AbstractContextManager[dict[str, Any]]:
        """The allocation table (session id -> third octet), under the machine-wide lock."""
        return locked_table(self.state_dir / "subnets.json", MACHINE_LOCK)

    def provision(self, session_id: str, addresses: list[int]) -> str:
        """Idempotent: returns the session's subnet prefix (e.g. '127.201.7')."""
        with self._locked() as table:
            if session_id not in table:
                # Other stacks on this machine have tables of their own: the loopback device
                # itself says which subnets are taken.
                used = set(table.values()) | self._subnets_on_lo()
                free = next((n for n in range(1, 255) if n not in used), None)
                if free is None:
                    raise RuntimeError("no free /24 left in the loopback range for a new session")
                table[session_id] = free
            subnet = f"127.{self.octet}.{table[session_id]}"
            present = set(loopback_aliases().get(_label(session_id), []))
            for host in addresses:
                addr = f"{subnet}.{host}"
                ipaddress.ip_address(addr)
                if addr in present:
                    continue
                res = _ip("addr", "add", f"{addr}/32", "dev", "lo", "label", _label(session_id))
                if res.returncode != 0 and "File exists" not in res.stderr:
                    log.warning(
                        "could not add %s to lo (%s); using it unlabelled", addr, res.stderr.strip()
                    )
        return subnet

    def allocated(self) -> set[str]:
        """Sessions that hold a subnet of this stack's table."""
        with self._locked() as table:
            return set(table)

    def teardown(self, session_id: str) -> list[str]:
        """Idempotent: removes the session's aliases, frees its subnet; returns what it removed."""
        removed = []
        for addr in loopback_aliases().get(_label(session_id), []):
            if _ip("addr", "del", f"{addr}/32", "dev", "lo").returncode == 0:
                removed.append(addr)
        with self._locked() as table:
            table.pop(session_id, None)
        return removed
