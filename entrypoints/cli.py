"""The `sipflow` command: run the embedded stack, submit and follow sessions, inspect them.

Exit codes of `run`: 0 verdict pass, 1 verdict fail, 2 invalid input (nothing submitted),
3 error (API or stack unreachable, session error).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from entrypoints import junit_file, shutdown
from entrypoints.admin_key import cli_key
from entrypoints.cli_audit import audit_app
from entrypoints.cli_capacity import capacity_app
from entrypoints.cli_flows import flows_app
from entrypoints.cli_pools import pools_app
from entrypoints.cli_retention import retention_app
from entrypoints.cli_schedules import schedules_app
from entrypoints.cli_script import script_app
from entrypoints.cli_status import status
from entrypoints.cli_tenants import tenants_app
from entrypoints.stack import Stack, StackConfig, free_port, metrics_token_file
from entrypoints.supervisor import Supervisor
from sipflow import delay_limit
from sipflow.accounts import Role
from sipflow.models import FINAL_STATUSES, utcnow
from sipflow.settings import Settings, get_settings
from sipflow.spec import SessionSpec
from sipflow.spec_file import SpecFileError, format_error_items, load_spec

EXIT_PASS, EXIT_FAIL, EXIT_INVALID, EXIT_ERROR = 0, 1, 2, 3
POLL_S = 0.5
API_DOWN_GRACE_S = 30.0

app = typer.Typer(
    help="sipflow: SIP test sessions as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
)
sessions_app = typer.Typer(help="List and inspect sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
app.add_typer(tenants_app, name="tenants")
app.command()(status)
app.add_typer(schedules_app, name="schedules")
keys_app = typer.Typer(
    help="API keys, straight in the database (no key needed to make the first one).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(capacity_app, name="capacity")
app.add_typer(retention_app, name="retention")
app.add_typer(pools_app, name="pools")
app.add_typer(script_app, name="script")
app.add_typer(flows_app, name="flows")

out = Console()
err = Console(stderr=True)

ApiOption = Annotated[
    str | None,
    typer.Option("--api", help="API base URL [default: $SIPFLOW_API_URL or http://127.0.0.1:8000]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


# -- helpers -------------------------------------------------------------------------------------
def _api_url(api: str | None) -> str:
    return (api or get_settings().api_url).rstrip("/")


def _auth_headers(key: str | None = None) -> dict[str, str]:
    """The API key the CLI sends: given, else SIPFLOW_API_KEY, else data_dir/admin.key."""
    key = key or cli_key(Settings())
    return {"Authorization": f"Bearer {key}"} if key else {}


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _spec_errors(errors: list[str], header: str = "invalid spec:") -> None:
    typer.echo(header, err=True)
    for line in errors:
        typer.echo(f"  {line}", err=True)


def _load_or_exit(path: Path) -> SessionSpec:
    try:
        return load_spec(path)
    except SpecFileError as exc:
        _spec_errors(exc.errors, f"{path}: invalid spec:")
        raise typer.Exit(EXIT_INVALID) from None


def _api_detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail", resp.text)
    except (ValueError, AttributeError):
        detail = resp.text
    return detail if isinstance(detail, str) else json.dumps(detail)


def _raise_sigterm_as_interrupt() -> None:
    """SIGTERM stops like Ctrl-C does, so every `finally` (stopping the stack) runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    # Started from a script's background job (`cmd &` without job control) a process inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt for it: Ctrl-C (SIGINT) must
    # stop the stack wherever it was started from.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


