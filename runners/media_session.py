"""Media in a runner's calls: the scenario's media variant, SIPp's media options, the RTP
receiver, and the report the agent publishes (topic kind `media`) before its done message.

How a stream is tied to its call: SIPp 3.6.1 gives each call it makes (sent or received) the
SSRC 0xCA110000 + n in the order it makes them (call::init, rtpstream_new_call), whether or not
the call ever streams; the same order numbers them ([call_number], from 1). The scenario starts
each stream and logs `sipflow-media <Call-ID> #<call number>` in one action, so the stream's SSRC
is 0xCA110000 + number - 1 — calls that never stream (refused, failed before the answer) or that
stream out of order do not shift the others. The sender reports (Call-ID, its media address,
SSRC); the receiver reports the stream it got from that address with that SSRC; the store joins
the two.

Through a media relay (`media.relay`), the source is the relay: each runner also logs the address
its peer's SDP named for the call (the relay's port for that leg, which it sends the leg's RTP
from), names the call of each stream it receives by that address, and both ends report the
stream by (Call-ID, direction).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from runners import (
    media_dtmf,
    media_held,
    media_hold,
    media_moments,
    media_pesq,
    media_transfer,
    media_visqol,
)
from runners.media_audio import PAYLOAD_TYPE, reference_file, speech_like
from runners.media_emodel import mos_cqe, r_factor
from runners.media_rtp import RtpReceiver, StreamStats, sampled
from sipflow.media_upload import decode_data, g711, linear_samples
from sipflow.messages import (
    MEDIA_PART_ITEMS,
    DtmfReceived,
    DtmfSent,
    Expectation,
    MediaReport,
    MediaSent,
    MediaStream,
)
from sipflow.runner_config import MediaConfig, RunnerConfig

log = logging.getLogger(__name__)
SSRC_BASE = 0xCA110000
LOG_TAG = "sipflow-media"
SDP_PLAIN = "m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000"
CALLER_ANSWERED = '<action><assign assign_to="answered" value="1"/></action>'
CALLEE_ACK = '<recv request="ACK" optional="true" rtd="true" crlf="true"/>'
CALLEE_INVITE = '<recv request="INVITE" crlf="true"/>'
# Through a relay: the address the peer's SDP names (the relay's port for this call's leg, which
# the relay also sends this leg's RTP from), taken from the 200 (caller) or the INVITE (callee).
PEER_SDP = (
    '<ereg regexp="c=IN IP4 ([0-9.]+)" search_in="msg" check_it="false"'
    ' assign_to="sfm_c,sfm_ip"/>'
    '<ereg regexp="m=audio ([0-9]+)" search_in="msg" check_it="false"'
    ' assign_to="sfm_m,sfm_port"/>'
    # SIPp refuses a variable used once: the whole matches are scratch, used here.
    '<assignstr assign_to="sfm_c" value="[$sfm_m]"/>'
)
# A compiled call script (sipflow/call_script.py): its SDP offers telephone-event too, and its
# `expect 2xx` is a bare <recv> (the audio starts there, as the built-in call's 200 does).
SCRIPT_NAME = '<scenario name="sipflow call script">'
SDP_SCRIPT = (
    "m=audio [media_port] RTP/AVP 0 96\n      a=rtpmap:0 PCMU/8000\n"
    "      a=rtpmap:96 telephone-event/8000\n      a=fmtp:96 0-15"
)
SCRIPT_ANSWERED = re.compile(r'<recv response="(2[0-9][0-9])" rrs="true"\s*/>')
# A compiled callee script (sipflow/callee_script.py): the same SDP; the audio starts at the ACK
# of its `answer`.
CALLEE_SCRIPT_NAME = '<scenario name="sipflow callee script">'
CALLEE_SCRIPT_ACKED = re.compile(r'<recv request="ACK" crlf="true" timeout="([0-9]+)"\s*/>')


def sipp_args(cfg: RunnerConfig) -> list[str]:
    """SIPp's media socket (the streams' source) on the runner's own address."""
    if cfg.media is None:
        return []
    return ["-mi", cfg.local_ip, "-mp", str(cfg.media.media_port)]


