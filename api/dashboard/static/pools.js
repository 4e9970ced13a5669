import { $, api, badge, el, nav, showError } from "./common.js";

nav("pools");

async function load() {
  const body = await api("/v1/pools");
  const pools = body.items.map((p) => el("tr", { "data-pool": p.pool },
    el("td", { class: "mono" }, p.pool),
    el("td", { class: "num" }, String(p.hosts)),
    el("td", { class: "num" }, String(p.live_hosts)),
    el("td", { class: "num" }, `${p.running_agents} / ${p.max_agents}`),
    el("td", { class: "num" }, String(p.free_agents)),
  ));
  $("#pools tbody").replaceChildren(...pools);
  if (!pools.length) {
    $("#pools tbody").append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No pools yet.")));
  }
  const lists = await Promise.all(body.items.map((p) => api(`/v1/pools/${encodeURIComponent(p.pool)}/hosts`)));
  const hosts = lists.flatMap((l) => l.items).map((h) => el("tr", { "data-host": h.host_id ?? "", "data-state": h.state },
    el("td", { class: "mono" }, h.pool),
    el("td", { class: "mono" }, h.host_id ?? "(not yet seen)"),
    el("td", {}, badge(h.state)),
    el("td", { class: "num", title: "running / max; reserved: placed sessions whose agents may not run yet" },
      `${h.running_agents} / ${h.max_agents}` + (h.reserved_agents ? ` (${h.reserved_agents} reserved)` : "")),
    el("td", { class: "num" }, String(h.cores)),
    el("td", { class: "mono" }, h.addresses.join(", ")),
    el("td", { class: "num" }, h.heartbeat_age_s === null ? "—" : `${Math.round(h.heartbeat_age_s)} s ago`),
    el("td", { class: "mono muted" }, h.key_id),
  ));
  $("#hosts tbody").replaceChildren(...hosts);
  document.body.dataset.loaded = String(Date.now());
}

async function refresh() {
  try { await load(); } catch (e) { showError($("#error"), `Cannot load: ${e.message}`); }
}
refresh();
setInterval(refresh, 5000);