# -- sipflow up ----------------------------------------------------------------------------------
@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Files of the stack [default: $SIPFLOW_DATA_DIR or var]")
    ] = None,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend (gRPC)")] = 7233,
    temporal_ui_port: Annotated[int, typer.Option(help="Temporal Web UI")] = 8233,
    mqtt_port: Annotated[int, typer.Option(help="MQTT broker")] = 1883,
    api_port: Annotated[int, typer.Option(help="sipflow API")] = 8000,
    worker_metrics_port: Annotated[
        int, typer.Option(help="The worker's Prometheus /metrics [default: a free port]")
    ] = 0,
    database_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL [default: SQLite in the data dir]")
    ] = None,
    bind: Annotated[
        str,
        typer.Option(
            help="Address of the MQTT broker and API; 0.0.0.0 lets runner containers (docker "
            "backend) reach them through their network's gateway"
        ),
    ] = "127.0.0.1",
    keep_sessions: Annotated[
        bool,
        typer.Option(
            help="On Ctrl-C/SIGTERM leave running sessions to resume at the next `sipflow up` "
            "on this data dir (default: cancel them, with their clean-up)"
        ),
    ] = False,
) -> None:
    """Start the embedded stack (Temporal, MQTT broker, worker, API) until Ctrl-C or SIGTERM;
    a process of it that exits is started again (with backoff, see `sipflow status`). On stop,
    running sessions are cancelled with their clean-up (or kept with --keep-sessions)."""
    config = StackConfig(
        data_dir=data_dir or get_settings().data_dir,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        mqtt_port=mqtt_port,
        api_port=api_port,
        database_url=database_url,
        bind_address=bind,
        worker_metrics_port=worker_metrics_port or free_port(),
    )
    ports = (temporal_port, temporal_ui_port, mqtt_port, api_port, worker_metrics_port)
    busy = [p for p in ports if p and _port_in_use(p)]
    if busy:
        raise _fail(f"port(s) in use: {', '.join(map(str, busy))}; choose others (--*-port)")
    _raise_sigterm_as_interrupt()
    stack = Stack(config)
    code = EXIT_PASS
    supervisor: Supervisor | None = None
    kept = False
    try:
        with err.status("starting Temporal, mosquitto, worker and API ..."):
            stack.start()
        table = Table(title="sipflow is up", show_header=False)
        table.add_row("Dashboard", f"{stack.api_url}/dashboard/")
        table.add_row("API", stack.api_url)
        table.add_row("API docs", f"{stack.api_url}/docs")
        table.add_row("Temporal Web UI", stack.temporal_ui_url)
        table.add_row("Temporal", stack.temporal_address)
        table.add_row("MQTT", f"mqtt://127.0.0.1:{config.mqtt_port}")
        for name, url in stack.metrics_urls.items():
            table.add_row(f"Metrics ({name})", url)
        table.add_row("Data and logs", str(stack.data_dir))
        out.print(table)
        out.print(
            f"Sign in to the dashboard with the admin key in {stack.admin_key_file} "
            f"(tenant {escape(stack.settings.default_tenant)}); the CLI uses it too. "
            "More keys: sipflow keys create --tenant T --role admin|operator|viewer"
        )
        out.print(
            f"Prometheus: the API's /metrics takes the token in {metrics_token_file(stack)}; "
            "deploy/prometheus/prometheus.yml scrapes both"
        )
        out.print("Ctrl-C stops everything; `sipflow status` shows its processes.")
        # Only Ctrl-C/SIGTERM stops the stack: a process that exits is started again.
        supervisor = Supervisor(stack, stack.settings, lambda m: err.print(f"[yellow]{m}[/]"))
        supervisor.started()
        while True:
            supervisor.check()
            time.sleep(1)
    except KeyboardInterrupt:
        if supervisor is not None:
            kept = _stop_sessions(stack, supervisor, keep_sessions)
    except (OSError, RuntimeError, TimeoutError) as exc:
        err.print(f"[red]the stack did not start:[/] {escape(str(exc))}")
        err.print(f"logs in {stack.data_dir / 'logs'}")
        code = EXIT_ERROR
    finally:
        with err.status("stopping ..."):
            stack.stop(keep_runners=kept)
    raise typer.Exit(code)


def _stop_sessions(stack: Stack, supervisor: Supervisor, keep: bool) -> bool:
    """Says how many sessions run; cancels them and waits (bounded) for their clean-up, or
    leaves them to resume at the next start. A second Ctrl-C stops waiting. True: sessions
    are left running."""
    settings = stack.settings
    try:
        ids = shutdown.open_sessions(settings)
        if not ids:
            return False
        if keep:
            err.print(
                f"{len(ids)} session(s) running: kept, they resume at the next `sipflow up` on "
                f"{stack.data_dir} (their runners stop by themselves after "
                f"{settings.runner_silence_s:g}s without the worker)"
            )
            return True
        wait = settings.stop_cancel_timeout_s
        err.print(
            f"{len(ids)} session(s) running: cancelling them and waiting up to {wait:g}s for "
            "their clean-up (Ctrl-C again: stop now and leave them to resume at the next start)"
        )
        left = shutdown.cancel_sessions(settings, ids, wait, supervisor.check)
        if left:
            err.print(f"[yellow]{len(left)} session(s) still cleaning up: {', '.join(left)}[/]")
            return True
        err.print(f"{len(ids)} session(s) cancelled and cleaned up")
        return False
    except KeyboardInterrupt:
        err.print("[yellow]stopping now; unfinished sessions resume at the next start[/]")
        return True