def media_variant(xml: str, media: MediaConfig, audio: Path) -> str:
    """The built-in call/answer scenario with audio: the SDP offers/answers `media.codec` on the
    RTP receiver's port, and each call streams the reference audio (looped until the call ends)
    and logs its Call-ID in the same action."""
    pt = PAYLOAD_TYPE[media.codec]
    # [media_port+N] names the receiver's port and makes it SIPp's source port for play_dtmf.
    port = f"[media_port+{media.rtp_port - media.media_port}]"
    sdp = (
        f"m=audio {port} RTP/AVP {pt} {media_dtmf.DTMF_PT}\n"
        f"      a=rtpmap:{pt} {media.codec}/8000\n      {media_dtmf.SDP_LINES}"
    )
    peer = " [$sfm_ip]:[$sfm_port]" if media.relay else ""
    stream = (
        f'<exec rtp_stream="{audio},-1,{pt}"/>'
        f'<log message="{LOG_TAG} [call_id] #[call_number]{peer}"/>'
    )
    stream += media_moments.ANSWER_LOG  # the zero of the script's media steps' moments
    if media.dtmf is not None:
        stream += media_dtmf.play_action(media.dtmf.digits, media.dtmf.duration_ms)
    if SDP_SCRIPT in xml:
        out = xml.replace(SDP_SCRIPT, sdp)
    elif SDP_PLAIN in xml:
        out = xml.replace(SDP_PLAIN, sdp)
    else:
        raise ValueError("the scenario has no SDP sipflow knows how to give media")
    if media_hold.is_hold_flow(out):
        return media_hold.hold_variant(media_hold.start_points(out, stream))
    if media_transfer.is_transfer_flow(out):
        return media_transfer.transfer_variant(out, stream)
    if media_held.is_held_callee(out):
        out = media_held.held_variant(out, stream)
        if media.relay:  # the relay's address for this leg, from the first INVITE
            invite = CALLEE_INVITE[:-2] + f"><action>{PEER_SDP}</action></recv>"
            out = out.replace(CALLEE_INVITE, invite, 1)
        return out
    if CALLER_ANSWERED in out:
        ereg = PEER_SDP if media.relay else ""
        answered = CALLER_ANSWERED.replace("</action>", f"{ereg}{stream}</action>")
        out = out.replace(CALLER_ANSWERED, answered)
    elif SCRIPT_ANSWERED.search(out):
        out = SCRIPT_ANSWERED.sub(
            lambda m: f'<recv response="{m[1]}" rrs="true"><action>{stream}</action></recv>', out
        )
    elif CALLEE_SCRIPT_NAME in out and CALLEE_SCRIPT_ACKED.search(out):
        out = CALLEE_SCRIPT_ACKED.sub(
            lambda m: (
                f'<recv request="ACK" crlf="true" timeout="{m[1]}"><action>{stream}</action></recv>'
            ),
            out,
            count=1,
        )
    elif CALLEE_ACK in out:
        out = out.replace(CALLEE_ACK, CALLEE_ACK[:-2] + f"><action>{stream}</action></recv>")
        if media.relay:
            if CALLEE_INVITE not in out:
                raise ValueError("the scenario has no INVITE whose SDP sipflow can read")
            invite = CALLEE_INVITE[:-2] + f"><action>{PEER_SDP}</action></recv>"
            out = out.replace(CALLEE_INVITE, invite)
    else:
        raise ValueError("the scenario has no point where sipflow can start the audio")
    return out


def started_streams(log_file: Path) -> list[tuple[str, int, str]]:
    """(Call-ID, SSRC, the peer's SDP address or "") of every stream SIPp started, from its log,
    in start order."""
    if not log_file.exists():
        return []
    out: list[tuple[str, int, str]] = []
    for line in log_file.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != LOG_TAG:
            continue
        rest = parts[2:]
        if rest and rest[0].startswith("#") and rest[0][1:].isdigit():
            index = int(rest.pop(0)[1:]) - 1  # the call's number: its SSRC's place
        else:
            index = len(out)  # a line without the number (an older scenario): start order
        if len(rest) > 1:
            continue
        out.append((parts[1], (SSRC_BASE + index) & 0xFFFFFFFF, rest[0] if rest else ""))
    return out


def in_sample(call_id: str, src: str, ssrc: int, media: MediaConfig) -> bool:
    """Whether a stream is analysed. Directly between runners both ends hash (sender address,
    SSRC); through a relay the receiver sees the relay's address, so both hash the Call-ID."""
    if media.relay:
        return sampled(call_id, 0, media.sample_pct)
    return sampled(src, ssrc, media.sample_pct)


