import {
  $, FINAL, PALETTE, api, badge, chartLib, dataset, el, fmtDuration, fmtNum, fmtPct, fmtTime, lineChart,
  nav, setDatasets, showError,
} from "./common.js";

nav("sessions");
const sid = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const ROLE_COLOR = { caller: PALETTE[0], callee: PALETTE[1] };
const points = {};        // role -> Map(second -> merged point)
const liveRunners = {};   // runner_id -> latest counters and state from the stream
const pending = [];       // [runner_id, seq, received_at] applied, waiting for the next frame
const renders = [];       // [{runner_id, seq, received_at, shown_at}] (bench/dashboard_latency.py)
let detail = null, source = null, frame = 0, detailTimer = null;

let charts = null;
try {
  charts = {
    rate: lineChart($("#chart-call-rate"), { title: "Call rate", y: "calls/s" }),
    concurrent: lineChart($("#chart-concurrent"), { title: "Concurrent calls", y: "calls" }),
    calls: lineChart($("#chart-calls"), { title: "Successful and failed calls", y: "calls/s" }),
    response: lineChart($("#chart-response"), { title: "Response time and post-dial delay (callers)", y: "ms" }),
    retrans: lineChart($("#chart-retrans"), { title: "Retransmissions", y: "per second" }),
  };
} catch (e) {
  showError($("#error"), e.message);
}

window.sipflowReport = { sid, points, renders, charts, get detail() { return detail; } };

for (const [id, fmt] of [["export-json", "report.json"], ["export-csv", "report.csv"], ["export-junit", "junit.xml"]]) {
  $(`#${id}`).href = `/v1/sessions/${sid}/${fmt}`;
}
$("#compare").href = `/dashboard/compare?a=${sid}`;
$("#again").href = `/dashboard/new?from=${sid}`;

// -- charts -----------------------------------------------------------------------------------
function t0() {
  let min = Infinity;
  for (const m of Object.values(points)) for (const t of m.keys()) min = Math.min(min, t);
  return Number.isFinite(min) ? min : 0;
}

function series(role, key, start) {
  const m = points[role];
  if (!m) return [];
  return [...m.values()].sort((a, b) => a.time - b.time).map((p) => ({ x: p.time - start, y: p[key] }));
}

// The load profile's rate as the workflow sets it: a staircase from the callers' first second
// (before they start: from 0), drawn dashed over the measured rate.
function planned(start) {
  const plan = detail && detail.planned_rate;
  if (!plan || !plan.length) return [];
  const callers = points.caller;
  const from = callers && callers.size ? Math.min(...callers.keys()) - 1 - start : 0;
  const steps = [];
  plan.slice(0, -1).forEach((c, i) => {  // the last point is the plan's end
    steps.push({ x: from + c.at_s, y: c.rate }, { x: from + plan[i + 1].at_s, y: c.rate });
  });
  return [dataset("planned", steps, PALETTE[1], { borderDash: [6, 4], pointRadius: 0, fill: false })];
}

