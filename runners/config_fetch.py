"""A containerized runner's files, fetched from the API with its token at start
(api/routes/runner_files.py): config, accounts, scenario."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from pydantic import TypeAdapter

from sipflow.runner_config import AccountConfig, RunnerConfig

log = logging.getLogger("runners.agent")
FETCH_TIMEOUT_S = 60.0  # how long a containerized agent retries reaching the API


class FetchRefused(Exception):
    """The API refused the token (wrong, or the session no longer runs)."""


def _get(url: str, token: str, deadline: float) -> bytes:
    """GET with the runner token; retries while the API is unreachable or answers 5xx."""
    delay = 0.5
    while True:
        req = Request(url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urlopen(req, timeout=10) as resp:
                body: bytes = resp.read()
                return body
        except HTTPError as e:
            if e.code < 500:
                raise FetchRefused(f"GET {url}: HTTP {e.code}") from None
            problem = f"HTTP {e.code}"
        except (URLError, OSError) as e:
            problem = str(getattr(e, "reason", e))
        if time.monotonic() + delay > deadline:
            raise TimeoutError(f"GET {url}: {problem}")
        log.warning("GET %s: %s; retrying", url, problem)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def fetch_config(base_url: str, token: str, timeout: float = FETCH_TIMEOUT_S) -> RunnerConfig:
    """The runner's config, accounts and scenario from the API (api/routes/runner_files.py)."""
    deadline = time.monotonic() + timeout
    cfg = RunnerConfig.model_validate_json(_get(f"{base_url}/config", token, deadline))
    accounts = TypeAdapter(list[AccountConfig]).validate_json(
        _get(f"{base_url}/accounts", token, deadline)
    )
    update: dict[str, object] = {"accounts": accounts}
    if cfg.scenario == "custom":
        update["scenario_xml"] = _get(f"{base_url}/scenario", token, deadline).decode()
    return cfg.model_copy(update=update)


def resolve_local_ip(cfg: RunnerConfig) -> RunnerConfig:
    """In a container the config names the runner (its host name on the session network);
    SIPp binds the address that name has."""
    try:
        ipaddress.ip_address(cfg.local_ip)
        return cfg
    except ValueError:
        return cfg.model_copy(update={"local_ip": socket.gethostbyname(cfg.local_ip)})
