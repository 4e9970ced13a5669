"""Whether the NFQUEUE delayer can carry a delayed session's planned traffic.

The delayer (backends/delayer.py, one Python process per session) handles every packet the
session's runners receive; above a measured rate it falls behind and the delay grows without
bound (bench/delayer_rate.py). So a session with `delay_ms` planned above the stated limit
(SIPFLOW_DELAYER_MAX_CALLS_PER_S, plain calls of the built-in scenarios) is refused before
anything starts, with this reason. Audio counts as the calls' worth of packets it adds.
"""

from __future__ import annotations

from sipflow.spec import SessionSpec

# Packets the runners of a session receive per plain call: INVITE, 100, 180, 200, ACK, BYE, 200.
SIP_PACKETS_PER_CALL = 7
RTP_PACKETS_PER_S = 50  # G.711 at 20 ms packets, each direction


def delayed(spec: SessionSpec) -> tuple[str, ...] | None:
    """Where the spec asks for delay (its loc), or None."""
    if spec.network.delay_ms:
        return ("network", "delay_ms")
    for name, role in (("callees", spec.roles.callees), ("callers", spec.roles.callers)):
        if role is not None and role.network.delay_ms:
            return ("roles", name, "network", "delay_ms")
    return None


def call_equivalents_per_s(spec: SessionSpec) -> float:
    """The session's planned peak load on the delayer, in plain calls per second."""
    callers = spec.roles.callers
    packets: float = SIP_PACKETS_PER_CALL
    if callers.media is not None:  # both directions, for the whole hold
        packets += 2 * RTP_PACKETS_PER_S * callers.hold_ms / 1000
    return callers.peak_rate() * packets / SIP_PACKETS_PER_CALL


def refusal(spec: SessionSpec, max_calls_per_s: float) -> tuple[tuple[str, ...], str] | None:
    """(loc, reason) when the delayer cannot carry the spec's delayed traffic, else None."""
    loc = delayed(spec)
    if loc is None:
        return None
    load = call_equivalents_per_s(spec)
    if load <= max_calls_per_s:
        return None
    rate = spec.roles.callers.peak_rate()
    audio = f" (with its audio, as much as {load:g} plain calls/s)" if load != rate else ""
    return loc, (
        f"the delayer carries at most {max_calls_per_s:g} calls/s "
        f"(SIPFLOW_DELAYER_MAX_CALLS_PER_S, measured by bench/delayer_rate.py); this session "
        f"plans {rate:g} calls/s{audio}: lower the rate or drop the delay"
    )