function render() {
  frame = 0;
  if (charts) {
    const start = t0();
    const roles = Object.keys(points).sort((a, b) => (a === "caller" ? -1 : b === "caller" ? 1 : a.localeCompare(b)));
    const perRole = (key) => roles.map((r, i) => dataset(`${r}s`, series(r, key, start), ROLE_COLOR[r] || PALETTE[i + 2]));
    setDatasets(charts.rate, [...perRole("call_rate"), ...planned(start)]);
    setDatasets(charts.concurrent, perRole("current_calls"));
    const calls = [];
    roles.forEach((r, i) => {
      calls.push(dataset(`${r}s successful`, series(r, "successful_calls", start), [PALETTE[2], PALETTE[6]][i % 2]));
      calls.push(dataset(`${r}s failed`, series(r, "failed_calls", start), [PALETTE[5], PALETTE[4]][i % 2]));
    });
    setDatasets(charts.calls, calls);
    setDatasets(charts.response, [
      dataset("p50", series("caller", "response_time_p50_ms", start), PALETTE[0]),
      dataset("p95", series("caller", "response_time_p95_ms", start), PALETTE[4]),
      dataset("p99", series("caller", "response_time_p99_ms", start), PALETTE[5]),
      dataset("PDD p95", series("caller", "pdd_p95_ms", start), PALETTE[3]),
    ]);
    setDatasets(charts.retrans, perRole("retransmissions"));
  }
  const applied = pending.splice(0);
  // shown_at: the frame after the charts were redrawn, i.e. when the browser paints them.
  requestAnimationFrame(() => {
    const shown = Date.now();
    for (const [runner_id, seq, received_at] of applied) {
      renders.push({ runner_id, seq, received_at, shown_at: shown });
    }
    if (renders.length > 20000) renders.splice(0, renders.length - 20000);
  });
  renderRunners();
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function setPoints(byRole) {
  for (const k of Object.keys(points)) delete points[k];
  for (const [role, list] of Object.entries(byRole || {})) {
    points[role] = new Map(list.map((p) => [p.time, p]));
  }
}

// -- the live stream (server-sent events from the API's MQTT bridge) ---------------------------
function setLive(on, text) {
  $("#live").replaceChildren(el("span", { class: `live-dot ${on ? "on" : ""}` }), text);
  $("#live").dataset.state = on ? "live" : "off";
}

function connect() {
  source = new EventSource(`/dashboard/api/sessions/${sid}/live`);
  source.addEventListener("snapshot", (e) => {
    const snap = JSON.parse(e.data);
    setPoints(snap.points);
    for (const r of snap.runners) liveRunners[r.runner_id] = r;
    setLive(true, snap.mqtt ? "live" : "live (MQTT unreachable: database only)");
    schedule();
  });
  source.addEventListener("point", (e) => {
    const m = JSON.parse(e.data);
    (points[m.role] ||= new Map()).set(m.point.time, m.point);
    if (m.runner) liveRunners[m.runner.runner_id] = m.runner;
    pending.push([m.runner_id, m.seq, m.received_at]);
    schedule();
  });
  source.addEventListener("runner", (e) => {
    const r = JSON.parse(e.data);
    liveRunners[r.runner_id] = { ...(liveRunners[r.runner_id] || {}), ...r };
    schedule();
  });
  source.addEventListener("status", () => loadDetail());
  source.addEventListener("end", () => {
    source.close();
    setLive(false, "finished");
    finalCharts();
  });
  source.onerror = () => { if (source.readyState !== EventSource.CLOSED) setLive(false, "reconnecting…"); };
}

async function finalCharts() {
  // The stored intervals are the session's record: draw the charts from them once it is over.
  try {
    const m = await api(`/v1/sessions/${sid}/metrics`);
    setPoints(m.merged);
    for (const r of m.runners) {
      const last = r.points[r.points.length - 1];
      if (!last) continue;
      liveRunners[r.runner_id] = {
        ...(liveRunners[r.runner_id] || {}), runner_id: r.runner_id, role: r.role,
        last_seq: last.seq, call_rate: last.call_rate, current_calls: last.current_calls,
        cum_calls_created: last.cum_calls_created, cum_successful_calls: last.cum_successful_calls,
        cum_failed_calls: last.cum_failed_calls, cum_retransmissions: last.cum_retransmissions,
      };
    }
    schedule();
  } catch (e) { /* keep what the stream showed */ }
  loadDetail();
}

// -- the session's detail (status, verdict, thresholds, runners) -------------------------------
function fact(k, v) { return [el("dt", {}, k), el("dd", {}, v)]; }

async function loadDetail() {
  clearTimeout(detailTimer);
  try {
    detail = await api(`/v1/sessions/${sid}`);
  } catch (e) {
    showError($("#error"), e.status === 404 ? `No session ${sid}.` : `Cannot load the session: ${e.message}`);
    if (e.status !== 404) detailTimer = setTimeout(loadDetail, 3000);
    return;
  }
  $("#error").replaceChildren();
  const d = detail, final = FINAL.includes(d.status);
  document.title = `${d.name} · sipflow`;
  $("#name").textContent = d.name;
  $("#status").replaceChildren(badge(d.status));
  $("#verdict").replaceChildren(d.verdict ? badge(d.verdict) : "");
  $("#verdict").dataset.verdict = d.verdict || "";
  $("#temporal").href = d.links.temporal_ui;
  const started = d.started_at ? new Date(d.started_at) : null;
  const end = d.finished_at ? new Date(d.finished_at) : new Date();
  const callers = d.spec.roles && d.spec.roles.callers;
  $("#facts").replaceChildren(
    ...fact("Session", el("span", { class: "mono" }, d.id)),
    ...fact("Tenant", d.tenant),
    ...fact("Target", d.target || "direct (callers call the callees)"),
    ...fact("Started", fmtTime(d.started_at || d.created_at)),
    ...fact("Duration", started ? fmtDuration((end - started) / 1000) : "—"),
    ...fact("Phase", d.progress ? d.progress.phase : d.status),
    ...fact("Rate", `${fmtNum(d.progress && d.progress.rate ? d.progress.rate : callers && callers.rate)} calls/s`),
  );
  $("#controls").hidden = final;
  const rateInput = $("#rate");
  if (!rateInput.value && callers) rateInput.value = callers.rate;

  $("#thresholds-final").textContent = d.thresholds_final ? "(final)" : final ? "" : "(so far)";
  $("#thresholds tbody").replaceChildren(...d.thresholds.map((t) =>
    el("tr", { "data-passed": String(t.passed) },
      el("td", { class: "mono" }, t.threshold),
      el("td", { class: "num" }, fmtNum(t.measured, 3)),
      el("td", {}, badge(t.passed ? "pass" : "fail")))));

  const roles = Object.entries(d.roles);
  $("#roles tbody").replaceChildren(...roles.map(([role, r]) => el("tr", {},
    el("td", {}, role), el("td", { class: "num" }, r.runners), el("td", { class: "num" }, fmtNum(r.calls_created)),
    el("td", { class: "num" }, fmtNum(r.successful_calls)), el("td", { class: "num" }, fmtNum(r.failed_calls)),
    el("td", { class: "num" }, fmtNum(r.retransmissions)))));
  $("#measured tbody").replaceChildren(...Object.entries(d.measured).map(([k, v]) =>
    el("tr", {}, el("td", { class: "mono" }, k), el("td", { class: "num" }, k === "success_rate" ? fmtPct(v) : fmtNum(v, 2)))));

  const causes = [];
  for (const [role, r] of roles) {
    if (r.registration) causes.push(el("li", { "data-registration": role }, `${role}s: ${registrationText(r.registration)}`));
    for (const [c, n] of Object.entries(r.failed_by_cause)) causes.push(el("li", {}, `${role}s: ${c} — ${n} calls`));
    for (const [c, n] of Object.entries(r.failure_reasons)) causes.push(el("li", { "data-reason": c }, `${role}s: ${c} ×${n}`, ...exampleLinks(c)));
  }
  const reasons = d.reasons.map((r) => el("li", {}, r));
  $("#reasons").replaceChildren(reasons.length || causes.length
    ? el("ul", {}, ...reasons, ...causes)
    : el("span", { class: "muted" }, final ? "None." : "None so far."));
  renderSteps(d);
  renderRunners();
  renderDurations(d);
  if (final) loadCalls();
  if (final) loadEvidence(d).catch(() => {});
  if (final) {
    if (source && source.readyState !== EventSource.CLOSED) { /* the stream ends itself */ }
  } else {
    detailTimer = setTimeout(loadDetail, 2000);
  }
}

// -- per-call audio (roles' media:), the first page ---------------------------------------------
async function loadCalls() {
  const roles = (detail && detail.spec.roles) || {};
  if (!(roles.callers && roles.callers.media)) return;
  let page;
  try {
    page = await api(`/v1/sessions/${sid}/calls?limit=100`);
  } catch (e) {
    return; // the rest of the report stands without it
  }
  $("#media").hidden = false;
  $("#media-count").textContent = `(${page.items.length} of ${page.total})`;
  loadMediaPanel().catch(() => {});
  $("#calls tbody").replaceChildren(...page.items.flatMap((c) => c.directions.map((d, i) =>
    el("tr", { "data-audio": c.audio },
      el("td", { class: "mono" }, i === 0 ? c.call_id : ""), el("td", {}, i === 0 ? c.audio : ""),
      el("td", {}, d.direction || ""), el("td", { class: "num" }, fmtNum(d.received)),
      el("td", { class: "num" }, fmtNum(d.loss_pct, 2)), el("td", { class: "num" }, fmtNum(d.duplicates)),
      el("td", { class: "num" }, fmtNum(d.reordered)), el("td", { class: "num" }, fmtNum(d.jitter_ms, 2)),
      el("td", { class: "num" }, fmtNum(d.mos, 2)), el("td", { class: "num" }, perceptual(d)),
      dtmfCell(c, d.direction),
      el("td", {}, i === 0 ? checksText(c) : "")))));
}

// A direction's perceptual scores (mos: pesq / visqol): "PESQ / ViSQOL", blank when neither.
function perceptual(d) {
  const v = [d.pesq, d.visqol].filter((x) => x !== null && x !== undefined);
  return v.length ? [d.pesq, d.visqol].map((x) => (x === null || x === undefined ? "–" : fmtNum(x, 2))).join(" / ") : "";
}

// A direction's DTMF (RFC 4733 events): "sent" when it arrived as sent, else "sent → received".
function dtmfCell(c, direction) {
  const plays = (c.dtmf || []).filter((p) => p.direction === direction && p.sent !== null);
  const text = plays.map((p) => (p.match ? p.sent : `${p.sent} → ${p.received === null ? "none" : p.received || "none"}`));
  const ok = plays.every((p) => p.match);
  return el("td", { class: "mono", "data-dtmf": plays.map((p) => p.received ?? "").join(" "),
    "data-dtmf-ok": plays.length ? String(ok) : "" }, text.join(" "));
}

// A call script's media steps (expect_dtmf, expect audio) for this call: the failed ones' reasons.
function checksText(c) {
  const ex = c.expectations || [];
  if (!ex.length) return "";
  const bad = ex.filter((e) => !e.passed);
  return bad.length ? bad.map((e) => `${e.step}: ${e.reason}`).join("; ") : `${ex.length} passed`;
}

// The answered calls' durations (200 OK -> BYE) as a bar chart; ACD beside the heading.
let durationChart = null;
function renderDurations(d) {
  const buckets = d.call_durations || [];
  $("#durations").hidden = !buckets.length;
  if (!buckets.length) return;
  const acd = d.measured && d.measured.acd_s;
  $("#durations-acd").textContent = acd == null ? "" : `(ACD ${fmtNum(acd, 1)} s)`;
  if (!durationChart) {
    durationChart = new (chartLib())($("#chart-durations"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: "Answered calls by duration", align: "start" }, legend: { display: false } },
        scales: { y: { beginAtZero: true, title: { display: true, text: "calls" } } } },
    });
  }
  durationChart.data.labels = buckets.map((b) => (b.le_s == null ? "longer" : `≤ ${fmtNum(b.le_s)} s`));
  durationChart.data.datasets = [{ label: "calls", data: buckets.map((b) => b.calls), backgroundColor: PALETTE[2] }];
  durationChart.update("none");
  document.body.dataset.durations = buckets.map((b) => b.calls).join(",");
}

