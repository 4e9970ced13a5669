// Shared helpers of the dashboard pages (plain ES module; the charts come from Chart.js, loaded
// as a classic script from vendor/, built by deploy/setup.sh from dashboard/package-lock.json).

export const $ = (sel, root = document) => root.querySelector(sel);
export const FINAL = ["completed", "cancelled", "error"];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail;
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// The sign-in's CSRF token (a readable cookie), sent back as a header on every write.
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)sipflow_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export function signIn() {
  const next = location.pathname + location.search;
  location.assign(`/dashboard/signin?next=${encodeURIComponent(next)}`);
}

export async function api(url, { method = "GET", json, text } = {}) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (text !== undefined) {
    init.headers["Content-Type"] = "text/plain";
    init.body = text;
  }
  const r = await fetch(url, init);
  if (r.status === 401) signIn();  // the sign-in expired or its key was revoked
  const ct = r.headers.get("content-type") || "";
  const body = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

export function badge(value, extra = "") {
  const v = value || "none";
  return el("span", { class: `badge ${v} ${extra}`, "data-value": v, text: value || "—" });
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function fmtPct(v) {
  return v === null || v === undefined ? "—" : `${fmtNum(v, 2)} %`;
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return "—";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h ${m}m ${sec}s` : m ? `${m}m ${sec}s` : `${sec}s`;
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString("sv-SE", { hour12: false }).replace("T", " ");
}

export function nav(active) {
  const link = (href, name, key) =>
    el("a", { href, class: key === active ? "active" : "" }, name);
  document.body.prepend(
    el("header", { class: "top" },
      el("a", { href: "/dashboard/", class: "brand" }, "sipflow"),
      link("/dashboard/", "Sessions", "sessions"),
      link("/dashboard/new", "New session", "new"),
      link("/dashboard/compare", "Compare", "compare"),
      link("/dashboard/schedules", "Schedules", "schedules"),
      link("/dashboard/capacity", "Capacity", "capacity"),
      link("/dashboard/pools", "Pools", "pools"),
      link("/dashboard/admin", "Admin", "admin"),
      el("a", { href: "/docs" }, "API docs"),
      el("span", { id: "whoami", class: "signout muted" }),
      el("button", { id: "signout", onclick: signOut }, "Sign out"),
    ),
  );
  api("/dashboard/api/me").then((me) => {
    const who = $("#whoami");
    who.textContent = `${me.tenant} · ${me.role}`;
    who.dataset.tenant = me.tenant;
    who.dataset.role = me.role;
  }).catch(() => {});
}

async function signOut() {
  await fetch("/dashboard/signout", {
    method: "POST", headers: { "X-CSRF-Token": csrfToken() }, credentials: "same-origin",
  });
  location.assign("/dashboard/signin");
}

export function showError(container, message) {
  container.replaceChildren(el("div", { class: "banner error", role: "alert" }, message));
}

// -- charts ---------------------------------------------------------------------------------
export const PALETTE = ["#1a56db", "#e8590c", "#0ca678", "#ae3ec9", "#f59f00", "#d6336c", "#1098ad"];

export function chartLib() {
  if (!window.Chart) {
    throw new Error("Chart.js is missing: run deploy/setup.sh (npm ci in dashboard/) and reload");
  }
  return window.Chart;
}

export function lineChart(canvas, { title, y, stacked = false }) {
  const Chart = chartLib();
  return new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      spanGaps: true,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        title: { display: true, text: title, align: "start", font: { size: 13, weight: "600" } },
        legend: { position: "bottom", labels: { boxWidth: 12, font: { size: 11 } } },
        tooltip: { enabled: true },
      },
      elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 2, tension: 0 } },
      scales: {
        x: { type: "linear", title: { display: true, text: "seconds since start" }, ticks: { precision: 0 } },
        y: { beginAtZero: true, stacked, title: { display: !!y, text: y || "" } },
      },
    },
  });
}

export function dataset(label, data, color, extra = {}) {
  return { label, data, borderColor: color, backgroundColor: color + "33", ...extra };
}

export function setDatasets(chart, datasets) {
  // Keep dataset objects (and hidden state) when labels match, so a live update does not flicker.
  const old = new Map(chart.data.datasets.map((d) => [d.label, d]));
  chart.data.datasets = datasets.map((d) => {
    const prev = old.get(d.label);
    if (prev) { prev.data = d.data; return prev; }
    return d;
  });
  chart.update("none");
}
