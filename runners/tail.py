"""Incremental reading of a file another process appends to."""

from __future__ import annotations

from pathlib import Path


class LineTail:
    """Returns the complete lines appended since the last call; a partial last line waits."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_lines(self, final: bool = False) -> list[str]:
        if self.path is None or not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        return [line.decode("utf-8", "replace") for line in lines]