// The media panel: MOS distribution, loss and jitter over time, the worst calls.
let mediaCharts = null;
async function loadMediaPanel() {
  const p = await api(`/v1/sessions/${sid}/media`);
  const Chart = chartLib();
  if (!mediaCharts) {
    mediaCharts = {
      mos: new Chart($("#chart-mos"), {
        type: "bar",
        data: { labels: [], datasets: [] },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
          plugins: { title: { display: true, text: "MOS of the audio directions", align: "start" }, legend: { display: false } },
          scales: { y: { beginAtZero: true, title: { display: true, text: "directions" } } } },
      }),
      time: lineChart($("#chart-media-time"), { title: "RTP loss and jitter (by when the audio began)", y: "% / ms" }),
    };
  }
  mediaCharts.mos.data.labels = p.mos.map((b) => `${b.low.toFixed(2)}–${b.high.toFixed(2)}`);
  mediaCharts.mos.data.datasets = [{ label: "directions", data: p.mos.map((b) => b.directions), backgroundColor: PALETTE[0] }];
  mediaCharts.mos.update("none");
  const t0 = p.over_time.length ? p.over_time[0].time : 0;
  setDatasets(mediaCharts.time, [
    dataset("loss %", p.over_time.map((s) => ({ x: s.time - t0, y: s.loss_pct })), PALETTE[5]),
    dataset("jitter ms", p.over_time.map((s) => ({ x: s.time - t0, y: s.jitter_ms })), PALETTE[4]),
  ]);
  const worse = (c, key) => Math.max(...c.directions.map((d) => d[key] ?? 0));
  $("#worst-calls tbody").replaceChildren(...p.worst.map((c) => el("tr", { "data-audio": c.audio },
    el("td", { class: "mono" }, c.call_id), el("td", {}, badge(c.audio)),
    el("td", { class: "num" }, fmtNum(c.mos, 2)), el("td", { class: "num" }, fmtNum(worse(c, "loss_pct"), 2)),
    el("td", { class: "num" }, fmtNum(worse(c, "jitter_ms"), 2)))));
  document.body.dataset.mediaLoaded = String(Date.now());
}

