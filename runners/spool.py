"""The agent's on-disk spool of QoS 1 messages the broker has not acknowledged yet.

Every stats interval (and the done message) is written here before it is published and removed
when its PUBACK comes. Whatever is still here is published again after a reconnect and when an
agent starts on the same work directory again, so neither a long broker outage nor the agent's
own death loses an interval (the ingest stores (session, runner, seq) once, so a message sent
twice is harmless).

One file per message (`<key>.msg`: the topic, a newline, the payload), written to a temporary
name and renamed, so a killed agent leaves whole files only. Bounded by `max_messages`: when
full, a new message is not spooled (it still goes to paho's in-memory queue) and counted in
`dropped`; the oldest messages, which the ingest misses first, are kept.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".msg"


class Spool:
    def __init__(self, directory: Path, max_messages: int) -> None:
        self.dir = directory
        self.max_messages = max_messages
        self.dropped = 0
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.dir.glob("*.tmp"):  # half-written by an agent that was killed
            tmp.unlink(missing_ok=True)
        self._keys: set[str] = {p.name[: -len(SUFFIX)] for p in self.dir.glob(f"*{SUFFIX}")}

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}{SUFFIX}"

    def put(self, key: str, topic: str, payload: bytes) -> bool:
        """Spools the message; False when the spool is full (the message is then only in memory)."""
        with self._lock:
            if key not in self._keys and len(self._keys) >= self.max_messages:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.error(
                        "spool full (%d messages): %d not spooled", self.max_messages, self.dropped
                    )
                return False
            tmp = self.dir / f"{key}.tmp"
            with open(tmp, "wb") as f:
                f.write(topic.encode() + b"\n" + payload)
            os.replace(tmp, self._path(key))
            self._keys.add(key)
            return True

    def remove(self, key: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys.discard(key)
                self._path(key).unlink(missing_ok=True)

    def sorted_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def read(self, key: str) -> tuple[str, bytes] | None:
        try:
            raw = self._path(key).read_bytes()
        except OSError:
            return None
        topic, _, payload = raw.partition(b"\n")
        return topic.decode(), payload