def sent_streams(log_file: Path, src: str, media: MediaConfig) -> list[tuple[str, int]]:
    """(Call-ID, SSRC) of the streams SIPp started, from its log, in the sample."""
    return [
        (call_id, ssrc)
        for call_id, ssrc, _peer in started_streams(log_file)
        if in_sample(call_id, src, ssrc, media)
    ]


def relayed_calls(streams: list[StreamStats], log_file: Path) -> dict[tuple[str, int], str]:
    """Through a relay: the call of each received stream, by its source: the address the peer's
    SDP named for that call (the relay sends a leg's RTP from the port it offered for it). A
    relay may reuse a port for a later call: the calls logged with one address are paired with
    that address's streams in order of arrival."""
    calls_at: dict[str, list[str]] = {}
    for call_id, _ssrc, peer in started_streams(log_file):
        if peer:
            calls_at.setdefault(peer, []).append(call_id)
    out: dict[tuple[str, int], str] = {}
    for s in sorted(streams, key=lambda s: s.first_time):
        waiting = calls_at.get(s.src)
        if waiting:
            out[(s.src, s.ssrc)] = waiting.pop(0)
    return out


def stream_result(
    s: StreamStats,
    codec: str,
    call_id: str | None = None,
    reference: list[int] | None = None,
    mos: str = "pesq",
) -> MediaStream:
    """reference: the linear samples the peer streams (None: the built-in audio); the streams
    whose payloads were kept get PESQ, and with mos "visqol" also ViSQOL."""
    r = r_factor(codec, s.loss_pct, s.jitter_ms)
    pesq = visqol = None
    if s.payloads is not None:
        ref = reference if reference is not None else speech_like()
        pesq = media_pesq.score(s.payloads, s.max_ext, ref, codec)
        if mos == "visqol":
            visqol = media_visqol.score(s.payloads, s.max_ext, ref, codec)
    return MediaStream(
        src=s.src,
        ssrc=s.ssrc,
        payload_type=s.payload_type,
        received=s.received,
        expected=s.expected,
        lost=s.lost,
        duplicates=s.duplicates,
        reordered=s.reordered,
        jitter_ms=round(s.jitter_ms, 3),
        r_factor=round(r, 2),
        mos=round(mos_cqe(r), 3),
        pesq=pesq,
        visqol=visqol,
        first_time=s.first_time,
        last_time=s.last_time,
        call_id=call_id,
        max_gap_ms=round(1000 * s.max_gap_s, 1),
        after_gap_ms=round(1000 * (s.last_time - s.gap_end), 1) if s.max_gap_s else 0.0,
        spans=[(round(a, 3), round(b, 3)) for a, b in s.spans],
    )