class _Embedded:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.keep_files = False


@contextmanager
def _embedded_stack(data_dir: Path | None) -> Iterator[_Embedded]:
    """A private stack on free ports; its temp dir is removed unless something went wrong."""
    own_dir = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="sipflow-")) if data_dir is None else data_dir
    embedded = _Embedded(Stack(StackConfig.on_free_ports(root)))
    embedded.keep_files = True
    try:
        with err.status("starting the embedded stack ..."):
            embedded.stack.start()
        embedded.keep_files = False
        yield embedded
    finally:
        embedded.stack.stop()
        if own_dir and not embedded.keep_files:
            shutil.rmtree(root, ignore_errors=True)
        elif own_dir:
            err.print(f"embedded stack files and logs kept in {root}")


# -- sipflow run ---------------------------------------------------------------------------------
@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Session spec, YAML or JSON")],
    api: ApiOption = None,
    embedded: Annotated[
        bool, typer.Option(help="Start a private stack for this run, stop it afterwards.")
    ] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="With --embedded: keep the stack's files here.")
    ] = None,
    as_json: JsonOption = False,
    junit: Annotated[
        Path | None,
        typer.Option(
            help="Write the session's JUnit report here (also when no session ran: an invalid "
            "spec, an unreachable API), for a CI job to upload."
        ),
    ] = None,
) -> None:
    """Submit a session, follow its progress, print the verdict (exit 0 pass, 1 fail, 2 invalid
    spec, 3 error)."""
    try:
        spec = load_spec(spec_path)
    except SpecFileError as exc:
        _spec_errors(exc.errors, f"{spec_path}: invalid spec:")
        if junit is not None:
            why = "\n".join([f"{spec_path}: invalid spec:", *exc.errors])
            junit_file.write(junit, junit_file.not_run(spec_path.stem, "invalid-spec", why))
        raise typer.Exit(EXIT_INVALID) from None
    if not embedded:
        raise typer.Exit(_run_session(_api_url(api), spec, as_json, junit=junit))
    _raise_sigterm_as_interrupt()
    try:
        with _embedded_stack(data_dir) as private:
            private.keep_files = True  # until the run ends with a verdict: logs help
            code = _run_session(
                private.stack.api_url, spec, as_json, private.stack.api_key, junit=junit
            )
            private.keep_files = code != EXIT_PASS
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise _fail(f"the embedded stack failed: {exc}") from None
    except KeyboardInterrupt:
        raise _fail("interrupted") from None
    raise typer.Exit(code)


def _run_session(
    api: str,
    spec: SessionSpec,
    as_json: bool,
    key: str | None = None,
    junit: Path | None = None,
) -> int:
    code, why = _run_session_once(api, spec, as_json, key, junit)
    if junit is not None and why is not None:  # no session report: say why instead
        kind = "invalid-spec" if code == EXIT_INVALID else "error"
        junit_file.write(junit, junit_file.not_run(spec.name, kind, why))
    return code


