"""Impairment of a session's traffic inside its network namespace: loss, rate, delay, jitter.

- Loss: an nftables table in the namespace drops a share of the packets the runners *receive*
  (input hook: dropping on output makes SIPp's sendto fail with EPERM and it closes its socket).
- Rate: an HTB tree (token-bucket shaping, queueing rather than dropping) on every device a
  runner's packets leave by: the namespace's eth0 (to the host and beyond), its lo (runner to
  runner) and the host end of the veth (into the namespace).
- Delay and jitter: on receipt too, by the session's NFQUEUE delayer (`backends.delay_queue`):
  this kernel has no netem. A call between two runners of a delayed session crosses it twice
  (the request to the callee, the answer to the caller): its response time grows by twice the
  delay. A session whose planned rate is above what the delayer carries is refused before
  anything starts (sipflow/delay_limit.py): never silently unimpaired.

Only SIP/RTP traffic is impaired: the runners' MQTT stream (the broker's port) and SIPp's
control socket are exempt, so the metrics that judge the session are not themselves impaired.
Everything lives in the namespace or on its veth and goes with them at teardown.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Mapping
from pathlib import Path

from backends import delay_queue
from sipflow.plan import CONTROL_PORT
from sipflow.spec import Impairment

UNLIMITED = "10gbit"
SESSION_CLASS = 10
EXEMPT_CLASS = 5


class ImpairmentError(RuntimeError):
    pass


def _run(argv: list[str], stdin: str | None = None) -> None:
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ImpairmentError(f"{' '.join(argv)}: {res.stderr.strip() or res.stdout.strip()}")


def loss_rules(
    session: Impairment, roles: Mapping[str, tuple[Impairment, list[str]]], broker_port: int
) -> str:
    """The namespace's nftables table: random drops on the input hook."""
    exempt = (
        f"tcp sport {broker_port} accept\n    tcp dport {broker_port} accept\n"
        f"    udp dport {CONTROL_PORT} accept"
    )
    drops = []
    for impairment, addresses in roles.values():
        if not (impairment.loss_pct and addresses):
            continue
        for family, version in (("ip", 4), ("ip6", 6)):
            mine = [a for a in addresses if ipaddress.ip_address(a).version == version]
            if mine:
                drops.append(f"{family} daddr {{ {', '.join(mine)} }} {_drop(impairment.loss_pct)}")
    if session.loss_pct:
        drops.append(_drop(session.loss_pct))
    body = "\n    ".join(drops)
    return f"""table inet sipflow-impairment {{
  chain input {{
    type filter hook input priority filter; policy accept;
    {exempt}
    {body}
  }}
}}
"""


def _drop(pct: float) -> str:
    # numgen gives whole numbers: per ten thousand keeps two decimals of the percentage.
    return f"numgen random mod 10000 < {round(pct * 100)} drop"


def _shaping(
    ns: str | None,
    dev: str,
    session: Impairment,
    roles: Mapping[str, tuple[Impairment, list[str]]],
    broker_port: int,
    match: str,
) -> list[list[str]]:
    """tc commands for one device; `match` is "src" or "dst": which address of a packet names
    its runner on this device."""
    tc = ["ip", "netns", "exec", ns, "tc"] if ns else ["tc"]
    rate = f"{session.rate_kbit}kbit" if session.rate_kbit else UNLIMITED
    cmds = [
        [*tc, "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb",
         "default", str(SESSION_CLASS)],
        [*tc, "class", "replace", "dev", dev, "parent", "1:", "classid", f"1:{EXEMPT_CLASS}",
         "htb", "rate", UNLIMITED],
        [*tc, "class", "replace", "dev", dev, "parent", "1:", "classid", f"1:{SESSION_CLASS}",
         "htb", "rate", rate, "ceil", rate],
    ]  # fmt: skip
    u32 = [*tc, "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "u32"]
    for field, port in (("sport", broker_port), ("dport", broker_port), ("dport", CONTROL_PORT)):
        cmds.append(
            [*u32, "match", "ip", field, str(port), "0xffff", "flowid", f"1:{EXEMPT_CLASS}"]
        )
    for k, (impairment, addresses) in enumerate(roles.values()):
        addresses = [a for a in addresses if ipaddress.ip_address(a).version == 4]
        if not impairment.rate_kbit or not addresses:
            continue
        cls = 20 + k
        role_rate = f"{impairment.rate_kbit}kbit"
        cmds.append(
            [*tc, "class", "replace", "dev", dev, "parent", "1:", "classid", f"1:{cls}",
             "htb", "rate", role_rate, "ceil", role_rate]
        )  # fmt: skip
        for address in addresses:
            cmds.append([*u32, "match", "ip", match, f"{address}/32", "flowid", f"1:{cls}"])
    return cmds


def apply(
    session_id: str,
    ns: str,
    host_veth: str,
    session: Impairment,
    roles: Mapping[str, tuple[Impairment, list[str]]],
    broker_port: int,
    state_dir: Path,
) -> None:
    """Impair the namespace's traffic. `roles`: role -> (its impairment, its runner addresses,
    IPv4 and IPv6). Idempotent: what an earlier attempt applied is replaced."""
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet",
                    "sipflow-impairment"], capture_output=True)  # fmt: skip
    in_ns = ["ip", "netns", "exec", ns]
    for prefix, dev in ((in_ns, "eth0"), (in_ns, "lo"), ([], host_veth)):
        argv = [*prefix, "tc", "qdisc", "del", "dev", dev, "root"]
        subprocess.run(argv, capture_output=True)
    if session.loss_pct or any(i.loss_pct for i, _ in roles.values()):
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], loss_rules(session, roles, broker_port))
    try:
        delay_queue.start(state_dir, session_id, ns, session, roles, broker_port)
    except delay_queue.DelayError as exc:
        raise ImpairmentError(f"delay_ms/jitter_ms: {exc}") from exc
    shaped = [session, *(i for i, _ in roles.values())]
    if not any(i.rate_kbit for i in shaped):
        return
    devices = [(ns, "eth0", "src"), (ns, "lo", "src"), (None, host_veth, "dst")]
    for dev_ns, dev, match in devices:
        for argv in _shaping(dev_ns, dev, session, roles, broker_port, match):
            _run(argv)
