"""The tenant policy: which targets pass, the quotas, its storage on real SQLite and PostgreSQL,
and `sipflow tenants policy show|set|reset`."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from entrypoints.cli import app
from sipflow import tenant_policy
from sipflow.db import session_scope
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from sipflow.tenant_policy import PolicyViolation, Quotas, TenantPolicy, target_refusal
from tests.api_fixtures import VALID_SPEC, seed_session

DEFAULT = TenantPolicy.from_settings(Settings())
ALLOWED_BY_DEFAULT = [
    "127.0.0.1", "127.9.9.9", "::1", "localhost", "LOCALHOST.", "10.0.0.1", "172.31.255.1",
    "192.168.1.10", "fd00::5", "198.18.7.2", "198.19.255.254",
]  # fmt: skip
REFUSED_BY_DEFAULT = [
    "0.0.0.0", "::", "169.254.169.254", "fe80::1", "255.255.255.255", "224.0.0.1", "ff02::1",
    "8.8.8.8", "2001:4860::8888", "172.32.0.1", "198.20.0.1", "::ffff:169.254.169.254",
    "::ffff:8.8.8.8", "example.com", "sip.internal",
]  # fmt: skip


@pytest.mark.parametrize("host", ALLOWED_BY_DEFAULT)
def test_default_allows_loopback_private_and_benchmark_ranges(host: str) -> None:
    assert target_refusal(DEFAULT, host) is None


@pytest.mark.parametrize("host", REFUSED_BY_DEFAULT)
def test_default_refuses_special_public_and_unlisted_names(host: str) -> None:
    reason = target_refusal(DEFAULT, host)
    assert reason and host in reason


def test_catch_all_allows_public_but_never_special_addresses() -> None:
    unlimited = TenantPolicy.unlimited()
    for host in ("8.8.8.8", "2001:4860::8888", "10.0.0.1", "any.example.com"):
        assert target_refusal(unlimited, host) is None, host
    for host in ("169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "fe80::1"):
        reason = target_refusal(unlimited, host)
        assert reason and "address" in reason, host


def test_special_addresses_only_when_listed_explicitly() -> None:
    policy = TenantPolicy(allowed_networks=["169.254.169.254/32", "224.0.0.0/24"])
    assert target_refusal(policy, "169.254.169.254") is None
    assert target_refusal(policy, "224.0.0.1") is None
    assert target_refusal(policy, "169.254.0.1") is not None
    # A network wider than the special range does not count as naming it.
    assert target_refusal(TenantPolicy(allowed_networks=["128.0.0.0/1"]), "224.0.0.1")


def test_names_by_name_only() -> None:
    policy = TenantPolicy(allowed_hosts=["pbx.lab", "*.sut.example"])
    assert target_refusal(policy, "pbx.lab") is None
    assert target_refusal(policy, "PBX.LAB.") is None
    assert target_refusal(policy, "a.sut.example") is None
    assert target_refusal(policy, "sut.example") is not None
    assert target_refusal(policy, "evilsut.example") is not None
    assert target_refusal(policy, "localhost") is not None  # loopback is not in its networks


def spec(**callers: object) -> SessionSpec:
    body = copy.deepcopy(VALID_SPEC)
    body["roles"]["callers"].update(callers)
    return SessionSpec.model_validate(body)


def test_quotas_name_their_limit() -> None:
    def refused(quotas: Quotas, s: SessionSpec) -> str:
        with pytest.raises(PolicyViolation) as exc:
            tenant_policy.check_spec(TenantPolicy(allowed_networks=[], quotas=quotas), s)
        assert exc.value.kind == "quota"
        return exc.value.limit

    assert refused(Quotas(agents=2), spec()) == "agents"  # 1 callee + 2 callers
    assert refused(Quotas(calls_per_s=9), spec()) == "calls_per_s"
    assert refused(Quotas(calls_per_session=19), spec()) == "calls_per_session"
    # Without max_calls, the calls are bounded by rate x duration.
    by_time = spec(max_calls=None, duration_s=10, rate=10)
    assert refused(Quotas(calls_per_session=99), by_time) == "calls_per_session"
    assert refused(Quotas(duration_s=9), by_time) == "duration_s"
    tenant_policy.check_spec(
        TenantPolicy(quotas=Quotas(agents=3, calls_per_s=10, calls_per_session=100)), by_time
    )


def test_stored_policy_wins_and_counts_running_sessions(database_url: str) -> None:
    settings = Settings(database_url=database_url)
    with session_scope(database_url) as db:
        assert tenant_policy.load(db, "team-a", settings) == DEFAULT
        tenant_policy.save(db, "team-a", TenantPolicy(quotas=Quotas(concurrent_sessions=2)))
        tenant_policy.save(db, "team-a", TenantPolicy(quotas=Quotas(concurrent_sessions=1)))
        assert tenant_policy.load(db, "team-a", settings).quotas.concurrent_sessions == 1
        assert tenant_policy.load(db, "team-b", settings) == DEFAULT
    seed_session(database_url, "s1")
    with session_scope(database_url) as db:
        assert tenant_policy.running_sessions(db, "team-a") == 1
        with pytest.raises(PolicyViolation) as exc:
            tenant_policy.enforce("team-a", spec(), db, settings)
        assert exc.value.limit == "concurrent_sessions"
        tenant_policy.enforce("team-b", spec(), db, settings)  # another tenant's count
        assert tenant_policy.delete(db, "team-a") is True
        tenant_policy.enforce("team-a", spec(), db, settings)  # the default allows 16


def test_cli_show_set_reset(database_url: str) -> None:
    runner = CliRunner()
    db = ["--database-url", database_url]

    def show() -> dict[str, object]:
        result = runner.invoke(app, ["tenants", "policy", "show", "lab", *db])
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    assert show()["source"] == "settings"
    args = ["--allow-network", "127.0.0.0/8", "--allow-host", "*.lab", "--agents", "4"]
    result = runner.invoke(app, ["tenants", "policy", "set", "lab", *args, *db])
    assert result.exit_code == 0, result.output
    shown = show()
    assert shown["source"] == "tenant"
    assert shown["allowed_networks"] == ["127.0.0.0/8"] and shown["allowed_hosts"] == ["*.lab"]
    quotas = shown["quotas"]
    assert isinstance(quotas, dict) and quotas["agents"] == 4
    assert quotas["concurrent_sessions"] == 16  # kept from the default it started from
    # 0 lifts a quota; --unlimited starts from any target.
    runner.invoke(app, ["tenants", "policy", "set", "lab", "--unlimited", "--agents", "0", *db])
    shown = show()
    assert shown["allowed_networks"] == ["0.0.0.0/0", "::/0"]
    assert shown["quotas"] == {k: None for k in Quotas.model_fields}
    bad = runner.invoke(app, ["tenants", "policy", "set", "lab", "--allow-network", "x", *db])
    assert bad.exit_code == 2
    result = runner.invoke(app, ["tenants", "policy", "reset", "lab", *db])
    assert result.exit_code == 0 and show()["source"] == "settings"
