"""A stack's allocation table (session id -> what it holds), read and written under a lock that
spans the whole machine: loopback addresses and namespace subnets are shared by every stack."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def locked_table(path: Path, machine_lock: Path) -> Iterator[dict[str, Any]]:
    """The JSON table in `path` while `machine_lock` is held; written back on a clean exit."""
    with open(machine_lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        yield table
        path.write_text(json.dumps(table))
