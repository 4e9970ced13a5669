"""The agent behaves like a real UA against a real Kamailio: a REGISTER that fails is tried again,
the registration is refreshed before it expires and removed at the end, and an INVITE that is
challenged (407) is sent again with the caller's credentials."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.runner_fixtures import (
    AgentProcess,
    Collector,
    Mosquitto,
    agents,
    collector_factory,
    free_port,
    loopback_ip,
    mosquitto,
    wait_for,
)
from tests.sut.kamailio_ua import FLAKY_REGISTRAR, INVITE_AUTH, KamailioSut, kamailio_sut

__all__ = ["agents", "collector_factory", "mosquitto"]  # fixtures used by name

StartAgent = Callable[[dict[str, Any]], AgentProcess]
DOMAIN = "sip.test"
# Short timers: a test must not wait for a phone's real backoff.
FAST_RETRY = {"register_backoff_s": 0.3, "register_backoff_factor": 2.0, "register_attempts": 3}


def _callee(
    session: str, mqtt_port: int, sut: str, expires: int = 300, **kw: Any
) -> dict[str, Any]:
    host, port = sut.split(":")
    return {
        "session_id": session,
        "runner_id": "bob",
        "role": "callee",
        "scenario": "answer",
        "local_ip": loopback_ip(),
        "local_port": 5070,
        "accounts": [{"user": "bob", "password": "secret"}],
        "registrar": {"host": host, "port": int(port), "domain": DOMAIN, "expires_s": expires},
        "mqtt_port": mqtt_port,
        **FAST_RETRY,
        **kw,
    }


def _caller(
    session: str, mqtt_port: int, sut: str, runner_id: str, account: dict[str, str], calls: int
) -> dict[str, Any]:
    return {
        "session_id": session,
        "runner_id": runner_id,
        "role": "caller",
        "scenario": "call",
        "local_ip": loopback_ip(),
        "remote": sut,
        "domain": DOMAIN,
        "accounts": [account],
        "call_to": ["bob"],
        "rate": 20,
        "max_calls": calls,
        "hold_ms": 50,
        "mqtt_port": mqtt_port,
    }


def _calls_pass(col: Collector, agents: StartAgent, session: str, port: int, sut: str) -> None:
    """10 calls from alice (with credentials) to bob through the SUT all succeed."""
    rid = f"alice-{time.monotonic_ns()}"
    caller = agents(_caller(session, port, sut, rid, {"user": "alice", "password": "secret"}, 10))
    assert caller.wait(60) == 0, caller.log()
    done = col.done(rid)
    assert done["ok"] and done["summary"]["successful_calls"] == 10, done


def _stop(callee: AgentProcess) -> None:
    callee.signal(signal.SIGTERM)
    assert callee.wait(40) == 0, callee.log()


def _saved(sut: KamailioSut, user: str) -> list[str]:
    """Expires of every REGISTER of `user` the registrar saved, in order."""
    lines = sut.log_lines(f"sipflow-saved user={user} ")
    return [re.search(r"expires=(\S*)", line).group(1) for line in lines]  # type: ignore[union-attr]


def _registers(sut: KamailioSut, user: str) -> list[tuple[str, int, str]]:
    """(Call-ID, CSeq, auth yes/no) of every REGISTER of `user` the registrar received."""
    out = []
    for line in sut.log_lines(f"sipflow-register user={user} "):
        m = re.search(r"callid=(\S+) cseq=(\d+) auth=(\w+)", line)
        assert m, line
        out.append((m.group(1), int(m.group(2)), m.group(3)))
    return out


def _tries(sut: KamailioSut, user: str) -> list[int]:
    """The CSeqs of `user`'s tries, in order: a try's first REGISTER is sent without
    credentials (retransmissions repeat its CSeq; its digest retry has credentials)."""
    return list(dict.fromkeys(cseq for _, cseq, auth in _registers(sut, user) if auth == "no"))


def test_first_register_answered_500_is_retried(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = "ua-retry"
    col = collector_factory(session)
    with kamailio_sut(FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio") as sut:
        callee = agents(_callee(session, mosquitto.port, sut.address))
        wait_for(lambda: "ready" in col.states("bob"), 30, "bob registered and ready")
        states = col.of("bob", "state")
        assert [s["state"] for s in states] == ["starting", "registering", "registering", "ready"]
        assert states[2]["detail"] == "try 2 of 3 after 500 Server Error"
        assert states[3]["detail"] == "registered after 2 attempts (500 Server Error x1)"
        assert len(sut.log_lines("sipflow-first-register user=bob: 500")) == 1
        assert _saved(sut, "bob") == ["300"]
        _calls_pass(col, agents, session, mosquitto.port, sut.address)
        _stop(callee)
        assert _saved(sut, "bob") == ["300", "0"]  # removed at the end
        assert sut.contacts("bob") == []
    done = col.done("bob")
    assert done["ok"], done
    reg = done["registration"]
    assert reg["attempts_to_register"] == 2
    assert reg["failures"] == {"500 Server Error": 1}
    assert reg["unregistered"] is True and reg["error"] is None
    assert reg["attempts"] == 3 and reg["successes"] == 2  # register x2, unregister x1
    # The failed try is among the runner's reasons although it ended well.
    assert done["failure_reasons"] == {"REGISTER: 500 Server Error": 1}
    assert done["summary"]["successful_calls"] == 10


def test_first_register_unanswered_times_out_and_is_retried(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = "ua-timeout"
    col = collector_factory(session)
    with kamailio_sut(
        FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio", defines=("FIRST_REGISTER_DROP",)
    ) as sut:
        started = time.monotonic()
        callee = agents(_callee(session, mosquitto.port, sut.address, register_timeout_s=1.0))
        wait_for(lambda: "ready" in col.states("bob"), 30, "bob registered and ready")
        # One try waited its full timeout before the second was sent.
        assert time.monotonic() - started >= 1.0 + FAST_RETRY["register_backoff_s"]
        assert sut.log_lines("sipflow-first-register user=bob: dropped")  # (retransmitted)
        assert len(_tries(sut, "bob")) == 2  # two tries
        _calls_pass(col, agents, session, mosquitto.port, sut.address)
        _stop(callee)
    reg = col.done("bob")["registration"]
    assert reg["attempts_to_register"] == 2 and reg["failures"] == {"timeout": 1}


def test_registration_gives_up_after_the_last_try(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = "ua-give-up"
    col = collector_factory(session)
    with kamailio_sut(
        FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio", defines=("REGISTER_ALWAYS_500",)
    ) as sut:
        started = time.monotonic()
        callee = agents(_callee(session, mosquitto.port, sut.address))
        assert callee.wait(60) == 1, callee.log()
        took = time.monotonic() - started
        assert len(_tries(sut, "bob")) == 3
    # Backoff 0.3 s, then 0.6 s.
    assert took >= 0.9, took
    done = col.done("bob")
    assert not done["ok"] and done["last_seq"] == 0
    assert done["error"] == "registration failed after 3 attempts: 500 Server Error"
    assert done["failure_reasons"] == {"REGISTER: 500 Server Error": 3}
    assert done["registration"]["attempts"] == 3
    assert done["registration"]["unregistered"] is None  # never registered, nothing to remove
    final = col.of("bob", "state")[-1]
    assert final["state"] == "failed"
    assert final["detail"] == "registration failed after 3 attempts: 500 Server Error"
    assert col.of("bob", "stats") == []


def test_registration_refreshed_before_expiry_and_removed(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    """Expires: 10 in a ~30 s run: refreshed every ~8 s from another port, the binding (to the
    main SIPp's port) outlives the first expiry, and it is gone after the callee stopped."""
    session = "ua-refresh"
    col = collector_factory(session)
    with kamailio_sut(FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio") as sut:
        cfg = _callee(session, mosquitto.port, sut.address, expires=10)
        callee = agents(cfg)
        contact = f"sip:bob@{cfg['local_ip']}:5070;transport=UDP"
        wait_for(lambda: "ready" in col.states("bob"), 30, "bob registered and ready")
        registered_at = time.monotonic()
        assert sut.contacts("bob") == [contact]
        # Well past the first expiry (10 s) the binding is still there and calls still reach bob.
        time.sleep(max(0.0, registered_at + 26 - time.monotonic()))
        assert sut.contacts("bob") == [contact]
        _calls_pass(col, agents, session, mosquitto.port, sut.address)
        _stop(callee)
        saved = _saved(sut, "bob")
        registers = _registers(sut, "bob")
        sources = [
            re.search(r"src=(\S+)", line).group(1)  # type: ignore[union-attr]
            for line in sut.log_lines("sipflow-register user=bob expires=10")
        ]
        assert sut.contacts("bob") == []
    refreshes = saved[1:-1]
    assert len(refreshes) >= 2 and set(refreshes) == {"10"}, saved
    assert saved[0] == "10" and saved[-1] == "0", saved
    # The refreshes were sent from other ports than the contact's, which the main SIPp holds.
    assert all(not s.endswith(":5070") for s in sources[-2 * len(refreshes) :]), sources
    # One Call-ID for the registration, its refreshes and its removal; every new REGISTER a
    # CSeq higher than the last (a retransmission repeats it).
    assert len({call_id for call_id, _, _ in registers}) == 1, registers
    cseqs = [cseq for _, cseq, _ in registers]
    assert cseqs == sorted(cseqs) and len(set(cseqs)) >= 2 * len(saved) - 1, cseqs
    reg = col.done("bob")["registration"]
    assert reg["refreshes"] == len(refreshes)
    assert reg["expires_s"] == 10
    assert reg["unregistered"] is True


def test_invite_challenge_answered_with_credentials(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = "ua-invite-auth"
    col = collector_factory(session)
    with kamailio_sut(INVITE_AUTH, free_port(), tmp_path / "kamailio") as sut:
        callee = agents(_callee(session, mosquitto.port, sut.address))
        wait_for(lambda: "ready" in col.states("bob"), 30, "bob registered and ready")
        port, address = mosquitto.port, sut.address
        alice = agents(
            _caller(session, port, address, "alice", {"user": "alice", "password": "secret"}, 20)
        )
        carol = agents(_caller(session, port, address, "carol", {"user": "carol"}, 10))
        wrong = agents(
            _caller(session, port, address, "mallory", {"user": "alice", "password": "x"}, 5)
        )
        assert alice.wait(60) == 0, alice.log()
        assert carol.wait(60) == 1, carol.log()
        assert wrong.wait(60) == 1, wrong.log()
        _stop(callee)
        invites = sut.log_lines("sipflow-invite")
    ok = col.done("alice")
    assert ok["ok"] and ok["summary"]["successful_calls"] == 20, ok
    # Each call: INVITE (CSeq 1) -> 407 -> ACK -> INVITE (CSeq 2) with credentials -> 200.
    assert sum("user=alice cseq=1 auth=no" in i for i in invites) == 25
    assert sum("user=alice cseq=2 auth=yes" in i for i in invites) == 20
    # Response times are measured from the first INVITE: one sample per successful call.
    stats = {m["seq"]: m for m in col.of("alice", "stats")}
    assert sum(sum(m["histogram"]) for m in stats.values()) == 20
    assert col.done("bob")["summary"]["successful_calls"] == 20

    for rid, calls in (("carol", 10), ("mallory", 5)):
        done = col.done(rid)
        assert not done["ok"]
        assert done["summary"]["failed_calls"] == calls
        assert done["summary"]["failed_by_cause"] == {"unexpected_message": calls}, done
        assert done["failure_reasons"] == {"INVITE: 407 Proxy Authentication Required": calls}
    # Without credentials the challenge is not answered: one INVITE per call.
    assert sum("user=carol" in i for i in invites) == 10


def test_interval_too_brief_is_asked_again_with_min_expires(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    """Expires: 5 against a registrar whose minimum is 20: 423 with Min-Expires: 20, then the
    same Call-ID asks 20 at once (no backoff) and is saved with 20."""
    session = "ua-423"
    col = collector_factory(session)
    with kamailio_sut(
        FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio", defines=("MIN_EXPIRES_20",)
    ) as sut:
        callee = agents(_callee(session, mosquitto.port, sut.address, expires=5))
        wait_for(lambda: "ready" in col.states("bob"), 30, "bob registered and ready")
        assert len(sut.log_lines("sipflow-too-brief user=bob expires=5")) == 1
        # 423 for 5 s; the next try (asking 20 s) is the flaky registrar's first: 500; then
        # 20 s is saved.
        assert _saved(sut, "bob") == ["20"]
        assert len({call_id for call_id, _, _ in _registers(sut, "bob")}) == 1
        _stop(callee)
    reg = col.done("bob")["registration"]
    assert reg["failures"] == {"500 Server Error": 1, "423 Interval Too Brief": 1}, reg
    assert reg["attempts_to_register"] == 3 and reg["expires_s"] == 20
    assert reg["unregistered"] is True


def test_retry_after_of_a_503_is_honoured(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    """503 with Retry-After: 2 to the first REGISTER: the next try waits 2 s, not the 0.3 s
    backoff."""
    session = "ua-retry-after"
    col = collector_factory(session)
    with kamailio_sut(
        FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio", defines=("FIRST_REGISTER_503",)
    ) as sut:
        callee = agents(_callee(session, mosquitto.port, sut.address))
        wait_for(lambda: "ready" in col.states("bob"), 30, "bob registered and ready")
        states = col.of("bob", "state")
        _stop(callee)
    assert len(sut.log_lines("sipflow-first-register user=bob: 503")) == 1
    retry = next(s for s in states if (s.get("detail") or "").startswith("try 2 of 3"))
    ready = next(s for s in states if s["state"] == "ready")
    assert retry["detail"] == "try 2 of 3 after 503 Service Unavailable"
    # Announced right after the 503, the next try went out only after its Retry-After.
    assert ready["time"] - retry["time"] >= 2.0, states
    reg = col.done("bob")["registration"]
    assert reg["failures"] == {"503 Service Unavailable": 1} and reg["attempts_to_register"] == 2