def _run_session_once(
    api: str, spec: SessionSpec, as_json: bool, key: str | None, junit: Path | None
) -> tuple[int, str | None]:
    """(exit code, why there is no session report) ; the report is written to `junit`."""
    body = spec.model_dump(mode="json")
    if "tenant" not in spec.model_fields_set:
        del body["tenant"]  # the key's tenant
    with httpx.Client(base_url=api, timeout=15, headers=_auth_headers(key)) as http:
        try:
            resp = http.post("/v1/sessions", json=body)
        except httpx.HTTPError as exc:
            typer.echo(f"cannot reach the sipflow API at {api}: {exc}", err=True)
            return EXIT_ERROR, f"cannot reach the sipflow API at {api}: {exc}"
        if resp.status_code in (401, 403):
            typer.echo(f"the API answered {resp.status_code}: {_api_detail(resp)}", err=True)
            return EXIT_ERROR, f"the API answered {resp.status_code}: {_api_detail(resp)}"
        if resp.status_code == 422:
            detail = resp.json().get("detail")
            items = detail if isinstance(detail, list) else [{"msg": str(detail)}]
            _spec_errors(format_error_items(items), "the API rejected the spec:")
            return EXIT_INVALID, "the API rejected the spec:\n" + "\n".join(
                format_error_items(items)
            )
        if resp.status_code != 201:
            typer.echo(f"the API answered {resp.status_code}: {_api_detail(resp)}", err=True)
            return EXIT_ERROR, f"the API answered {resp.status_code}: {_api_detail(resp)}"
        created = resp.json()
        sid = created["id"]
        if not as_json:
            err.print(f"session [bold]{sid}[/] started: {created['links']['temporal_ui']}")
            err.print(f"live report: {api.rstrip('/')}/dashboard/sessions/{sid}")
        detail = _follow(http, sid, spec, quiet=as_json)
        why: str | None = None
        if junit is not None and detail is not None:
            try:
                report = http.get(f"/v1/sessions/{sid}/junit.xml")
                report.raise_for_status()
                junit_file.write(junit, report.content)
            except httpx.HTTPError as exc:
                why = f"session {sid}: no JUnit report from the API: {exc}"
    if detail is None:
        return EXIT_ERROR, f"session {sid}: lost track of it (see sipflow sessions show {sid})"
    if as_json:
        out.print_json(data=detail)
    else:
        _print_detail(detail)
    return _exit_code(detail), why


def _exit_code(detail: dict[str, Any]) -> int:
    verdict = detail.get("verdict")
    if verdict == "pass":
        return EXIT_PASS
    if verdict == "fail":
        return EXIT_FAIL
    return EXIT_ERROR


def _expected_calls(spec: SessionSpec) -> int | None:
    c = spec.roles.callers
    if c.max_calls:
        return c.max_calls
    return round(c.rate * c.duration_s) if c.duration_s else None


