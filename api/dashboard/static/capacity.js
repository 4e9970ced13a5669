import { $, PALETTE, api, badge, chartLib, el, fmtNum, fmtTime, nav, showError } from "./common.js";

nav("capacity");
const parts = location.pathname.split("/").filter(Boolean);
const id = parts.length > 2 ? parts[2] : null;
let chart = null;
const rate = (v) => (v === null || v === undefined ? "—" : `${fmtNum(v)} calls/s`);

async function list() {
  $("#list-view").hidden = false;
  const body = await api("/v1/capacity?limit=500");
  const rows = body.items.map((c) => el("tr", { "data-id": c.id },
    el("td", {}, el("a", { href: `/dashboard/capacity/${c.id}` }, c.name), el("div", { class: "muted mono" }, c.id)),
    el("td", {}, badge(c.status)),
    el("td", { class: "num" }, rate(c.highest_held)),
    el("td", { class: "num" }, rate(c.lowest_broken)),
    el("td", { class: "num" }, String(c.steps)),
    el("td", {}, fmtTime(c.created_at)),
  ));
  $("#searches tbody").replaceChildren(...rows);
  if (!rows.length) {
    $("#searches tbody").append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No capacity searches yet.")));
  }
  document.body.dataset.loaded = String(Date.now());
}

// Success rate and p95 response time against the rate, steps in rate order; the knee (the
// highest rate that held) drawn as a vertical line.
function drawKnee(d, steps) {
  const Chart = chartLib();
  const sorted = [...steps].sort((a, b) => a.rate - b.rate);
  const point = (key) => sorted.map((s) => ({ x: s.rate, y: s.measured[key] ?? null }));
  const knee = d.highest_held;
  const datasets = [
    { label: "success rate %", data: point("success_rate"), borderColor: PALETTE[2], yAxisID: "y" },
    { label: "p95 response ms", data: point("response_time_p95_ms"), borderColor: PALETTE[4], yAxisID: "y2" },
  ];
  if (knee !== null && knee !== undefined) {
    datasets.push({ label: `highest held: ${fmtNum(knee)}/s`, data: [{ x: knee, y: 0 }, { x: knee, y: 100 }],
      borderColor: PALETTE[5], borderDash: [6, 4], pointRadius: 0, yAxisID: "y" });
  }
  const config = {
    type: "line",
    data: { datasets },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: true,
      plugins: { title: { display: true, text: "Where it breaks", align: "start" }, legend: { position: "bottom" } },
      elements: { point: { radius: 3 } },
      scales: {
        x: { type: "linear", title: { display: true, text: "calls/s" } },
        y: { min: 0, max: 100, title: { display: true, text: "success %" } },
        y2: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "ms" } },
      },
    },
  };
  if (chart) { chart.data.datasets = datasets; chart.update("none"); } else chart = new Chart($("#knee"), config);
}

async function detail() {
  $("#detail-view").hidden = false;
  const d = await api(`/v1/capacity/${id}`);
  const steps = (d.result && d.result.steps) || [];
  $("#name").textContent = d.name;
  $("#state").replaceChildren(badge(d.status));
  $("#cancel").hidden = !["pending", "running"].includes(d.status);
  const fact = (k, v, attrs = {}) => [el("dt", {}, k), el("dd", attrs, v)];
  $("#answer").replaceChildren(
    ...fact("Highest rate that held", rate(d.highest_held), { id: "highest" }),
    ...fact("Broke at", rate(d.lowest_broken), { id: "broke" }),
    ...fact("Stopped because", d.stop || (d.status === "running" ? "still searching" : "—")),
    ...fact("Criteria", d.spec.criteria.join(", ")),
    ...fact("Steps", `${steps.length} (warm-up ${d.spec.warmup} s, window ${d.spec.window} s, settle ${d.spec.settle} s)`),
  );
  $("#steps tbody").replaceChildren(...steps.map((s) => el("tr", { "data-held": String(s.held) },
    el("td", {}, String(s.index + 1)),
    el("td", { class: "num" }, fmtNum(s.rate)),
    el("td", {}, badge(s.held ? "held" : "broke")),
    el("td", { class: "num" }, fmtNum(s.measured.success_rate, 2)),
    el("td", { class: "num" }, fmtNum(s.measured.response_time_p95_ms)),
    el("td", { class: "num" }, fmtNum(s.achieved_rate)),
    el("td", { class: "mono" }, s.failed.join("; ")),
    el("td", {}, el("a", { href: `/dashboard/sessions/${s.session_id}`, class: "mono" }, s.session_id)),
  )));
  drawKnee(d, steps);
  document.body.dataset.loaded = String(Date.now());
  if (["pending", "running"].includes(d.status)) setTimeout(() => detail().catch(fail), 2000);
}

$("#cancel").addEventListener("click", async () => {
  if (!confirm("Cancel this capacity search? Its running step is cancelled too.")) return;
  try {
    await api(`/v1/capacity/${id}/cancel`, { method: "POST" });
  } catch (e) {
    fail(e);
  }
});

function fail(e) {
  showError($("#error"), `Cannot load: ${e.message}`);
}

(id ? detail() : list()).catch(fail);
