import { $, api, badge, el, fmtTime, nav, showError } from "./common.js";

nav("schedules");

async function load() {
  let body;
  try {
    body = await api("/v1/schedules?limit=500");
  } catch (e) {
    showError($("#error"), `Cannot load schedules: ${e.message}`);
    return;
  }
  const rows = body.items.map((s) => el("tr", { "data-id": s.id },
    el("td", {}, el("a", { href: `/dashboard/schedules/${s.id}` }, s.name), el("div", { class: "muted mono" }, s.id)),
    el("td", {}, String(s.version)),
    el("td", {}, badge(s.paused ? "paused" : "active")),
    el("td", {}, s.note || ""),
    el("td", {}, fmtTime(s.updated_at)),
  ));
  $("#schedules tbody").replaceChildren(...rows);
  if (!rows.length) {
    $("#schedules tbody").append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No schedules yet.")));
  }
  document.body.dataset.loaded = String(Date.now());
}

load();