def _follow(http: httpx.Client, sid: str, spec: SessionSpec, quiet: bool) -> dict[str, Any] | None:
    """Poll the session until it is final; the live bar shows finished calls of expected."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    task = bar.add_task(f"session {sid}", total=_expected_calls(spec), info="pending")
    failing_since: float | None = None
    cancel_sent = False
    with bar:
        while True:
            try:
                try:
                    resp = http.get(f"/v1/sessions/{sid}")
                    resp.raise_for_status()
                    detail: dict[str, Any] = resp.json()
                    failing_since = None
                except httpx.HTTPError as exc:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > API_DOWN_GRACE_S:
                        bar.stop()
                        typer.echo(f"lost the API while following {sid}: {exc}", err=True)
                        return None
                    time.sleep(POLL_S)
                    continue
                _update_bar(bar, task, detail)
                if detail["status"] in FINAL_STATUSES:
                    return detail
                time.sleep(POLL_S)
            except KeyboardInterrupt:
                if cancel_sent:
                    bar.stop()
                    typer.echo(f"stopped following; session {sid} may still run", err=True)
                    return None
                cancel_sent = True
                bar.console.print("cancelling the session ... (Ctrl-C again to stop waiting)")
                try:
                    http.post(f"/v1/sessions/{sid}/cancel")
                except httpx.HTTPError as exc:
                    bar.console.print(f"cancel failed: {escape(str(exc))}")


def _update_bar(bar: Progress, task: Any, detail: dict[str, Any]) -> None:
    progress = detail.get("progress") or {}
    totals = progress.get("totals") or {}
    caller = (detail.get("roles") or {}).get("caller") or {}
    finished = int(caller.get("successful_calls", 0)) + int(caller.get("failed_calls", 0))
    failed = int(caller.get("failed_calls", 0))
    created = int(caller.get("calls_created", 0))
    rate = totals.get("call_rate") if totals else detail.get("measured", {}).get("achieved_rate")
    info = f"{detail['status']} · created {created} · failed {failed} · {_fmt(rate)} calls/s"
    expected = progress.get("expected_calls")
    if expected:
        bar.update(task, total=expected)
    bar.update(task, completed=finished, info=info)


# -- printing a session --------------------------------------------------------------------------
def runner_label(r: dict[str, Any]) -> str:
    """`callee-1 (party carol)` for a runner of a named party, else its id."""
    party = r.get("party")
    return f"{r['runner_id']} (party {party})" if party else str(r["runner_id"])


def _print_detail(d: dict[str, Any], with_runners: bool = False) -> None:
    verdict = d.get("verdict")
    color = {"pass": "green", "fail": "red"}.get(verdict or "", "yellow")
    out.print(
        f"[bold]Session {escape(d['id'])}[/] {escape(d['name'])!s}: {escape(d['status'])}, "
        f"verdict [bold {color}]{escape(str(verdict or '-')).upper()}[/]"
    )
    if d.get("target"):
        out.print(f"target {escape(d['target'])}")

    th = Table(title="Thresholds", title_justify="left")
    th.add_column("threshold")
    th.add_column("measured", justify="right")
    th.add_column("result")
    for t in d.get("thresholds") or []:
        result = "[green]pass[/]" if t["passed"] else "[red]FAIL[/]"
        th.add_row(escape(t["threshold"]), _fmt(t.get("measured")), result)
    if not d.get("thresholds_final"):
        th.caption = "not final: evaluated on the metrics stored so far"
    out.print(th)

    roles = Table(title="Roles", title_justify="left")
    for col in ("role", "runners", "created", "successful", "failed", "retrans.", "runner states"):
        roles.add_column(col, justify="left" if col in ("role", "runner states") else "right")
    for name, r in sorted((d.get("roles") or {}).items()):
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.get("states", {}).items()))
        roles.add_row(
            escape(name),
            str(r.get("runners", 0)),
            str(r.get("calls_created", 0)),
            str(r.get("successful_calls", 0)),
            str(r.get("failed_calls", 0)),
            str(r.get("retransmissions", 0)),
            escape(states),
        )
    out.print(roles)
    _print_steps(d)

    if with_runners and d.get("runners"):
        rt = Table(title="Runners", title_justify="left")
        rt.add_column("runner", no_wrap=True)
        for col in ("role", "address", "state", "exit", "detail"):
            rt.add_column(col, overflow="fold")
        for r in d["runners"]:
            rt.add_row(
                escape(runner_label(r)),
                *(escape(_fmt(r.get(k))) for k in ("role", "address", "state")),
                _fmt(r.get("exit_code")),
                escape(r.get("detail") or ""),
            )
        out.print(rt)

    reasons = d.get("reasons") or []
    causes: dict[str, int] = {}
    for r in (d.get("roles") or {}).values():
        for cause, n in (r.get("failed_by_cause") or {}).items():
            causes[cause] = causes.get(cause, 0) + n
    if reasons or causes:
        out.print("[bold]Failure reasons[/]")
        for reason in reasons:
            out.print(f"  - {escape(reason)}")
        for cause, n in sorted(causes.items(), key=lambda kv: -kv[1]):
            out.print(f"  - {escape(cause)}: {n} calls")
    out.print(f"Temporal: {d['links']['temporal_ui']}")


def _print_steps(d: dict[str, Any]) -> None:
    """The per-step results of a flow (or any scenario with step marks)."""
    if not d.get("steps"):
        return
    title = f"Steps of flow {d['flow']}" if d.get("flow") else "Steps"
    st = Table(title=escape(title), title_justify="left")
    for col in ("role", "step", "passed", "failed", "failed by", "mean ms", "max ms"):
        st.add_column(col, justify="left" if col in ("role", "step", "failed by") else "right")
    for s in d["steps"]:
        by = ", ".join(f"{k} {v}" for k, v in sorted((s.get("failed_by") or {}).items()))
        st.add_row(
            escape(s["role"]),
            escape(s["step"]),
            str(s["passed"]),
            str(s["failed"]),
            escape(by),
            _fmt(s.get("time_mean_ms")),
            _fmt(s.get("time_max_ms")),
        )
    out.print(st)


# -- sipflow validate / sessions -----------------------------------------------------------------
@app.command()
def validate(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Session spec, YAML or JSON")],
) -> None:
    """Check a spec file without submitting it (exit 0 valid, 2 invalid)."""
    spec = _load_or_exit(spec_path)
    settings = Settings()  # this machine's: the limits a local stack here would apply
    if (spec.backend or settings.default_backend) == "local":
        refused = delay_limit.refusal(spec, settings.delayer_max_calls_per_s)
        if refused:
            _spec_errors([f"{'.'.join(refused[0])}: {refused[1]}"], f"{spec_path}: invalid spec:")
            raise typer.Exit(EXIT_INVALID)
    callers = spec.roles.callers
    out.print(
        f"[green]valid[/]: {escape(spec.name)} (tenant {escape(spec.tenant)}, "
        f"{callers.agents} caller agent(s) at {_fmt(callers.rate)} calls/s, "
        f"{len(spec.thresholds)} threshold(s))"
    )


def _get(api: str | None, path: str, **params: Any) -> Any:
    url = _api_url(api)
    try:
        resp = httpx.get(
            f"{url}{path}",
            params={k: v for k, v in params.items() if v is not None},
            headers=_auth_headers(),
        )
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the sipflow API at {url}: {exc}") from None
    if resp.status_code == 404:
        raise _fail(_api_detail(resp))
    if resp.status_code >= 400:
        raise _fail(f"the API answered {resp.status_code}: {_api_detail(resp)}")
    return resp.json()


@sessions_app.command("list")
def sessions_list(
    status: Annotated[
        str | None, typer.Option(help="pending, queued, running, completed, ...")
    ] = None,
    verdict: Annotated[str | None, typer.Option(help="pass, fail or error")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sessions, newest first."""
    page = _get(
        api,
        "/v1/sessions",
        status=status,
        verdict=verdict,
        tenant=tenant,
        limit=limit,
        offset=offset,
    )
    if as_json:
        out.print_json(data=page)
        return
    table = Table(title=f"{len(page['items'])} of {page['total']} sessions", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=12)
    for col in ("name", "tenant", "status", "verdict", "target", "created"):
        table.add_column(col, overflow="fold")
    for s in page["items"]:
        table.add_row(
            *(escape(_fmt(s.get(k))) for k in ("id", "name", "tenant", "status", "verdict")),
            escape(s.get("target") or "direct"),
            s["created_at"][:19].replace("T", " "),
        )
    out.print(table)


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """One session: status, verdict, thresholds, roles, runners, failure reasons."""
    detail = _get(api, f"/v1/sessions/{session_id}")
    if as_json:
        out.print_json(data=detail)
    else:
        _print_detail(detail, with_runners=True)


