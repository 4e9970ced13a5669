import { $, api, badge, el, fmtTime, nav, showError } from "./common.js";

nav("admin");

function failed(what, e) {
  const msg = e.status === 403 ? "This page is for the tenant's admins." : `${what}: ${e.message}`;
  showError($("#error"), msg);
}

async function loadKeys() {
  const body = await api("/v1/keys");
  const now = Date.now();
  const rows = body.items.map((k) => {
    const state = k.revoked_at ? "revoked"
      : k.expires_at && Date.parse(k.expires_at) <= now ? "expired" : "usable";
    const revoke = state === "usable"
      ? el("button", { class: "danger", "data-revoke": k.id, onclick: () => revokeKey(k) }, "Revoke")
      : "";
    return el("tr", { "data-id": k.id },
      el("td", { class: "mono" }, k.id),
      el("td", {}, k.name),
      el("td", {}, k.role),
      el("td", {}, badge(state)),
      el("td", {}, fmtTime(k.created_at)),
      el("td", {}, k.expires_at ? fmtTime(k.expires_at) : "never"),
      el("td", {}, k.last_used_at ? fmtTime(k.last_used_at) : "-"),
      el("td", {}, revoke),
    );
  });
  $("#keys tbody").replaceChildren(...rows);
}

async function revokeKey(k) {
  if (!confirm(`Revoke key ${k.id} (${k.name})? Its requests get 401 at once.`)) return;
  try {
    await api(`/v1/keys/${k.id}`, { method: "DELETE" });
  } catch (e) {
    failed("Not revoked", e);
  }
  await refresh();
}

$("#new-key").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const json = { name: form.get("name"), role: form.get("role") };
  if (form.get("expires_days")) json.expires_days = Number(form.get("expires_days"));
  try {
    const key = await api("/v1/keys", { method: "POST", json });
    $("#secret").replaceChildren(el("div", { class: "banner info", role: "status" },
      `Key ${key.id} created. Its secret is shown only now: `,
      el("code", { id: "new-secret" }, key.secret)));
    ev.target.reset();
  } catch (e) {
    failed("Not created", e);
  }
  await refresh();
});

async function loadPolicy() {
  const p = await api("/v1/policy");
  $("#policy-source").textContent = p.source === "tenant" ? "(the tenant's own)" : "(the default, from the settings)";
  const { tenant, source, ...policy } = p;
  $("#policy").value = JSON.stringify(policy, null, 2);
}

async function savePolicy(method) {
  const msg = $("#policy-msg");
  msg.textContent = "";
  try {
    if (method === "PUT") {
      let json;
      try {
        json = JSON.parse($("#policy").value);
      } catch (e) {
        msg.textContent = `Not JSON: ${e.message}`;
        return;
      }
      await api("/v1/policy", { method, json });
      msg.textContent = "Saved.";
    } else {
      await api("/v1/policy", { method });
      msg.textContent = "Back to the default.";
    }
  } catch (e) {
    const items = Array.isArray(e.body?.detail) ? e.body.detail : null;
    msg.textContent = items
      ? `Not saved: ${items.map((i) => `${i.loc.join(".")}: ${i.msg}`).join("; ")}`
      : `Not saved: ${e.message}`;
    return;
  }
  await refresh();
}
$("#save-policy").addEventListener("click", () => savePolicy("PUT"));
$("#reset-policy").addEventListener("click", () => savePolicy("DELETE"));

async function loadAudit() {
  const action = $("#action").value.trim();
  const q = action ? `&action=${encodeURIComponent(action)}` : "";
  const body = await api(`/v1/audit?limit=200${q}`);
  const rows = body.items.map((e) => el("tr", {},
    el("td", {}, fmtTime(e.time)),
    el("td", { class: "mono" }, e.action),
    el("td", { class: "mono" }, e.object_id || "-"),
    el("td", { class: "mono" }, e.key_id || "-"),
    el("td", { class: "mono" }, e.detail ? JSON.stringify(e.detail) : ""),
  ));
  $("#audit tbody").replaceChildren(...rows);
  if (!rows.length) {
    $("#audit tbody").append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No events.")));
  }
}
$("#action").addEventListener("change", () => loadAudit().catch((e) => failed("Cannot load the audit log", e)));

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

function purged(p) {
  return `${p.folders_removed} runs folders (${bytes(p.bytes_freed)}), per-interval rows of ${p.sessions_rows_purged} sessions`;
}

async function loadRetention() {
  const r = await api("/v1/retention");
  const u = r.usage;
  $("#ret-free").replaceChildren(
    `${bytes(u.fs_free_bytes)} of ${bytes(u.fs_total_bytes)} (${(100 * u.free_fraction).toFixed(1)} %) `,
    u.low ? el("span", { class: "badge fail" }, "LOW") : "",
  );
  $("#ret-runs").textContent = `${bytes(u.runs_bytes)} in ${u.runs_sessions} sessions`;
  const p = r.policy;
  $("#ret-policy").textContent = `runs folders kept ${p.runs_days} days and at most ${bytes(p.runs_max_bytes)}; per-interval rows kept ${p.rows_days} days`;
  $("#ret-would").textContent = purged(r.would_purge);
  $("#ret-last").textContent = r.last_pass
    ? `${fmtTime(new Date(r.last_pass.at * 1000).toISOString())}: ${purged(r.last_pass)}, ${r.last_pass.rows_deleted} rows deleted`
    : "none yet";
}

async function runRetention(dryRun) {
  if (!dryRun && !confirm("Purge old sessions' runs folders and rows now, as the hourly pass would?")) return;
  const msg = $("#retention-msg");
  try {
    const p = await api("/v1/retention/run", { method: "POST", json: { dry_run: dryRun } });
    msg.textContent = `${dryRun ? "Would purge" : "Purged"}: ${purged(p)}.`;
  } catch (e) {
    msg.textContent = `Not run: ${e.message}`;
  }
  await loadRetention().catch((e) => failed("Cannot load retention", e));
}
$("#retention-dry").addEventListener("click", () => runRetention(true));
$("#retention-run").addEventListener("click", () => runRetention(false));

async function refresh() {
  try {
    await Promise.all([loadKeys(), loadPolicy(), loadAudit(), loadRetention()]);
    document.body.dataset.loaded = String(Date.now());
  } catch (e) {
    failed("Cannot load", e);
  }
}

refresh();