// A registering callee's REGISTER tries (per runner), or its role's (summed over runners).
// -- per-step results of a flow (or any scenario with step marks) -----------------------------
async function renderSteps(d) {
  $("#steps").hidden = !d.steps.length;
  if (!d.steps.length) return;
  $("#steps-table tbody").replaceChildren(...d.steps.map((s) =>
    el("tr", { "data-step": s.step, "data-role": s.role, "data-failed": String(s.failed) },
      el("td", {}, s.role), el("td", { class: "mono" }, s.step),
      el("td", { class: "num" }, fmtNum(s.passed)), el("td", { class: "num" }, fmtNum(s.failed)),
      el("td", {}, Object.entries(s.failed_by).map(([k, n]) => `${k} ×${n}`).join(", ")),
      el("td", { class: "num" }, fmtNum(s.time_mean_ms, 1)), el("td", { class: "num" }, fmtNum(s.time_max_ms, 1)))));
  if (!d.flow || $("#steps-ladder").dataset.flow === d.flow) return;
  // The flow's ladder: the messages one call exchanges, from the catalogue.
  const f = await api(`/v1/flows/${d.flow}`);
  $("#steps-flow").textContent = `flow ${f.name}: success = ${f.success}`;
  $("#steps-ladder").dataset.flow = d.flow;
  if ($("#steps-ladder").dataset.captured) return; // a captured call of this session is shown
  $("#steps-ladder").replaceChildren(...f.messages.map((m) => el("li", {}, m)));
}