@sessions_app.command("calls")
def sessions_calls(
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per-call audio of a session with `media:`: each direction's packets, loss, jitter, MOS."""
    page = _get(api, f"/v1/sessions/{session_id}/calls", limit=limit, offset=offset)
    if as_json:
        out.print_json(data=page)
        return
    table = Table(title=f"{len(page['items'])} of {page['total']} calls", title_justify="left")
    cols: tuple[str, ...] = ("call id", "audio", "direction", "received", "lost %", "jitter ms")
    cols = (*cols, "MOS", "PESQ / ViSQOL", "DTMF")
    for col in (*cols, "script checks"):
        table.add_column(col, overflow="fold")
    for call in page["items"]:
        for i, d in enumerate(call["directions"]):
            table.add_row(
                escape(call["call_id"]) if i == 0 else "",
                call["audio"] if i == 0 else "",
                escape(_fmt(d["direction"])).replace("_to_", "→"),
                _fmt(d["received"]),
                _fmt(d["loss_pct"]),
                _fmt(d["jitter_ms"]),
                _fmt(d["mos"]),
                _perceptual(d),
                escape(_dtmf_cell(call.get("dtmf", []), d["direction"])),
                escape(_checks_cell(call.get("expectations", []))) if i == 0 else "",
            )
    out.print(table)


def _perceptual(d: dict[str, Any]) -> str:
    """A direction's perceptual scores (media mos: pesq / visqol): `PESQ / ViSQOL`."""
    if d.get("pesq") is None and d.get("visqol") is None:
        return ""
    return f"{_fmt(d.get('pesq'))} / {_fmt(d.get('visqol'))}"


def _dtmf_cell(plays: list[dict[str, Any]], direction: str | None) -> str:
    """A direction's DTMF: the digits when they arrived as sent, else `sent → received`."""
    shown = []
    for p in plays:
        if p["direction"] != direction or p["sent"] is None:
            continue
        shown.append(p["sent"] if p["match"] else f"{p['sent']} → {p['received'] or 'none'}")
    return " ".join(shown)


def _checks_cell(expectations: list[dict[str, Any]]) -> str:
    """A call script's media steps in this call: the failed ones' reasons, or how many passed."""
    bad = [f"{e['step']}: {e['reason']}" for e in expectations if not e["passed"]]
    return "; ".join(bad) if bad else (f"{len(expectations)} passed" if expectations else "")


@sessions_app.command("ladder")
def sessions_ladder(
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    call_id: Annotated[str, typer.Argument(metavar="CALL_ID")],
    pcap: Annotated[
        Path | None, typer.Option("--pcap", help="Also save the call's packets to this file")
    ] = None,
    api: ApiOption = None,
    as_json: JsonOption = False,
) -> None:
    """A kept call's SIP messages as captured (failed calls, and a sample of answered ones:
    `GET /v1/sessions/ID/evidence` lists them); --pcap FILE saves its pcap too."""
    quoted = urllib.parse.quote(call_id, safe="@")
    ladder = _get(api, f"/v1/sessions/{session_id}/calls/{quoted}/ladder")
    if pcap is not None:
        url = f"{_api_url(api)}/v1/sessions/{session_id}/calls/{quoted}/pcap"
        resp = httpx.get(url, headers=_auth_headers())
        if resp.status_code >= 400:
            raise _fail(f"the API answered {resp.status_code}: {_api_detail(resp)}")
        pcap.write_bytes(resp.content)
    if as_json:
        out.print_json(data=ladder)
    else:
        outcome = ladder["outcome"] + (f" ({ladder['reason']})" if ladder.get("reason") else "")
        out.print(f"call {escape(ladder['call_id'])}: {escape(outcome)}")
        start = ladder["messages"][0]["time"] if ladder["messages"] else 0.0
        table = Table(title_justify="left")
        for col in ("+ms", "from", "to", "message"):
            table.add_column(col, overflow="fold")
        for m in ladder["messages"]:
            table.add_row(
                f"{(m['time'] - start) * 1000:.1f}",
                escape(m["src"]),
                escape(m["dst"]),
                escape(m["first_line"]),
            )
        out.print(table)
    if pcap is not None:
        typer.echo(f"pcap saved to {pcap}", err=True)


# -- sipflow keys ---------------------------------------------------------------------------------
def _keys_db() -> str:
    from sipflow.db import migrate

    url = Settings().resolved_database_url  # not cached: the environment of this call
    migrate(url)  # a fresh data dir has no tables yet
    return url


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts in")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Unusable after this many days [default: never]")
    ] = None,
) -> None:
    """Create a key; its secret is printed this once (stdout), only its digest is kept."""
    from sipflow import account_store
    from sipflow.db import session_scope
    from sipflow.spec import SessionSpec

    pattern = SessionSpec.model_fields["tenant"].metadata[0].pattern
    if not re.fullmatch(pattern, tenant):
        raise _fail(f"invalid tenant {tenant!r}: lower-case letters, digits, - and _", 2)
    expires = timedelta(days=expires_days) if expires_days else None
    with session_scope(_keys_db()) as db:
        row, secret = account_store.create_key(db, tenant, role, name, expires)
    err.print(
        f"key [bold]{row.id}[/] ({escape(row.tenant)}, {row.role}) created; its secret is shown "
        "only now:"
    )
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    as_json: JsonOption = False,
) -> None:
    """Keys (never their secrets): tenant, role, created, expires, revoked, last used."""
    from sipflow import account_store
    from sipflow.db import session_scope

    with session_scope(_keys_db()) as db:
        rows = account_store.list_keys(db, tenant)
    if as_json:
        items = [r.model_dump(mode="json", exclude={"digest"}) for r in rows]
        out.print_json(data=items)
        return
    now = utcnow()
    table = Table(title=f"{len(rows)} keys", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=12)
    for col in ("tenant", "role", "state", "name", "created", "expires", "last used"):
        table.add_column(col, overflow="fold", no_wrap=col in ("role", "state"))
    for r in rows:
        state = "revoked" if r.revoked_at else "usable" if r.usable(now) else "expired"
        table.add_row(
            r.id,
            escape(r.tenant),
            r.role,
            state,
            escape(r.name),
            *(_when(t) for t in (r.created_at, r.expires_at, r.last_used_at)),
        )
    out.print(table)


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M}" if t else "-"


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a key at once (its requests and dashboard sign-ins get 401)."""
    from sipflow import account_store
    from sipflow.db import session_scope

    with session_scope(_keys_db()) as db:
        row = account_store.revoke_key(db, key_id)
    if row is None:
        raise _fail(f"no key {key_id!r}")
    out.print(f"key {escape(row.id)} ({escape(row.tenant)}, {row.role}) revoked")


# -- processes -----------------------------------------------------------------------------------
@app.command()
def worker() -> None:
    """Run the Temporal worker (workflows and activities)."""
    from entrypoints.worker import main

    main()


@app.command("runner-host")
def runner_host(
    pool: Annotated[
        str | None, typer.Option(help="The pool it joins [default: $SIPFLOW_RUNNER_HOST_POOL]")
    ] = None,
) -> None:
    """Run this machine's runner agents for sessions placed on its pool (a Temporal worker on
    its own task queue; registers and heartbeats through the API with SIPFLOW_API_KEY, a key
    from `sipflow pools add-host POOL`)."""
    from entrypoints.runner_host import main

    raise typer.Exit(main(pool))


@app.command("api")
def api_server(
    host: Annotated[str | None, typer.Option(help="[default: $SIPFLOW_API_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="[default: $SIPFLOW_API_PORT]")] = None,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
) -> None:
    """Run the HTTP API (uvicorn api.main:app)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.main:app",
        host=host or settings.api_host,
        port=port or settings.api_port,
        reload=reload,
    )