class MediaSession:
    """One SIPp run's media (see the module's docstring)."""

    def __init__(self, cfg: RunnerConfig, media: MediaConfig, scenario: Path) -> None:
        self.cfg, self.media = cfg, media
        self.log_file = scenario.with_name("media.log")
        self.log_file.unlink(missing_ok=True)
        self.reference: list[int] | None = None  # None: the built-in audio
        if media.audio_format is not None and media.audio_data is not None:
            # Uploaded: both ends stream the same clip (the spec checks it), in the codec.
            self.reference = linear_samples(media.audio_format, decode_data(media.audio_data))
            audio = cfg.work_dir / f"uploaded.{'ulaw' if media.codec == 'PCMU' else 'alaw'}"
            audio.write_bytes(g711(self.reference, media.codec))
        else:
            audio = reference_file(cfg.work_dir, media.codec)
        scenario.write_text(media_variant(scenario.read_text(), media, audio))
        self.receiver: RtpReceiver | None = None
        if media.analyse:
            keep = media.pesq_streams if media.mos == "pesq" else 0
            if keep and not media_pesq.available():
                log.warning("mos: pesq asked, but the pesq package is not installed: no PESQ")
                keep = 0
            if media.mos == "visqol":
                # The first visqol_streams streams get ViSQOL (and PESQ where installed).
                keep = media.visqol_streams
                if keep and not media_visqol.available():
                    log.warning("mos: visqol asked, but visqol-python[lattice] is not installed")
                    keep = 0
            # Through a relay the sample is chosen by Call-ID once the log names the calls.
            pct = 100.0 if media.relay else media.sample_pct
            self.receiver = RtpReceiver(cfg.local_ip, media.rtp_port, pct, keep)
            self.receiver.start()

    @property
    def src(self) -> str:
        return f"{self.cfg.local_ip}:{self.media.media_port}"

    @property
    def dtmf_src(self) -> str:
        """play_dtmf's packets leave from the port the SDP names: the receiver's."""
        return f"{self.cfg.local_ip}:{self.media.rtp_port}"

    def finish(self) -> list[MediaReport]:
        """Stops the receiver; the report, in parts (none when nothing is analysed)."""
        if self.receiver is None:
            return []
        self.receiver.stop()
        sent = [
            MediaSent(call_id=c, src=self.src, ssrc=ssrc)
            for c, ssrc in sent_streams(self.log_file, self.src, self.media)
        ]
        # A transferee's stream sent on to the transfer target: the same stream, another leg.
        ssrc_of = {m.call_id: m.ssrc for m in sent}
        sent += [
            MediaSent(call_id=c, src=self.src, ssrc=ssrc_of[c], leg=media_transfer.PARTY_LEG)
            for c in media_transfer.legs(self.log_file)
            if c in ssrc_of
        ]
        streams = list(self.receiver.streams.values())
        not_sampled = len(self.receiver.not_sampled)
        if self.media.relay:
            calls = relayed_calls(streams, self.log_file)
            received = []
            for s in streams:
                call_id = calls.get((s.src, s.ssrc))
                if call_id is not None and not in_sample(call_id, s.src, s.ssrc, self.media):
                    not_sampled += 1
                    continue
                received.append(
                    stream_result(s, self.media.codec, call_id, self.reference, self.media.mos)
                )
        else:
            received = [
                stream_result(s, self.media.codec, None, self.reference, self.media.mos)
                for s in streams
            ]
        dtmf_sent = [
            DtmfSent(call_id=c, src=self.dtmf_src, ssrc=ssrc, digits=d)
            for c, ssrc, d in media_dtmf.sent_events(self.log_file)
        ]
        dtmf_received = [
            DtmfReceived(
                src=e.src,
                ssrc=e.ssrc,
                digits=e.digits,
                packets=e.packets,
                ended=e.ended,
                times=[round(t, 3) for t in e.times],
            )
            for e in self.receiver.dtmf.values()
        ]
        moments = media_moments.expect_moments(self.log_file)
        answered = media_moments.answers(self.log_file)
        expected = [
            Expectation(
                call_id=c, step=step, what=what, at=moments.get((c, step)), answered=answered.get(c)
            )
            for c, step, what in media_dtmf.expectations(self.log_file)
        ]
        parts = []
        most = max(len(sent), len(received), len(dtmf_sent), len(dtmf_received), len(expected))
        n = max(1, -(-most // MEDIA_PART_ITEMS))
        for i in range(n):
            lo, hi = i * MEDIA_PART_ITEMS, (i + 1) * MEDIA_PART_ITEMS
            parts.append(
                MediaReport(
                    session_id=self.cfg.session_id,
                    runner_id=self.cfg.runner_id,
                    role=self.cfg.role,
                    part=i + 1,
                    codec=self.media.codec,
                    sample_pct=self.media.sample_pct,
                    sent=sent[lo:hi],
                    received=received[lo:hi],
                    not_sampled=not_sampled if i == 0 else 0,
                    relay=self.media.relay,
                    party=self.cfg.party is not None,
                    dtmf_sent=dtmf_sent[lo:hi],
                    dtmf_received=dtmf_received[lo:hi],
                    expected=expected[lo:hi],
                )
            )
        log.info("media: %d streams sent, %d received and analysed", len(sent), len(received))
        if dtmf_sent or dtmf_received:
            log.info(
                "dtmf: %d plays sent, %d event streams received", len(dtmf_sent), len(dtmf_received)
            )
        return parts


def start(cfg: RunnerConfig, name: str, scenario: Path) -> MediaSession | None:
    """The media of this run, or None (no media asked, or not a built-in call/answer)."""
    if cfg.media is None:
        return None
    xml = cfg.scenario_xml or ""
    if name not in ("call", "answer") and not (
        name == "custom"
        and (
            SCRIPT_NAME in xml
            or CALLEE_SCRIPT_NAME in xml
            or media_hold.is_hold_flow(xml)
            or media_held.is_held_callee(xml)
            or media_transfer.is_transfer_flow(xml)
        )
    ):
        return None
    return MediaSession(cfg, cfg.media, scenario)
