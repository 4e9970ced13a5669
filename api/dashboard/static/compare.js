import { $, PALETTE, api, badge, dataset, el, fmtDuration, fmtNum, fmtTime, lineChart, nav, setDatasets, showError } from "./common.js";

nav("compare");
const params = new URLSearchParams(location.search);
// better: +1 when higher is better, -1 when lower is better, 0 when neither.
const METRICS = [
  ["verdict", "Verdict", 0],
  ["duration_s", "Duration", 0],
  ["total_calls", "Calls created", 0],
  ["successful_calls", "Successful calls", 1],
  ["failed_calls", "Failed calls", -1],
  ["success_rate", "Success rate (%)", 1],
  ["achieved_rate", "Achieved rate (calls/s)", 1],
  ["response_time_p50_ms", "Response time p50 (ms)", -1],
  ["response_time_p95_ms", "Response time p95 (ms)", -1],
  ["response_time_p99_ms", "Response time p99 (ms)", -1],
  ["retransmissions", "Retransmissions", -1],
  ["lost_runners", "Lost runners", -1],
];
let charts = null;

async function fillPickers() {
  const list = await api("/dashboard/api/sessions?limit=100");
  const opts = (sel) => list.items.map((s) =>
    el("option", { value: s.id, selected: s.id === sel }, `${s.name} · ${s.id} · ${s.verdict || s.status} · ${fmtTime(s.created_at)}`));
  const a = params.get("a") || (list.items[1] && list.items[1].id);
  const b = params.get("b") || (list.items.find((s) => s.id !== a) || {}).id;
  $("#a").replaceChildren(...opts(a));
  $("#b").replaceChildren(...opts(b));
  for (const [sel, id] of [[$("#a"), a], [$("#b"), b]]) {
    if (id && ![...sel.options].some((o) => o.value === id)) sel.append(el("option", { value: id, selected: true }, id));
  }
}

function value(rep, key) {
  if (key === "verdict") return rep.session.verdict || rep.session.status;
  if (key === "duration_s") return rep.session.duration_s;
  return rep.measured[key];
}

function diffCell(a, b, better) {
  if (typeof a !== "number" || typeof b !== "number") {
    const changed = a !== b;
    return [el("td", { class: "num" }, changed ? "differs" : "="), el("td", { class: `num ${changed ? "diff-changed" : ""}` }, changed ? "≠" : "")];
  }
  const d = b - a;
  const rel = a === 0 ? (b === 0 ? 0 : Infinity) : d / Math.abs(a);
  const big = Math.abs(rel) >= 0.05 && d !== 0;
  const cls = !big ? "" : better === 0 ? "diff-changed" : Math.sign(d) === better ? "diff-better" : "diff-worse";
  const pct = Number.isFinite(rel) ? `${rel >= 0 ? "+" : ""}${fmtNum(rel * 100, 1)} %` : "new";
  return [el("td", { class: "num" }, `${d >= 0 ? "+" : ""}${fmtNum(d, 2)}`), el("td", { class: `num ${cls}`, "data-diff": cls || "same" }, d === 0 ? "=" : pct)];
}

function callerSeries(rep, key) {
  const pts = rep.series.merged.caller || [];
  const t0 = pts.length ? pts[0].time : 0;
  return pts.map((p) => ({ x: p.time - t0, y: p[key] }));
}

async function compare(a, b) {
  history.replaceState(null, "", `?a=${a}&b=${b}`);
  let ra, rb;
  try {
    [ra, rb] = await Promise.all([api(`/v1/sessions/${a}/report.json`), api(`/v1/sessions/${b}/report.json`)]);
  } catch (e) {
    showError($("#error"), `Cannot load the reports: ${e.message}`);
    return;
  }
  $("#error").replaceChildren();
  $("#result").hidden = false;
  $("#head-a").replaceChildren(el("a", { href: `/dashboard/sessions/${a}` }, `A · ${ra.session.name}`), el("div", { class: "muted mono" }, a));
  $("#head-b").replaceChildren(el("a", { href: `/dashboard/sessions/${b}` }, `B · ${rb.session.name}`), el("div", { class: "muted mono" }, b));
  $("#metrics tbody").replaceChildren(...METRICS.map(([key, label, better]) => {
    const va = value(ra, key), vb = value(rb, key);
    const show = (v) => key === "verdict" ? badge(v) : key === "duration_s" ? fmtDuration(v) : fmtNum(v, 2);
    return el("tr", { "data-metric": key }, el("td", {}, label), el("td", { class: "num" }, show(va)), el("td", { class: "num" }, show(vb)), ...diffCell(va, vb, better));
  }));
  const names = [...new Set([...ra.thresholds, ...rb.thresholds].map((t) => t.threshold))];
  const cell = (rep, name) => {
    const t = rep.thresholds.find((x) => x.threshold === name);
    return el("td", {}, t ? [badge(t.passed ? "pass" : "fail"), ` ${fmtNum(t.measured, 3)}`] : "—");
  };
  $("#thresholds tbody").replaceChildren(...names.map((n) => {
    const ta = ra.thresholds.find((x) => x.threshold === n), tb = rb.thresholds.find((x) => x.threshold === n);
    const differs = !ta || !tb || ta.passed !== tb.passed;
    return el("tr", { class: differs ? "diff-changed" : "" }, el("td", { class: "mono" }, n), cell(ra, n), cell(rb, n));
  }));
  try {
    charts ||= {
      rate: lineChart($("#cmp-rate"), { title: "Call rate", y: "calls/s" }),
      concurrent: lineChart($("#cmp-concurrent"), { title: "Concurrent calls", y: "calls" }),
      success: lineChart($("#cmp-success"), { title: "Successful calls", y: "calls/s" }),
      p95: lineChart($("#cmp-p95"), { title: "Response time p95", y: "ms" }),
    };
  } catch (e) {
    showError($("#error"), e.message);
    return;
  }
  const both = (key) => [
    dataset(`A ${ra.session.name} (${a})`, callerSeries(ra, key), PALETTE[0]),
    dataset(`B ${rb.session.name} (${b})`, callerSeries(rb, key), PALETTE[1], { borderDash: [6, 3] }),
  ];
  setDatasets(charts.rate, both("call_rate"));
  setDatasets(charts.concurrent, both("current_calls"));
  setDatasets(charts.success, both("successful_calls"));
  setDatasets(charts.p95, both("response_time_p95_ms"));
  window.sipflowCompare = { a: ra, b: rb, charts };
  document.body.dataset.compared = `${a},${b}`;
}

$("#pick").addEventListener("submit", (e) => {
  e.preventDefault();
  compare($("#a").value, $("#b").value);
});

(async () => {
  try {
    await fillPickers();
  } catch (e) {
    showError($("#error"), `Cannot list sessions: ${e.message}`);
    return;
  }
  if ($("#a").value && $("#b").value && params.get("a") && params.get("b")) compare($("#a").value, $("#b").value);
})();