# -- sipflow broker-config -----------------------------------------------------------------------
@app.command("broker-config")
def broker_config(
    path: Annotated[Path, typer.Argument(help="The dynamic-security plugin's JSON file")],
    owner: Annotated[
        str | None, typer.Option(help="uid:gid to own the file (the broker's user)")
    ] = None,
) -> None:
    """Write (or refresh) mosquitto's dynamic-security file: sipflow's service clients, with
    credentials derived from SIPFLOW_RUNNER_TOKEN_SECRET. Run before the broker starts."""
    import os

    from backends import broker_auth
    from backends.runner_tokens import token_key

    broker_auth.write_config(path, token_key(get_settings()))
    if owner:
        uid, _, gid = owner.partition(":")
        os.chown(path, int(uid), int(gid or -1))
    out.print(f"wrote {escape(str(path))}")


# -- sipflow sweep -------------------------------------------------------------------------------
@app.command()
def sweep(
    every: Annotated[
        float, typer.Option(help="Sweep every N seconds until Ctrl-C (0: once).", min=0)
    ] = 0,
    backend: Annotated[
        list[str] | None, typer.Option(help="Only this backend (repeatable) [default: all]")
    ] = None,
) -> None:
    """Remove runners and networks that sessions which no longer run left behind."""
    from backends.registry import Backends, names
    from backends.sweeper import sweep_all
    from entrypoints.liveness import still_running
    from sipflow.db import migrate

    unknown = sorted(set(backend or []) - set(names()))
    if unknown:
        raise _fail(f"unknown backend(s): {', '.join(unknown)}; known: {', '.join(names())}")
    settings = get_settings()
    migrate(settings.resolved_database_url)  # a fresh data dir has no tables yet
    backends, may_run = Backends(settings), still_running(settings)
    _raise_sigterm_as_interrupt()
    try:
        while True:
            removed = sweep_all(backends, may_run, backend)
            for name, sessions in removed.items():
                for sid, what in sessions.items():
                    line = f"{escape(name)} {escape(sid)}: removed {escape(', '.join(what))}"
                    out.print(line, soft_wrap=True)
            if not removed:
                out.print("nothing to sweep")
            if every <= 0:
                return
            time.sleep(every)
    except KeyboardInterrupt:
        return


if __name__ == "__main__":
    app()
