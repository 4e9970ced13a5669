import { $, api, chartLib, el, nav } from "./common.js";

nav("new");
const text = $("#spec"), gutter = $("#gutter"), marks = $("#marks");
const LINE = 20, PAD = 8;
let errors = [];  // [{path, msg, line}]
let checkTimer = 0;

function lineCount() { return text.value.split("\n").length; }

function paint() {
  const bad = new Map();
  for (const e of errors) if (e.line) bad.set(e.line, [...(bad.get(e.line) || []), e]);
  gutter.replaceChildren(...Array.from({ length: lineCount() }, (_, i) => {
    const n = i + 1;
    return el("div", { class: bad.has(n) ? "err" : "", title: bad.has(n) ? bad.get(n).map((e) => e.msg).join("; ") : null }, String(n));
  }));
  gutter.scrollTop = text.scrollTop;
  const top = (line) => PAD + (line - 1) * LINE - text.scrollTop;
  marks.replaceChildren(...[...bad.entries()].flatMap(([line, list]) => [
    el("div", { class: "line-bg", style: `top:${top(line)}px` }),
    el("div", {
      class: "field-error", style: `top:${top(line) + 1}px`, role: "alert",
      "data-line": line, "data-path": list.map((e) => e.path).join(" "),
      title: list.map((e) => `${e.path}: ${e.msg}`).join("\n"),
    }, list.map((e) => (e.path ? `${e.path}: ${e.msg}` : e.msg)).join(" · ")),
  ]));
  $("#errors").replaceChildren(...errors.map((e) => el("li", {
    class: "field-error-item", "data-path": e.path, "data-line": e.line || "",
    onclick: () => goTo(e.line),
  }, `${e.line ? `line ${e.line} · ` : ""}${e.path ? `${e.path}: ` : ""}${e.msg}`)));
}

function goTo(line) {
  if (!line) return;
  const lines = text.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  text.focus();
  text.setSelectionRange(start, start + lines[line - 1].length);
  text.scrollTop = Math.max(0, (line - 5) * LINE);
  paint();
}

async function check() {
  const r = await api("/dashboard/api/spec/check", { method: "POST", text: text.value });
  errors = r.errors;
  paint();
  drawPlan(r.planned_rate);
  return r;
}

// A load profile's planned rate as steps (the last point is its end), before anything starts.
let planChart = null;
function drawPlan(plan) {
  $("#plan").hidden = !plan;
  if (!plan) return;
  const points = plan.map((p) => ({ x: p.at_s, y: p.rate }));
  if (!planChart) {
    planChart = new (chartLib())($("#chart-plan"), {
      type: "line",
      data: { datasets: [] },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { x: { type: "linear", title: { display: true, text: "seconds" } },
          y: { beginAtZero: true, title: { display: true, text: "calls/s" } } } },
    });
  }
  planChart.data.datasets = [{ label: "planned calls/s", data: points, stepped: "before", borderColor: "#1c7ed6", pointRadius: 2 }];
  planChart.update("none");
  document.body.dataset.plan = plan.map((p) => `${p.at_s}:${p.rate}`).join(",");
}

function lineFor(path, lines) {
  while (path) {
    if (lines[path]) return lines[path];
    const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
    path = cut > 0 ? path.slice(0, cut) : "";
  }
  return null;
}

function locPath(loc) {
  let out = "";
  for (const p of loc.filter((p) => p !== "body")) out += typeof p === "number" ? `[${p}]` : (out ? "." : "") + p;
  return out;
}

$("#check").addEventListener("click", async () => {
  const r = await check();
  $("#result").textContent = r.ok ? "The spec is valid." : `${r.errors.length} error(s).`;
});

// The spec's call scripts, callers' and callees', each compiled by POST /v1/scripts/compile
// (side: caller | callee) and shown with a download link.
const SIDES = [
  { side: "caller", role: "callers", pre: "#script-xml", link: "#script-download", box: "#caller-script" },
  { side: "callee", role: "callees", pre: "#callee-script-xml", link: "#callee-script-download", box: "#callee-script" },
];
const scriptUrls = {};
$("#compile").addEventListener("click", async () => {
  const panel = $("#script-panel");
  const r = await check();
  const roles = (r.spec && r.spec.roles) || {};
  const sides = SIDES.filter((s) => roles[s.role] && Array.isArray(roles[s.role].script));
  if (!sides.length) {
    panel.hidden = true;
    $("#result").textContent = "The spec has no roles.callers.script nor roles.callees.script to compile.";
    return;
  }
  const failed = [];
  let steps = 0;
  for (const s of SIDES) $(s.box).hidden = !sides.includes(s);
  for (const s of sides) {
    try {
      const compiled = await api("/v1/scripts/compile", { method: "POST", json: { script: roles[s.role].script, side: s.side } });
      $(s.pre).textContent = compiled.xml;
      if (scriptUrls[s.side]) URL.revokeObjectURL(scriptUrls[s.side]);
      scriptUrls[s.side] = URL.createObjectURL(new Blob([compiled.xml], { type: "application/xml" }));
      $(s.link).href = scriptUrls[s.side];
      steps += compiled.steps.length;
    } catch (e) {
      if (!(e.status === 422 && Array.isArray(e.body.detail))) {
        panel.hidden = true;
        $("#result").textContent = `Cannot compile: ${e.message}`;
        return;
      }
      // loc ["body", "script", i]: the step's place in the spec, under this side's role.
      for (const d of e.body.detail) failed.push({ role: s.role, d });
    }
  }
  if (failed.length) {
    panel.hidden = true;
    const lines = (await check()).lines;
    errors = failed.map(({ role, d }) => {
      const path = `roles.${role}.` + locPath(d.loc || []);
      return { path, msg: String(d.msg).replace(/^Value error, /, ""), line: lineFor(path, lines) };
    });
    paint();
    $("#result").textContent = `The script does not compile: ${errors.length} error(s).`;
    return;
  }
  panel.hidden = false;
  $("#result").textContent = `Compiled ${steps} step(s).`;
});

