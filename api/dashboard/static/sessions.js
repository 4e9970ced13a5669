import { $, FINAL, api, badge, el, fmtDuration, fmtNum, fmtPct, fmtTime, nav, showError } from "./common.js";

nav("sessions");
const form = $("#filters");
const params = new URLSearchParams(location.search);
let offset = Number(params.get("offset") || 0);
const selected = new Set();
let timer = null;

for (const name of ["status", "verdict", "limit"]) {
  if (params.get(name)) form.elements[name].value = params.get(name);
}

function query() {
  const q = new URLSearchParams();
  for (const name of ["status", "verdict", "tenant", "limit"]) {
    const v = form.elements[name].value;
    if (v) q.set(name, v);
  }
  if (offset) q.set("offset", offset);
  return q;
}

function row(s) {
  const check = el("input", {
    type: "checkbox", "aria-label": `select ${s.id}`, checked: selected.has(s.id),
    onchange: (e) => { e.target.checked ? selected.add(s.id) : selected.delete(s.id); updateCompare(); },
  });
  return el("tr", { "data-id": s.id, "data-status": s.status },
    el("td", {}, check),
    el("td", {}, el("a", { href: `/dashboard/sessions/${s.id}` }, s.name), el("div", { class: "muted mono" }, s.id)),
    el("td", {}, badge(s.status)),
    el("td", { class: "verdict" }, badge(s.verdict)),
    el("td", { class: "mono" }, s.target || "direct"),
    el("td", {}, fmtTime(s.started_at || s.created_at)),
    el("td", { class: "num" }, fmtDuration(s.duration_s)),
    el("td", { class: "num" }, fmtNum(s.calls)),
    el("td", { class: "num" }, fmtPct(s.success_rate)),
  );
}

function updateCompare() {
  const btn = $("#compare");
  btn.disabled = selected.size !== 2;
  btn.textContent = `Compare selected (${selected.size}/2)`;
}
$("#compare").addEventListener("click", () => {
  const [a, b] = [...selected];
  location.href = `/dashboard/compare?a=${a}&b=${b}`;
});

async function load() {
  clearTimeout(timer);
  const q = query();
  history.replaceState(null, "", `?${q}`);
  let body;
  try {
    body = await api(`/dashboard/api/sessions?${q}`);
    $("#error").replaceChildren();
  } catch (e) {
    showError($("#error"), `Cannot load sessions: ${e.message}`);
    timer = setTimeout(load, 5000);
    return;
  }
  const tenantSel = form.elements.tenant;
  const want = tenantSel.value || params.get("tenant") || "";
  tenantSel.replaceChildren(el("option", { value: "" }, "any"), ...body.tenants.map((t) => el("option", {}, t)));
  tenantSel.value = want;
  const tbody = $("#sessions tbody");
  tbody.replaceChildren(...body.items.map(row));
  if (!body.items.length) {
    tbody.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No sessions match. Start one with New session.")));
  }
  const last = Math.min(body.offset + body.items.length, body.total);
  $("#range").textContent = body.total ? `${body.offset + 1}–${last} of ${body.total}` : "0 sessions";
  $("#prev").disabled = body.offset === 0;
  $("#next").disabled = last >= body.total;
  // Refresh quickly while a session on this page runs, slowly otherwise (new sessions appear).
  const active = body.items.some((s) => !FINAL.includes(s.status));
  const every = active ? 2000 : 10000;
  $("#refresh").textContent = `auto-refresh every ${every / 1000} s`;
  document.body.dataset.loaded = String(Date.now());
  timer = setTimeout(load, every);
}

form.addEventListener("change", () => { offset = 0; load(); });
$("#prev").addEventListener("click", () => { offset = Math.max(0, offset - Number(form.elements.limit.value)); load(); });
$("#next").addEventListener("click", () => { offset += Number(form.elements.limit.value); load(); });
updateCompare();
load();
