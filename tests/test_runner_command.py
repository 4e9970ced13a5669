"""SIPp command line and injection rows (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.injection import rows_for, write_injection
from runners.sipp_command import SippFiles, build_command, rtt_file
from sipflow.runner_config import AccountConfig, RegistrarConfig, RunnerConfig

FILES = SippFiles(Path("/w/call.xml"), Path("/w/inj.csv"), Path("/w/stat.csv"), Path("/w/e.log"))


def _cfg(**kw: object) -> RunnerConfig:
    base: dict[str, object] = {
        "session_id": "s",
        "runner_id": "r",
        "role": "caller",
        "scenario": "call",
        "local_ip": "127.201.0.1",
        "work_dir": Path("/w"),
    }
    base.update(kw)
    return RunnerConfig.model_validate(base)


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_caller_command() -> None:
    cfg = _cfg(remote="127.0.0.1:5090", rate=20.5, max_calls=50, max_concurrent=10, hold_ms=300)
    argv = build_command(cfg, "main", FILES)
    assert argv[:2] == ["sipp", "127.0.0.1:5090"]
    assert "-nostdin" in argv and "-trace_stat" in argv and "-trace_rtt" in argv
    assert _opt(argv, "-sf") == "/w/call.xml" and _opt(argv, "-inf") == "/w/inj.csv"
    assert _opt(argv, "-t") == "u1"
    assert _opt(argv, "-i") == "127.201.0.1" and _opt(argv, "-p") == "5060"
    assert _opt(argv, "-ci") == "127.201.0.1" and _opt(argv, "-cp") == "8888"
    assert _opt(argv, "-stf") == "/w/stat.csv" and _opt(argv, "-fd") == "1"
    assert _opt(argv, "-rtt_freq") == "1" and _opt(argv, "-error_file") == "/w/e.log"
    assert _opt(argv, "-buff_size") == "4194304"
    assert _opt(argv, "-r") == "20.5" and _opt(argv, "-m") == "50" and _opt(argv, "-l") == "10"
    assert _opt(argv, "-d") == "300"
    # Call-IDs name the session: `1-<pid>@s.127.201.0.1`, not SIPp's `1-<pid>@127.201.0.1`,
    # which repeats across sessions in containers (same pid, reused addresses).
    assert _opt(argv, "-cid_str") == "%u-%p@s.%s"


def test_callee_and_register_commands() -> None:
    reg = RegistrarConfig(host="127.0.0.1", port=5090, domain="sip.test", expires_s=120)
    cfg = _cfg(role="callee", scenario="answer", transport="tcp", registrar=reg, rate=5)
    main = build_command(
        cfg, "main", SippFiles(Path("/w/answer.xml"), None, FILES.stat, FILES.errors)
    )
    assert main[1] == "-sf"  # no remote host for a UAS
    assert _opt(main, "-t") == "t1" and "-inf" not in main and "-r" not in main and "-m" not in main
    register = build_command(cfg, "register", FILES)
    assert register[1] == "127.0.0.1:5090"
    assert _opt(register, "-m") == "1"
    assert register[register.index("-key") + 1 : register.index("-key") + 3] == ["expires", "120"]
    assert _opt(main, "-cid_str") == "%u-%p@s.%s"


def test_caller_needs_remote() -> None:
    with pytest.raises(ValueError):
        build_command(_cfg(), "main", FILES)


def test_rtt_file_name() -> None:
    assert rtt_file(Path("/w/call.xml"), 42) == Path("/w/call_42_rtt.csv")


def test_injection_round_robin(tmp_path: Path) -> None:
    cfg = _cfg(
        remote="127.0.0.1:5090",
        domain="sip.test",
        accounts=[AccountConfig(user="alice", password="secret"), AccountConfig(user="carol")],
        call_to=["bob", "dave", "erin"],
    )
    rows = rows_for(cfg, "main")
    assert [r[0] for r in rows] == ["alice", "carol", "alice"]
    assert [r[3] for r in rows] == ["bob", "dave", "erin"]
    assert rows[0] == [
        "alice",
        "sip.test",
        "[authentication username=alice password=secret]",
        "bob",
        "sip.test",
        "127.201.0.1:5060",
    ]
    assert rows[1][2] == ""
    path = write_injection(tmp_path / "i.csv", rows)
    assert path.read_text().splitlines()[0] == "SEQUENTIAL"


def test_injection_direct_and_register() -> None:
    direct = rows_for(_cfg(remote="127.201.0.2:5060"), "main")
    assert direct == [
        ["sipflow", "127.201.0.1", "", "sipflow", "127.201.0.2:5060", "127.201.0.1:5060"]
    ]
    reg = RegistrarConfig(host="127.0.0.1", port=5090, domain="sip.test")
    callee = _cfg(
        role="callee",
        scenario="answer",
        local_port=5070,
        registrar=reg,
        accounts=[AccountConfig(user="bob", password="secret")],
    )
    assert rows_for(callee, "register") == [
        ["bob", "sip.test", "[authentication username=bob password=secret]", "", "sip.test",
         "127.201.0.1:5070"]
    ]  # fmt: skip


def test_injection_rejects_unsafe_values() -> None:
    cfg = _cfg(remote="x:1", accounts=[AccountConfig(user="a", password="p;w")])
    with pytest.raises(ValueError):
        rows_for(cfg, "main")