function registrationText(g) {
  const failures = Object.entries(g.failures || {}).map(([k, v]) => `${k} ×${v}`).join(", ");
  const parts = [];
  if (g.registered !== undefined) parts.push(`registered ${g.registered}`);
  parts.push(`${g.attempts} REGISTER ${g.attempts === 1 ? "try" : "tries"}` + (failures ? ` (failed: ${failures})` : ""));
  parts.push(`${g.refreshes} refreshes`);
  if (typeof g.unregistered === "number") parts.push(`removed ${g.unregistered}`);
  else if (g.unregistered !== null && g.unregistered !== undefined) parts.push(g.unregistered ? "removed" : "not removed");
  const errors = g.errors || (g.error ? [g.error] : []);
  return `registration: ${parts.join(", ")}` + (errors.length ? ` — ${errors.join("; ")}` : "");
}

// A runner as the report names it: `callee-1 (party carol)` for a named party's runner.
function runnerLabel(r) {
  return r.party ? `${r.runner_id} (party ${r.party})` : r.runner_id;
}

function renderRunners() {
  const rows = new Map();
  for (const r of (detail && detail.runners) || []) rows.set(r.runner_id, { ...r });
  for (const [id, r] of Object.entries(liveRunners)) {
    const base = rows.get(id) || {};
    // The database's state wins once it is final (done/failed carry the exit code and reasons).
    const state = ["done", "failed", "lost"].includes(base.state) ? base.state : r.state || base.state;
    rows.set(id, { ...base, ...r, state, role: base.role || r.role, party: base.party });
  }
  $("#runners tbody").replaceChildren(...[...rows.values()].sort((a, b) => a.runner_id.localeCompare(b.runner_id)).map((r) => {
    const reasons = Object.entries(r.failure_reasons || {}).map(([k, v]) => `${k} ×${v}`).join(", ");
    const exit = r.exit_code === null || r.exit_code === undefined ? "" : `exit ${r.exit_code}`;
    return el("tr", { "data-runner": r.runner_id },
      el("td", { class: "mono" }, runnerLabel(r)), el("td", {}, r.role), el("td", {}, badge(r.state)),
      el("td", { class: "mono" }, r.address || ""), el("td", { class: "num" }, fmtNum(r.last_seq)),
      el("td", { class: "num" }, fmtNum(r.call_rate)), el("td", { class: "num" }, fmtNum(r.current_calls)),
      el("td", { class: "num" }, fmtNum(r.cum_calls_created)), el("td", { class: "num" }, fmtNum(r.cum_successful_calls)),
      el("td", { class: "num" }, fmtNum(r.cum_failed_calls)), el("td", { class: "num" }, fmtNum(r.cum_retransmissions)),
      el("td", {}, [exit, reasons, r.detail, r.registration && registrationText(r.registration)].filter(Boolean).join(" · ")));
  }));
}

