"""SIPp output parsers, on committed real SIPp 3.6.1 files and on a fresh real run."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from runners.scenario_files import built_in_path
from runners.sipp_errors import parse_error_file, parse_error_text
from runners.sipp_stats import (
    cause_name,
    parse_duration,
    parse_rtt_text,
    parse_stat_text,
    parse_time,
)
from runners.stats_stream import StatsStream
from tests.runner_fixtures import loopback_ip

DATA = Path(__file__).parent / "data" / "sipp"


def test_field_formats() -> None:
    assert parse_time("2026-11-27\t03:41:21.032840\t1795750881.032840") == 1795750881.03284
    assert parse_duration("00:00:01:758000") == 1.758
    assert parse_duration("01:02:03") == 3723.0
    assert cause_name("FailedUnexpectedMessage") == "unexpected_message"
    assert cause_name("FailedMaxUDPRetrans") == "max_udp_retrans"
    assert cause_name("FailedTimeoutOnRecv") == "timeout_on_recv"


def test_stat_file_periodic_sums_to_cumulative() -> None:
    rows = parse_stat_text((DATA / "call-usr1-stat.csv").read_text())
    assert len(rows) == 5  # one row at start, one per second, two at exit
    assert sum(r.periodic.successful_calls for r in rows) == 125
    assert rows[-1].cumulative.successful_calls == 125
    assert rows[-1].cumulative.calls_created == 125
    assert rows[1].current_calls == 25 and rows[1].call_rate > 40


def test_stat_file_failure_causes() -> None:
    rows = parse_stat_text((DATA / "call-404-stat.csv").read_text())
    assert rows[1].periodic.failed_calls == 3
    assert rows[1].periodic.failed_by_cause == {"unexpected_message": 3}
    assert rows[-1].cumulative.failed_by_cause == {"unexpected_message": 3}
    assert rows[-1].periodic.failed_by_cause == {}


def test_rtt_file() -> None:
    samples = parse_rtt_text((DATA / "call-usr1-rtt.csv").read_text())
    assert len(samples) == 125
    assert all(s.rtd == "1" and s.response_ms >= 0 for s in samples)
    assert samples[0].date_ms == 24.001


def test_error_file_reasons() -> None:
    assert parse_error_file(DATA / "register-401-errors.log") == {"REGISTER: 401 Unauthorized": 1}
    assert parse_error_file(DATA / "call-404-errors.log") == {"INVITE: 404 Not Found": 3}
    assert parse_error_file(DATA / "call-retrans-timeout-errors.log") == {
        "UDP retransmission timeout": 3
    }
    assert parse_error_file(DATA / "missing.log") == {}
    # A flow's check that a response is a 2xx (the transfer flows' REFER, answered 403 by
    # Kamailio -A REJECT_REFER): the response names the reason, as an unexpected one would.
    assert parse_error_file(DATA / "refer-403-check-errors.log") == {"REFER: 403 Forbidden": 4}
    # A failed check on anything but a response stays as SIPp wrote it.
    body = "2026-12-07\t06:11:18.797685\t1796623878.797685: Failed regexp match: looking in 'v=0"
    assert list(parse_error_text(body)) == ["Failed regexp match: looking in 'v=0"]


def test_error_file_ignores_non_failures() -> None:
    text = (
        "The following events occurred:\n"
        "2026-11-27\t03:40:22.883562\t1795750822.883562: Call-Id: 1-11120@127.201.0.1, "
        "receive timeout on message sipflow call:6, jumping to label 7"
        "2026-11-27\t03:28:35.008636\t1795750115.008636: Dead call 1-7671@127.201.0.1 "
        "(aborted at index 2), received 'BYE sip:x SIP/2.0\r\nCSeq: 2 BYE\r\n\r\n'"
        "2026-11-27\t03:28:34.805266\t1795750114.805266: Aborting call on unexpected message "
        "for Call-Id '1-7671@127.201.0.1': while sending (index 2), received "
        "'OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n'"
    )
    assert parse_error_text(text) == {"unexpected OPTIONS request": 1}


def test_error_file_names_a_failed_check() -> None:
    # SIPp's text for a failed check_it ereg (sipflow/flows.py's early_media caller checks that
    # an answer with no 183 before it was a 183; hold_resume checks a body).
    entry = "2026-12-07\t06:20:01.000001\t1796624401.000001: Failed regexp match: looking in "
    text = (
        entry + "'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n', "
        "with regexp '^SIP/2.0 183'\n"
        + entry
        + "'v=0\r\na=sendrecv\r\n', with regexp 'a=(recvonly|inactive)'"
    )
    assert parse_error_text(text) == {
        "check '^SIP/2.0 183' failed on INVITE: 200 OK": 1,
        "check 'a=(recvonly|inactive)' failed": 1,
    }


def test_fresh_run_stream_matches_stat_file(tmp_path: Path) -> None:
    """Real SIPp uac/uas: the messages' periodic counts add up to SIPp's last cumulative row and
    the histograms hold one sample per call."""
    uas_ip, uac_ip = loopback_ip(), loopback_ip()
    uas = subprocess.Popen(
        ["sipp", "-sf", str(built_in_path("answer")), "-nostdin", "-i", uas_ip, "-ci", uas_ip],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        (tmp_path / "inj.csv").write_text(f"SEQUENTIAL\na;d;;b;{uas_ip}:5060;{uac_ip}:5060\n")
        scenario = tmp_path / "call.xml"
        scenario.write_text(built_in_path("call").read_text())
        argv = ["sipp", f"{uas_ip}:5060", "-sf", str(scenario), "-inf", "inj.csv", "-nostdin"]
        argv += ["-i", uac_ip, "-p", "5060", "-ci", uac_ip, "-r", "40", "-m", "60"]
        argv += ["-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1"]
        uac = subprocess.Popen(
            argv,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stream = StatsStream("s", "r", "caller")
        stream.attach(tmp_path / "stat.csv", tmp_path / f"call_{uac.pid}_rtt.csv")
        messages = []
        while uac.poll() is None:
            messages += stream.poll()
            time.sleep(0.1)
        messages += stream.poll(final=True)
        assert uac.returncode == 0
    finally:
        uas.terminate()
        uas.wait(10)
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    rows = parse_stat_text((tmp_path / "stat.csv").read_text())
    assert len(messages) == len(rows)
    assert sum(m.periodic.successful_calls for m in messages) == 60
    assert rows[-1].cumulative.successful_calls == 60
    assert sum(sum(m.histogram) for m in messages) == 60
