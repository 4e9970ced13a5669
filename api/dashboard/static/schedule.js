import { $, PALETTE, api, badge, chartLib, el, fmtTime, nav, showError } from "./common.js";

nav("schedules");
const id = location.pathname.split("/").pop();
const charts = new Map();

function regressedText(r) {
  return (r.regressed || []).map((x) => `${x.metric} ${x.measured} / ${x.baseline} / ${x.delta}`).join("; ");
}

// How far a metric may move from its baseline: "+20%", "-0.5" (as sipflow/regression.py).
function limitOf(rule, base) {
  const m = /^\s*([+-])\s*([0-9.]+)\s*(%?)\s*$/.exec(rule);
  if (!m || base === null) return null;
  const step = m[3] ? Math.abs(base) * Number(m[2]) / 100 : Number(m[2]);
  return m[1] === "+" ? base + step : base - step;
}

// Per rule: the metric over the runs (oldest first), the baseline band, the states as markers.
function trends(spec, runs) {
  const metrics = Object.keys(spec.rules || {});
  const box = $("#trends");
  const ordered = [...runs].reverse();
  for (const [i, metric] of metrics.entries()) {
    let canvas = box.querySelector(`canvas[data-metric="${metric}"]`);
    if (!canvas) {
      canvas = el("canvas", { "data-metric": metric });
      box.append(el("div", { class: "card chart" }, canvas));
    }
    const labels = ordered.map((r) => r.session_id);
    const values = ordered.map((r) => r.measured?.[metric] ?? null);
    const base = ordered.map((r) => r.baseline?.values?.[metric] ?? null);
    const colors = ordered.map((r) => (r.state === "pass" ? "#0ca678" : r.state ? "#d6336c" : "#999"));
    const data = {
      labels,
      datasets: [
        { label: metric, data: values, borderColor: PALETTE[i % PALETTE.length], pointBackgroundColor: colors, pointRadius: 5 },
        { label: "baseline", data: base, borderColor: "#999", borderDash: [4, 4], pointRadius: 0 },
        { label: `limit (${spec.rules[metric]})`, data: base.map((b) => limitOf(spec.rules[metric], b)),
          borderColor: "#d6336c", borderDash: [2, 2], pointRadius: 0, fill: "-1", backgroundColor: "#d6336c18" },
      ],
    };
    const old = charts.get(metric);
    if (old) { old.data = data; old.update("none"); continue; }
    try {
      const Chart = chartLib();
      charts.set(metric, new Chart(canvas, {
        type: "line", data,
        options: { animation: false, responsive: true, maintainAspectRatio: false,
          plugins: { title: { display: true, text: metric, align: "start" } } },
      }));
    } catch (e) {
      showError($("#error"), e.message);
    }
  }
}

async function load() {
  let s;
  try {
    s = await api(`/v1/schedules/${id}`);
  } catch (e) {
    showError($("#error"), `Cannot load the schedule: ${e.message}`);
    return;
  }
  $("#name").textContent = s.name;
  $("#state").replaceChildren(badge(s.paused ? "paused" : "active"));
  const t = s.spec.schedule || {};
  const facts = [
    ["id", s.id], ["version", s.version], ["note", s.note || "-"],
    ["when", [...(t.cron || []), ...(t.every_s || []).map((x) => `every ${x} s`)].join(", ") + ` (${t.time_zone})`],
    ["runs", s.spec.capacity ? `capacity search ${s.spec.capacity.start}–${s.spec.capacity.ceiling} calls/s (${(s.spec.capacity.criteria || []).join(", ")})` : "one session"],
    ["overlap", s.spec.overlap], ["next runs", s.next_runs.slice(0, 3).map(fmtTime).join(", ") || "-"],
    ["missed runs", s.missed_runs ?? "-"], ["Temporal schedule", s.temporal_schedule_id],
  ];
  $("#facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  const filter = $("#filter").value;
  const runs = s.runs.filter((r) => !filter || r.state === filter);
  $("#runs tbody").replaceChildren(...runs.map((r) => el("tr", { "data-state": r.state || "running" },
    el("td", {}, el("a", { href: r.kind === "capacity" ? `/dashboard/capacity/${r.session_id}` : `/dashboard/sessions/${r.session_id}`, class: "mono" }, r.session_id)),
    el("td", {}, fmtTime(r.scheduled_at || r.started_at)),
    el("td", {}, badge(r.state || "running")),
    el("td", {}, regressedText(r)),
    el("td", {}, r.note || ""),
    el("td", {}, r.alert || ""),
  )));
  $("#alerts tbody").replaceChildren(...s.alerts.map((a) => el("tr", {},
    el("td", {}, fmtTime(a.at)), el("td", {}, a.kind), el("td", {}, a.channel),
    el("td", {}, badge(a.ok ? "pass" : "fail")), el("td", {}, String(a.attempts)), el("td", {}, a.error || ""),
  )));
  trends(s.spec, s.runs);
  document.body.dataset.loaded = String(Date.now());
}

async function act(what) {
  try {
    const json = what === "trigger" ? {} : { note: $("#note").value || null };
    await api(`/v1/schedules/${id}/${what}`, { method: "POST", json });
    load();
  } catch (e) {
    showError($("#error"), `${what} failed: ${e.message}`);
  }
}

for (const what of ["pause", "resume", "trigger"]) $(`#${what}`).addEventListener("click", () => act(what));
$("#filter").addEventListener("change", load);
load();
setInterval(load, 5000);