// -- controls ----------------------------------------------------------------------------------
function controlMessage(text, error = false) {
  const m = $("#control-msg");
  m.textContent = text;
  m.className = error ? "banner error" : "muted";
}

$("#set-rate").addEventListener("click", async () => {
  const rate = Number($("#rate").value);
  if (!(rate > 0)) return controlMessage("The rate must be a number above 0.", true);
  $("#set-rate").disabled = true;
  try {
    await api(`/v1/sessions/${sid}/rate`, { method: "POST", json: { rate } });
    controlMessage(`Rate set to ${fmtNum(rate)} calls/s.`);
  } catch (e) {
    controlMessage(`Rate not changed: ${e.message}`, true);
  } finally {
    $("#set-rate").disabled = false;
    loadDetail();
  }
});

$("#cancel").addEventListener("click", async () => {
  if (!confirm(`Cancel session ${sid}? Its runners are stopped and the result is recorded.`)) return;
  $("#cancel").disabled = true;
  try {
    await api(`/v1/sessions/${sid}/cancel`, { method: "POST" });
    controlMessage("Cancel requested; the workflow stops the runners.");
  } catch (e) {
    controlMessage(`Not cancelled: ${e.message}`, true);
    $("#cancel").disabled = false;
  }
  loadDetail();
});

