"""The Temporal client of the API: connected on first use, then reused by every request."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

CONNECT_TIMEOUT_S = 5.0
_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


class TemporalUnavailable(Exception):
    """Temporal cannot be reached; the API answers 503."""


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, TemporalUnavailable) or (
        isinstance(exc, RPCError) and exc.status in _UNAVAILABLE
    )


class TemporalConnector:
    def __init__(self, address: str, namespace: str, data_converter: DataConverter) -> None:
        self.address = address
        self.namespace = namespace
        # sipflow.payload_codec.data_converter: payloads encrypted, like the worker's.
        self.data_converter = data_converter
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        """The shared client; TemporalUnavailable when the server cannot be reached."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        Client.connect(
                            self.address,
                            namespace=self.namespace,
                            data_converter=self.data_converter,
                        ),
                        CONNECT_TIMEOUT_S,
                    )
                except Exception as exc:  # connect raises RuntimeError, TimeoutError, RPCError
                    raise TemporalUnavailable(
                        f"Temporal at {self.address} is unreachable: {exc}"
                    ) from exc
            return self._client