$("#spec-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#start").disabled = true;
  $("#result").textContent = "checking…";
  try {
    const r = await check();
    if (!r.ok) { $("#result").textContent = `Not started: ${r.errors.length} error(s).`; return; }
    $("#result").textContent = "starting…";
    try {
      // Run again: the copied spec shows passwords as "***"; the API keeps them by reference.
      const url = from ? `/v1/sessions?copy_secrets_from=${encodeURIComponent(from)}` : "/v1/sessions";
      const created = await api(url, { method: "POST", json: r.spec });
      location.href = `/dashboard/sessions/${created.id}`;
    } catch (e) {
      if (e.status === 422 && Array.isArray(e.body.detail)) {
        // The API's own answer: `loc` names the field.
        errors = e.body.detail.map((d) => {
          const path = locPath(d.loc || []);
          return { path, msg: String(d.msg).replace(/^Value error, /, ""), line: lineFor(path, r.lines) };
        });
        paint();
        $("#result").textContent = `The API refused the spec: ${errors.length} error(s).`;
      } else {
        $("#result").textContent = `Not started: ${e.message}`;
      }
    }
  } catch (e) {
    $("#result").textContent = `Cannot check the spec: ${e.message}`;
  } finally {
    $("#start").disabled = false;
  }
});

text.addEventListener("scroll", paint);
text.addEventListener("input", () => {
  paint();
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => check().catch(() => {}), 600);
});
text.addEventListener("keydown", (e) => {
  if (e.key === "Tab") {  // two spaces, as YAML wants
    e.preventDefault();
    text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
  }
});

// -- the flow picker: the built-in flows (GET /v1/flows) and a spec that runs one ----------------
let flows = [];
function flowSpec(f) {
  const params = f.parameters.map((p) => `      ${p.name}: ${p.default}`).join("\n");
  const callees = f.callee_side
    ? "  callees:\n    accounts:\n      - {user: bob, password: secret}\n" : "";
  // A flow with a named party (a transfer target): the party its parameter names, with an account.
  const partyParam = f.party_side ? f.parameters.find((p) => p.name === "transfer_to") : null;
  const parties = f.party_side
    ? `  parties:\n    ${(partyParam && partyParam.default) || "target"}:\n      accounts:\n` +
      "        - {user: carol, password: secret}\n" : "";
  return `name: ${f.name}\ntarget:\n  host: 127.0.0.1\n  port: 5060\nroles:\n${callees}` +
    `  callers:\n    rate: 1\n    max_calls: 10\n    flow:\n      name: ${f.name}\n` +
    (params ? params + "\n" : "") + parties +
    `thresholds:\n  - success_rate >= 100\n  - step_failed_${f.steps[f.steps.length - 1]} == 0\n`;
}
function showFlow() {
  const f = flows.find((x) => x.name === $("#flow-name").value);
  if (!f) return;
  const party = f.party_side && f.party_steps
    ? ` Named party (roles.parties) steps: ${f.party_steps.join(" → ")}.` : "";
  $("#flow-about").textContent =
    `${f.title}. Steps: ${f.steps.join(" → ")}. Success: ${f.success}.${party}`;
  $("#flow-params tbody").replaceChildren(...f.parameters.map((p) => el("tr", { "data-param": p.name },
    el("td", { class: "mono" }, p.name), el("td", { class: "mono" }, String(p.default)), el("td", {}, p.description))));
}
$("#flow-name").addEventListener("change", showFlow);
$("#flow-use").addEventListener("click", () => {
  const f = flows.find((x) => x.name === $("#flow-name").value);
  if (!f) return;
  text.value = flowSpec(f);
  paint();
  check().catch(() => {});
});
api("/v1/flows").then((list) => {
  flows = list;
  $("#flow-name").replaceChildren(...list.map((f) => el("option", { value: f.name }, f.name)));
  showFlow();
}).catch(() => { $("#flows").hidden = true; });

const from = new URLSearchParams(location.search).get("from");
(async () => {
  if (from) {
    try {
      const d = await api(`/v1/sessions/${from}`);
      text.value = JSON.stringify(d.spec, null, 2);  // JSON is YAML
    } catch (e) { /* fall back to the example */ }
  }
  if (!text.value) text.value = await api("/dashboard/api/spec/example");
  paint();
})();