// -- start -------------------------------------------------------------------------------------
(async () => {
  await loadDetail();
  if (!detail) return;
  if (FINAL.includes(detail.status)) {
    setLive(false, "finished");
    await finalCharts();
  } else {
    connect();
  }
})();

// -- per-call evidence: a ladder diagram of a kept call's SIP messages, its pcap ----------------
let evidence = null;
let evidenceLoading = null;
function loadEvidence(d) {
  evidenceLoading = evidenceLoading || renderEvidence(d); // once, however often the detail renders
  return evidenceLoading;
}

async function renderEvidence(d) {
  evidence = await api(`/v1/sessions/${sid}/evidence`);
  if (!evidence.calls.length) return;
  $("#evidence").hidden = false;
  const failed = evidence.calls.filter((c) => c.outcome === "failed");
  $("#evidence-count").textContent = `(${failed.length} failed, ${evidence.calls.length - failed.length} successful)`;
  const cap = evidence.capture;
  if (cap && (cap.kernel_drops || cap.files_dropped)) {
    $("#evidence-note").hidden = false;
    $("#evidence-note").textContent = [
      cap.kernel_drops ? `The capture missed ${fmtNum(cap.kernel_drops)} packets (machine overloaded): a call "without final response" may be a gap of the capture.` : "",
      cap.files_dropped ? `Its ring dropped ${fmtNum(cap.files_dropped)} oldest file(s) (bound ${fmtNum(cap.max_bytes)} bytes): the earliest calls are not kept.` : "",
    ].filter(Boolean).join(" ");
  }
  const label = (c) => `${c.outcome === "failed" ? c.reason : `${c.outcome} ${c.final_code ?? ""}`} — ${c.call_id}`;
  $("#evidence-call").replaceChildren(...[...failed, ...evidence.calls.filter((c) => c.outcome !== "failed")]
    .map((c) => el("option", { value: c.call_id }, label(c))));
  $("#evidence-call").onchange = () => showCall($("#evidence-call").value);
  // The failure reasons link to example calls of that reason.
  for (const li of document.querySelectorAll("#reasons li[data-reason]")) {
    if (!li.querySelector("a.evidence-link")) li.append(...exampleLinks(li.dataset.reason));
  }
  const wanted = decodeURIComponent((location.hash.match(/call=([^&]+)/) || [])[1] || "");
  await showCall(evidence.calls.some((c) => c.call_id === wanted) ? wanted : $("#evidence-call").value);
  if (d.flow) await showFlowExample(d);
}

// "— example calls: #1, #2": links that draw a kept call of this failure reason.
function exampleLinks(reason) {
  const ids = (evidence && evidence.by_reason[reason]) || [];
  if (!ids.length) return [];
  return [" — example calls: ", ...ids.slice(0, 5).flatMap((id, i) => [i ? ", " : "",
    el("a", { href: `#call=${encodeURIComponent(id)}`, class: "evidence-link", "data-call": id,
      onclick: (e) => { e.preventDefault(); showCall(id); $("#evidence").scrollIntoView(); } }, `#${i + 1}`)])];
}

async function ladderOf(callId) {
  return api(`/v1/sessions/${sid}/calls/${encodeURIComponent(callId)}/ladder`);
}

async function showCall(callId) {
  $("#evidence-call").value = callId;
  $("#evidence-pcap").href = `/v1/sessions/${sid}/calls/${encodeURIComponent(callId)}/pcap`;
  const lad = await ladderOf(callId);
  $("#evidence-ladder").replaceChildren(ladderSvg(lad));
  $("#evidence-message").hidden = true;
  document.body.dataset.evidenceCall = callId;
}

