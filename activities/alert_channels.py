"""How an alert reaches a channel: a webhook POST (sipflow's JSON or a Slack-compatible
`{"text": ...}`) or an e-mail over SMTP. Raises on any failure; the caller retries. Every try
is counted in sipflow_alerts_sent_total{channel, outcome}."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import httpx
from pydantic import BaseModel

from sipflow.metrics import ALERTS


class Alert(BaseModel):
    kind: str  # failed | regressed | recovered | late | missed | skipped
    schedule_id: str
    schedule_name: str
    tenant: str
    session_id: str
    state: str
    previous: str | None
    regressed: list[dict[str, Any]] = []
    late_s: float | None = None  # for "late": how long after its due time the run started
    missed: int | None = None  # for "missed": how many due runs never ran
    reason: str | None = None  # for "skipped": why the tenant's policy refused the run
    report_url: str
    temporal_url: str

    def text(self) -> str:
        lines = [
            f"sipflow schedule {self.schedule_name!r}: {self.kind.upper()} "
            f"(run {self.session_id}: {self.state}, before: {self.previous or 'none'})"
        ]
        if self.late_s is not None:
            lines.append(f"  started {self.late_s:.0f} s after its due time (workers down?)")
        if self.reason:
            lines.append(f"  not started: {self.reason}")
        if self.missed:
            lines.append(f"  {self.missed} run(s) missed: due while sipflow was down")
        for r in self.regressed:
            lines.append(
                f"  {r['metric']} {r['rule']}: measured {r['measured']}, baseline "
                f"{r['baseline']}, delta {r['delta']}"
            )
        lines += [f"report: {self.report_url}", f"Temporal: {self.temporal_url}"]
        return "\n".join(lines)


@contextmanager
def _counted(kind: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ALERTS.labels(kind, "failed").inc()
        raise
    ALERTS.labels(kind, "sent").inc()


def send_webhook(channel: dict[str, Any], alert: Alert, timeout_s: float) -> None:
    with _counted("webhook"):
        _post(channel, alert, timeout_s)


def _post(channel: dict[str, Any], alert: Alert, timeout_s: float) -> None:
    body: dict[str, Any] = (
        {"text": alert.text()} if channel.get("format") == "slack" else alert.model_dump()
    )
    headers = {"Authorization": f"Bearer {channel['token']}"} if channel.get("token") else {}
    r = httpx.post(channel["url"], json=body, headers=headers, timeout=timeout_s)
    r.raise_for_status()


def send_email(channel: dict[str, Any], alert: Alert, timeout_s: float) -> None:
    with _counted("email"):
        _mail(channel, alert, timeout_s)


def _mail(channel: dict[str, Any], alert: Alert, timeout_s: float) -> None:
    msg = EmailMessage()
    msg["From"] = channel["sender"]
    msg["To"] = ", ".join(channel["to"])
    msg["Subject"] = f"[sipflow] {alert.schedule_name}: {alert.kind}"
    msg.set_content(alert.text())
    with smtplib.SMTP(channel["host"], int(channel.get("port") or 25), timeout=timeout_s) as smtp:
        if channel.get("starttls"):
            smtp.starttls()
        if channel.get("username"):
            smtp.login(channel["username"], channel.get("password") or "")
        smtp.send_message(msg)