// One column per endpoint (ip:port) in order of first appearance, one arrow per message.
function ladderSvg(lad) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const ends = [];
  for (const m of lad.messages) for (const e of [m.src, m.dst]) if (!ends.includes(e)) ends.push(e);
  const colW = 280, rowH = 34, top = 40, left = 170;
  const width = left + colW * Math.max(ends.length - 1, 1) + 170;
  const height = top + rowH * (lad.messages.length + 1);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "ladder", role: "img",
    "aria-label": `SIP ladder of call ${lad.call_id}` });
  root.append(svg("defs", {}));
  root.firstChild.append(Object.assign(svg("marker", { id: "arrow", markerWidth: 8, markerHeight: 8, refX: 8, refY: 4, orient: "auto" })));
  root.firstChild.firstChild.append(svg("path", { d: "M0,0 L8,4 L0,8 z", fill: "currentColor" }));
  const x = (e) => left + colW * ends.indexOf(e);
  ends.forEach((e) => {
    root.append(svg("text", { x: x(e), y: 16, "text-anchor": "middle", class: "ladder-end" }, endpointName(e) === e ? e : `${endpointName(e, true)} (${e})`));
    root.append(svg("line", { x1: x(e), y1: 24, x2: x(e), y2: height, stroke: "#999", "stroke-dasharray": "4 3" }));
  });
  const t0 = lad.messages.length ? lad.messages[0].time : 0;
  lad.messages.forEach((m, i) => {
    const y = top + rowH * i + 14;
    const g = svg("g", { class: "ladder-msg", "data-first-line": m.first_line, tabindex: 0, style: "cursor: pointer" });
    g.append(svg("rect", { x: 0, y: y - rowH + 10, width, height: rowH, fill: "transparent" })); // the row is the click target
    const failed = /^SIP\/2\.0 [3-6]/.test(m.first_line);
    const colour = failed ? "#c0392b" : "#2c3e50";
    g.append(svg("text", { x: 4, y, class: "ladder-time" }, `+${((m.time - t0) * 1000).toFixed(1)} ms`));
    g.append(svg("line", { x1: x(m.src), y1: y, x2: x(m.dst), y2: y, stroke: colour, "marker-end": "url(#arrow)", color: colour }));
    const short = m.first_line.startsWith("SIP/2.0 ") ? `${m.first_line.slice(8)} (${(m.headers.find(([k]) => k.toLowerCase() === "cseq") || ["", ""])[1]})` : m.first_line.split(" ")[0];
    g.append(svg("text", { x: (x(m.src) + x(m.dst)) / 2, y: y - 5, "text-anchor": "middle", fill: colour }, short));
    g.addEventListener("click", () => {
      const pre = $("#evidence-message");
      pre.textContent = [m.first_line, ...m.headers.map(([k, v]) => `${k}: ${v}`), "", m.body].join("\n");
      pre.hidden = false;
    });
    root.append(g);
  });
  return root;
}

// An endpoint's name: the session's runner at that address (caller-0, callee-1 (party carol)),
// else as is; short: a named party's runner by the party's name alone (a ladder column's head).
function endpointName(e, short = false) {
  const ip = e.startsWith("[") ? e.slice(1, e.indexOf("]")) : e.split(":")[0];
  const r = ((detail && detail.runners) || []).find((x) => x.address === ip);
  if (!r) return e;
  return short && r.party ? r.party : runnerLabel(r);
}

// A flow's report ladder: a captured example call of this session instead of the catalogue's.
async function showFlowExample(d) {
  const example = evidence.calls.find((c) => c.outcome !== "failed") || evidence.calls[0];
  if (!example) return;
  const [lad, f] = await Promise.all([ladderOf(example.call_id), api(`/v1/flows/${d.flow}`)]);
  $("#steps-ladder").dataset.captured = example.call_id;
  $("#steps-flow").textContent = `flow ${f.name}: success = ${f.success} · a captured call (${example.call_id})`;
  $("#steps-ladder").replaceChildren(...lad.messages.map((m) =>
    el("li", {}, `${endpointName(m.src)} → ${endpointName(m.dst)}: ${m.first_line}`)));
}
