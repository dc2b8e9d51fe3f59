// Zhida analyst console. Plain DOM, no library, nothing from the network but this server's own routes.
// Every text that comes from a query, the catalog or the log is set with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "zhida.console.token"; // sessionStorage: this browser tab only
const WHO_KEY = "zhida.console.who";
const SVG_NS = "http://www.w3.org/2000/svg";
const SET_NAMES = { dev: "dev", hard_dev: "hard dev" };
const METRICS = [
  ["success@1", "Success@1 (gold precise)", 1],
  ["ndcg@10", "nDCG@10 (gold fuzzy)", 1],
  ["combined", "Combined (mean of both)", 1],
  ["precise_precision", "Precise: precision", 1],
  ["precise_recall", "Precise: recall", 1],
  ["fuzzy_precision", "Fuzzy: precision", 1],
  ["fuzzy_recall", "Fuzzy: recall", 1],
  ["mixed_share", "Mixed share", -1],
  ["accuracy", "Routing accuracy", 1],
];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  served: null, // {t_precise, t_fuzzy, source}
  proposed: { t_precise: 0.7, t_fuzzy: 0.3 },
  query: "",
  explain: null,
  tuning: null, // GET /admin/tuning
  point: null, // GET /admin/tuning/point
  chartSet: "dev",
  labelCats: [],
  labelFrom: null,
  seq: { point: 0, proposed: 0, try: 0 },
};

const $ = (id) => document.getElementById(id);

// h("div", {class: "x", onclick: fn}, "text", child, ...): an element built without HTML parsing
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
const fmtT = (t) => (t ? `t_precise ${fmt(t.t_precise, 2)} · t_fuzzy ${fmt(t.t_fuzzy, 2)}` : "");
const round2 = (x) => Math.round(x * 100) / 100;
const sameT = (a, b) => a && b && Math.abs(a.t_precise - b.t_precise) < 1e-9 && Math.abs(a.t_fuzzy - b.t_fuzzy) < 1e-9;

function banner(text, ok = false) {
  const b = $("banner");
  if (!text) { b.hidden = true; b.textContent = ""; return; }
  b.textContent = text;
  b.className = ok ? "banner ok" : "banner";
  b.hidden = false;
}

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function messageFor(status, body) {
  if (status === 401) return "The admin token was refused (missing or wrong): nothing was changed. Enter the right token above.";
  if (status === 403) return "Admin endpoints are disabled on this server: set admin_token (ZHIDA_ADMIN_TOKEN) and restart it.";
  const e = body && body.error;
  return e ? `${e.message}${e.field ? ` (${e.field})` : ""}` : `the server answered ${status}`;
}

// One call to this server. Admin routes carry the token; public ones (/search, /explain) do not need it.
async function api(path, { method = "GET", body = null, admin = true } = {}) {
  const headers = {};
  if (admin) headers.Authorization = `Bearer ${state.token}`;
  if (body !== null) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === null ? null : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(err instanceof TypeError && admin && /header/i.test(err.message)
      ? "The token has characters an HTTP header cannot carry." : `No answer from the server (${err.message}).`, 0);
  }
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok) throw new ApiError(messageFor(r.status, data), r.status);
  return data;
}

const qs = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined)).toString();

// --- token -------------------------------------------------------------------------------------------
function useToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
}

async function connect() {
  if (!state.token) {
    $("served").textContent = "Not connected: enter the admin token";
    $("token").focus();
    return;
  }
  try {
    await refreshServed(true);
    banner("");
  } catch (err) {
    $("served").textContent = "Not connected";
    banner(err.message);
    return;
  }
  await Promise.allSettled([loadTuning(), loadHistory(), loadTraffic(), loadLabels()]);
  await updateWhatIf();
  if (state.query) await tryQuery(state.query);
}

async function refreshServed(moveSliders) {
  const t = await api("/admin/thresholds");
  state.served = t;
  $("served").textContent = `Serving: ${fmtT(t)} (${t.source})`;
  if (moveSliders) setSliders(t);
  return t;
}

// --- sliders -----------------------------------------------------------------------------------------
function setSliders(t) {
  state.proposed = { t_precise: round2(t.t_precise), t_fuzzy: round2(t.t_fuzzy) };
  $("t-precise").value = state.proposed.t_precise;
  $("t-fuzzy").value = state.proposed.t_fuzzy;
  showSliderValues();
}

function showSliderValues() {
  $("t-precise-out").textContent = fmt(state.proposed.t_precise, 2);
  $("t-fuzzy-out").textContent = fmt(state.proposed.t_fuzzy, 2);
  $("apply").disabled = !state.served || sameT(state.proposed, state.served);
  const th = `(${fmtT(state.proposed)})`;
  document.querySelector("#answer-proposed .th").textContent = th;
}

let sliderTimer = null;
function onSlider(which) {
  let tp = Number($("t-precise").value);
  let tf = Number($("t-fuzzy").value);
  if (tf > tp) { // keep t_fuzzy <= t_precise: the slider being moved pushes the other one
    if (which === "t-precise") tf = tp; else tp = tf;
    $("t-precise").value = tp;
    $("t-fuzzy").value = tf;
  }
  state.proposed = { t_precise: round2(tp), t_fuzzy: round2(tf) };
  showSliderValues();
  clearTimeout(sliderTimer);
  sliderTimer = setTimeout(() => { updateWhatIf(); updateProposedAnswer(); }, 120);
}

// --- what-if figures ---------------------------------------------------------------------------------
async function loadTuning() {
  try {
    state.tuning = await api("/admin/tuning");
  } catch (err) {
    state.tuning = null;
    $("tuning-status").textContent = err.message;
    return;
  }
  const t = state.tuning;
  const sel = $("chart-set");
  sel.replaceChildren();
  if (!t.available) {
    $("tuning-status").textContent = t.message;
    return;
  }
  for (const name of Object.keys(t.sets)) sel.append(h("option", { value: name }, SET_NAMES[name] || name));
  if (!(state.chartSet in t.sets)) state.chartSet = Object.keys(t.sets)[0];
  sel.value = state.chartSet;
  const p = t.provenance || {};
  const sizes = Object.entries(t.sets).map(([n, v]) => `${SET_NAMES[n] || n} ${v.n} queries`).join(", ");
  $("tuning-status").textContent = `Tuner's table: ${sizes}; made ${p.created || "?"} from ${p.index || "?"}` +
    (t.index_matches === false ? " — WARNING: built from another index than the one serving; run `make tune` again." : ".");
}

async function updateWhatIf() {
  if (!state.served) return;
  const seq = ++state.seq.point;
  let pt;
  try {
    pt = await api(`/admin/tuning/point?${qs(state.proposed)}`);
  } catch (err) {
    if (seq === state.seq.point) $("tuning-status").textContent = err.message;
    return;
  }
  if (seq !== state.seq.point) return; // a newer slider position is on its way
  state.point = pt;
  renderMetrics($("metrics"), pt);
  renderCharts();
  renderChanges(pt);
}

function renderMetrics(table, pt) {
  const cap = table.querySelector("caption");
  table.replaceChildren(...(cap ? [cap] : []));
  if (!pt || !pt.available) {
    table.append(h("tbody", {}, h("tr", {}, h("td", {}, pt ? pt.message : "No figures."))));
    return;
  }
  const sets = Object.keys(pt.sets);
  table.append(h("thead", {},
    h("tr", {}, h("th", { scope: "col" }, "Metric"),
      sets.map((n) => [h("th", { scope: "col" }, `${SET_NAMES[n] || n}: served`), h("th", { scope: "col" }, "proposed"),
        h("th", { scope: "col" }, "Δ")]))));
  const body = h("tbody");
  for (const [key, label, better] of METRICS) {
    const cells = sets.map((n) => {
      const a = pt.sets[n].served[key];
      const b = pt.sets[n].proposed[key];
      const d = a === null || b === null ? null : b - a;
      const cls = d === null || Math.abs(d) < 5e-4 ? "" : d * better > 0 ? "up" : "down";
      return [h("td", {}, fmt(a)), h("td", { "data-metric": `${n}:${key}` }, fmt(b)),
        h("td", { class: cls }, d === null ? "–" : `${d >= 0 ? "+" : ""}${d.toFixed(3)}`)];
    });
    body.append(h("tr", {}, h("th", { scope: "row" }, label), cells));
  }
  table.append(body);
}

function renderChanges(pt) {
  const ul = $("changes");
  ul.replaceChildren();
  if (!pt.available) { $("changes-count").textContent = ""; return; }
  const n = pt.changes_total;
  $("changes-count").textContent = n === 0 ? "(none: every judged query keeps its route)"
    : `(${n} judged ${n === 1 ? "query" : "queries"}${pt.changes.length < n ? `, first ${pt.changes.length} shown` : ""})`;
  for (const c of pt.changes) {
    ul.append(h("li", {},
      h("button", { type: "button", class: "link", onclick: () => openQuery(c.query) }, c.query),
      h("span", { class: "why" }, `${SET_NAMES[c.set] || c.set} · gold ${c.gold} · p ${fmt(c.p_precise)} · `),
      h("span", { class: `badge ${c.from}` }, c.from), " → ", h("span", { class: `badge ${c.to}` }, c.to),
      h("span", { class: "why" }, ` metric ${fmt(c.metric_from, 2)} → ${fmt(c.metric_to, 2)}`),
      h("button", { type: "button", onclick: () => openLabel(c.query, "changes", c.gold) }, "Label")));
  }
}

// --- charts (SVG drawn here: two small plots do not need a library) -----------------------------------
function renderCharts() {
  const t = state.tuning;
  for (const id of ["pr", "heat"]) {
    const svg = $(id);
    [...svg.childNodes].forEach((n) => { if (n.nodeName !== "title") n.remove(); });
  }
  if (!t || !t.available || !state.point || !state.point.available) return;
  const set = t.sets[state.chartSet];
  const marks = state.point.sets[state.chartSet].marks;
  drawPR($("pr"), set.pr_curve, marks);
  drawHeat($("heat"), set, state.served, state.proposed);
}

function axes(svg, x0, y0, x1, y1, xlabel, ylabel, xr = [0, 1], yr = [0, 1], at = null) {
  const ax = at ? at.x : (u) => x0 + u * (x1 - x0); // where the tick of fraction u of the range sits
  const ay = at ? at.y : (u) => y0 - u * (y0 - y1);
  svg.append(s("line", { x1: x0, y1: y0, x2: x1, y2: y0, stroke: "#888" }));
  svg.append(s("line", { x1: x0, y1: y0, x2: x0, y2: y1, stroke: "#888" }));
  for (const u of [0, 0.5, 1]) {
    const vx = xr[0] + u * (xr[1] - xr[0]);
    const vy = yr[0] + u * (yr[1] - yr[0]);
    svg.append(s("text", { x: ax(u), y: y0 + 12, "text-anchor": "middle" }, vx.toFixed(2)));
    svg.append(s("text", { x: x0 - 4, y: ay(u) + 3, "text-anchor": "end" }, vy.toFixed(2)));
  }
  svg.append(s("text", { x: (x0 + x1) / 2, y: y0 + 24, "text-anchor": "middle" }, xlabel));
  svg.append(s("text", { x: 10, y: (y0 + y1) / 2, transform: `rotate(-90 10 ${(y0 + y1) / 2})`, "text-anchor": "middle" }, ylabel));
}

// The PR curve, zoomed on the part where the four threshold marks sit (a 0–1 frame squeezes them into a corner).
function drawPR(svg, curve, marks) {
  const [x0, y0, x1, y1] = [46, 206, 310, 10];
  const all = [marks.served.t_precise, marks.served.t_fuzzy, marks.proposed.t_precise, marks.proposed.t_fuzzy];
  const lo = (k) => Math.max(0, Math.floor((Math.min(...all.map((m) => m[k])) - 0.1) * 20) / 20);
  const xr = [lo(0), 1]; const yr = [lo(1), 1];
  const X = (r) => x0 + ((r - xr[0]) / (xr[1] - xr[0])) * (x1 - x0);
  const Y = (p) => y0 - ((p - yr[0]) / (yr[1] - yr[0])) * (y0 - y1);
  axes(svg, x0, y0, x1, y1, "recall (gold precise with p ≥ t)", "precision", xr, yr);
  const clip = s("clipPath", { id: "pr-clip" }, s("rect", { x: x0, y: y1 - 6, width: x1 - x0 + 6, height: y0 - y1 + 6 }));
  svg.append(s("defs", {}, clip));
  const pts = [...curve].sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  svg.append(s("polyline", { points: pts.map(([r, p]) => `${X(r).toFixed(1)},${Y(p).toFixed(1)}`).join(" "),
    fill: "none", stroke: "#1f5fbf", "stroke-width": 2, "clip-path": "url(#pr-clip)" }));
  const mark = ([r, p], shape, filled, color) => {
    const a = { fill: filled ? color : "#fff", stroke: color, "stroke-width": 2 };
    svg.append(shape === "circle" ? s("circle", { cx: X(r), cy: Y(p), r: 5, ...a })
      : s("rect", { x: X(r) - 4.5, y: Y(p) - 4.5, width: 9, height: 9, ...a }));
  };
  mark(marks.served.t_precise, "circle", false, "#444");
  mark(marks.served.t_fuzzy, "rect", false, "#444");
  mark(marks.proposed.t_precise, "circle", true, "#d1342f");
  mark(marks.proposed.t_fuzzy, "rect", true, "#d1342f");
  $("pr-title").textContent = `Precision–recall curve; proposed t_precise at recall ${fmt(marks.proposed.t_precise[0], 2)}, ` +
    `precision ${fmt(marks.proposed.t_precise[1], 2)}`;
}

function viridis(f) {
  const x = Math.min(1, Math.max(0, f)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const a = VIRIDIS[i]; const b = VIRIDIS[i + 1]; const u = x - i;
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * u)).join(",")})`;
}

function drawHeat(svg, set, served, proposed) {
  const [x0, y0, x1, y1] = [42, 206, 258, 10];
  const step = state.tuning.grid_step;
  const n = Math.round(1 / step) + 1;
  const cw = (x1 - x0) / n; const ch = (y0 - y1) / n;
  const vals = set.heatmap.map((c) => c.combined).filter((v) => v !== null).sort((a, b) => a - b);
  const hi = vals.length ? vals[vals.length - 1] : 1;
  const lo = vals.length ? vals[Math.floor(vals.length * 0.1)] : 0; // the worst tenth shares the darkest colour
  for (const c of set.heatmap) {
    if (c.combined === null) continue;
    const i = Math.round(c.t_precise / step); const j = Math.round(c.t_fuzzy / step);
    const cell = s("rect", { x: x0 + i * cw, y: y0 - (j + 1) * ch, width: cw + 0.3, height: ch + 0.3,
      fill: viridis(hi > lo ? (c.combined - lo) / (hi - lo) : 0.5) });
    cell.append(s("title", {}, `t_precise ${c.t_precise.toFixed(2)}, t_fuzzy ${c.t_fuzzy.toFixed(2)}: ${c.combined.toFixed(3)}`));
    svg.append(cell);
  }
  const X = (t) => x0 + (t + step / 2) * (x1 - x0) / (1 + step); // the centre of the cell of threshold t
  const Y = (t) => y0 - (t + step / 2) * (y0 - y1) / (1 + step);
  axes(svg, x0, y0, x1, y1, "t_precise", "t_fuzzy", [0, 1], [0, 1], { x: X, y: Y });
  svg.append(s("circle", { cx: X(served.t_precise), cy: Y(served.t_fuzzy), r: 6, fill: "none", stroke: "#fff", "stroke-width": 2.5 }));
  const px = X(proposed.t_precise); const py = Y(proposed.t_fuzzy);
  svg.append(s("path", { d: `M${px - 5},${py - 5}L${px + 5},${py + 5}M${px - 5},${py + 5}L${px + 5},${py - 5}`,
    stroke: "#d1342f", "stroke-width": 3 }));
  // legend: the colour scale
  for (let k = 0; k < 20; k++) {
    svg.append(s("rect", { x: 266, y: y0 - (k + 1) * (y0 - y1) / 20, width: 12, height: (y0 - y1) / 20 + 0.3, fill: viridis(k / 19) }));
  }
  svg.append(s("text", { x: 281, y: y1 + 8 }, fmt(hi, 2)));
  svg.append(s("text", { x: 281, y: y0 }, `≤${fmt(lo, 2)}`));
  $("heat-title").textContent = `Objective heat map, ${fmt(lo, 2)} to ${fmt(hi, 2)}; proposed point t_precise ` +
    `${fmt(proposed.t_precise, 2)}, t_fuzzy ${fmt(proposed.t_fuzzy, 2)}`;
}

// --- try a query -------------------------------------------------------------------------------------
function openQuery(q) {
  $("q").value = q;
  document.getElementById("try-section").scrollIntoView({ block: "start" });
  tryQuery(q);
}

async function tryQuery(q) {
  q = q.trim();
  if (!q) return;
  state.query = q;
  $("try-label").disabled = false;
  const seq = ++state.seq.try;
  const served = document.querySelector("#answer-served .page");
  served.replaceChildren(h("p", { class: "muted" }, "…"));
  const [ex, page] = await Promise.allSettled([
    api(`/explain?${qs({ q, ...state.proposed })}`, { admin: false }),
    api(`/search?${qs({ q })}`, { admin: false }),
  ]);
  if (seq !== state.seq.try) return;
  if (ex.status === "fulfilled") { state.explain = ex.value; renderExplain(ex.value); } else {
    $("explain").replaceChildren(h("p", { class: "error" }, ex.reason.message));
  }
  if (page.status === "fulfilled") {
    document.querySelector("#answer-served .th").textContent = `(${fmtT(page.value.intent.thresholds)})`;
    served.replaceChildren(renderPage(page.value));
  } else {
    served.replaceChildren(h("p", { class: "error" }, page.reason.message));
  }
  await updateProposedAnswer();
}

async function updateProposedAnswer() {
  if (!state.query) return;
  const seq = ++state.seq.proposed;
  const box = document.querySelector("#answer-proposed .page");
  try {
    const [page, ex] = await Promise.all([
      api(`/admin/search?${qs({ q: state.query, ...state.proposed })}`),
      api(`/explain?${qs({ q: state.query, ...state.proposed })}`, { admin: false }),
    ]);
    if (seq !== state.seq.proposed) return;
    box.replaceChildren(renderPage(page));
    state.explain = ex;
    renderExplain(ex);
  } catch (err) {
    if (seq === state.seq.proposed) box.replaceChildren(h("p", { class: "error" }, err.message));
  }
}

function renderExplain(e) {
  const feats = e.top_features || [];
  const maxAbs = Math.max(1e-9, ...feats.map((f) => Math.abs(f.contribution)));
  const cats = e.categories || [];
  const nm = e.name_match;
  const cues = e.cues;
  const cueText = cues ? Object.entries(cues).filter(([, v]) => v).map(([k, v]) => `${k}: ${v === true ? "yes" : v}`).join(" · ") : "";
  $("explain").replaceChildren(
    h("div", { class: "summary" },
      h("span", {}, "Route now ", h("span", { class: `badge ${e.route.label}`, "data-route": "served" }, e.route.label)),
      h("span", {}, "at proposed ", h("span", { class: `badge ${e.route_at.label}`, "data-route": "proposed" }, e.route_at.label)),
      h("span", {}, "p_precise ", h("strong", { id: "p-precise" }, fmt(e.p_precise, 4))),
      h("span", { class: "muted" }, `logit ${fmt(e.logit, 3)} · served ${fmtT(e.route)}`)),
    h("div", { class: "cols" },
      h("div", {},
        h("h3", {}, "Features that moved the score ", h("span", { class: "count" }, "(→ precise | fuzzy ←)")),
        h("ul", { class: "features" }, feats.map((f) => {
          const bar = h("span", { class: `bar ${f.contribution >= 0 ? "pos" : "neg"}` });
          bar.style.width = `${(50 * Math.abs(f.contribution)) / maxAbs}%`;
          return h("li", {}, h("span", { class: "name", title: f.feature }, f.feature), h("span", { class: "track" }, bar),
            h("span", { class: "val" }, fmt(f.contribution, 3)));
        }))),
      h("div", {},
        h("h3", {}, "Predicted categories"),
        cats.length ? h("div", { class: "chips" }, cats.map((c) => h("span", { class: "chip" }, c.category, h("span", { class: "muted" }, fmt(c.p, 2)))))
          : h("p", { class: "muted" }, "none"),
        h("h3", {}, "Name match"),
        h("p", {}, nm ? `${nm.name} (${nm.reason}, boost ${fmt(nm.boost, 1)}${nm.strong ? ", strong" : ""})` : "none"),
        cueText ? h("p", { class: "muted" }, `Cues: ${cueText}`) : null)));
}

function renderPage(r) {
  const frag = h("div", { class: "answer-page", "data-route": r.intent.label });
  frag.append(h("p", {}, h("span", { class: `badge ${r.intent.label}` }, r.intent.label),
    h("span", { class: "muted" }, ` p ${fmt(r.intent.p_precise, 3)} · ${r.results.length} results · ${fmt(r.took_ms, 1)} ms`)));
  if (r.correction) frag.append(h("p", { class: "muted" }, `Showing ${r.correction.name} (typed ${r.correction.typed})`));
  if (r.read_as) frag.append(h("p", { class: "muted" }, `Read as ${r.read_as}`));
  if (r.not_found) {
    frag.append(h("p", { class: "notfound" }, "Not in the catalog."));
    if (r.did_you_mean.length) frag.append(h("p", {}, "Did you mean: ", r.did_you_mean.map((d) => h("span", { class: "chip" }, d.name))));
  }
  const hit = r.direct_hit;
  if (hit) {
    frag.append(h("div", { class: "hit", role: "group", "aria-label": `Direct hit: ${hit.name}` },
      h("div", { class: "name" }, hit.name),
      h("div", { class: "meta" }, `${hit.category} · ${hit.type} · ${hit.reason}`),
      h("div", { class: "actions" }, hit.actions.map((a) => h("span", { title: a.kind }, a.name)))));
  }
  const byId = Object.fromEntries(r.results.map((x) => [x.id, x]));
  const item = (x) => h("li", {}, h("span", {}, x.name), h("span", { class: "reason" }, `${x.category} · ${x.reason}`));
  const groups = Object.entries(r.groups || {});
  if (groups.length) {
    for (const [cat, ids] of groups) {
      frag.append(h("div", { class: "group" }, h("h4", {}, cat),
        h("ul", { class: "results" }, ids.filter((i) => byId[i]).map((i) => item(byId[i])))));
    }
  } else {
    const rest = r.results.filter((x) => !hit || x.id !== hit.id);
    if (rest.length) frag.append(h("ul", { class: "results" }, rest.map(item)));
  }
  return frag;
}

// --- apply, history, rollback ------------------------------------------------------------------------
async function openConfirm() {
  await updateWhatIf(); // the figures of exactly the position being applied
  const dlg = $("confirm");
  const a = state.served; const b = state.proposed;
  $("confirm-what").textContent = `t_precise ${fmt(a.t_precise, 2)} → ${fmt(b.t_precise, 2)}, ` +
    `t_fuzzy ${fmt(a.t_fuzzy, 2)} → ${fmt(b.t_fuzzy, 2)}. Figures from the tuner's table, before → after:`;
  renderMetrics($("confirm-metrics"), state.point && state.point.available ? state.point
    : { available: false, message: "No tuning table: the figures at both points are unknown (run make tune)." });
  $("confirm-error").textContent = "";
  $("confirm-note").value = "";
  $("confirm-ok").disabled = false;
  dlg.showModal();
}

async function applyProposed() {
  $("confirm-ok").disabled = true;
  const note = $("confirm-note").value.trim();
  try {
    const t = await api("/admin/thresholds", { method: "PUT", body: { ...state.proposed, ...(note ? { note } : {}) } });
    $("confirm").close();
    banner(`Applied: ${fmtT(t)}. Recorded in the history.`, true);
    await afterChange();
  } catch (err) {
    $("confirm-error").textContent = err.message;
    $("confirm-ok").disabled = false;
  }
}

async function rollback(id, point) {
  try {
    const t = await api("/admin/thresholds/rollback", { method: "POST", body: { id, point } });
    banner(`Rolled back to #${id}${point === "before" ? " (before it)" : ""}: ${fmtT(t)}. Recorded in the history.`, true);
    await afterChange();
  } catch (err) {
    banner(err.message);
  }
}

async function afterChange() {
  await refreshServed(true);
  await Promise.allSettled([loadHistory(), updateWhatIf()]);
  if (state.query) await tryQuery(state.query);
}

async function loadHistory() {
  const table = $("history");
  let hst;
  try { hst = await api("/admin/thresholds/history"); } catch (err) { $("history-status").textContent = err.message; return; }
  $("history-status").textContent = hst.total ? `${hst.total} change${hst.total === 1 ? "" : "s"} recorded in ${hst.path}` +
    (hst.damaged ? ` (${hst.damaged} unreadable line(s) skipped)` : "") : "No change recorded yet.";
  table.replaceChildren();
  if (!hst.total) return;
  table.append(h("thead", {}, h("tr", {}, ["#", "When", "Change", "dev combined", "hard dev combined", "Note", ""].map((c) => h("th", { scope: "col" }, c)))));
  const body = h("tbody");
  const oldest = hst.entries[hst.entries.length - 1];
  for (const c of hst.entries) {
    const m = (set) => (c.metrics && c.metrics.before[set] ? `${fmt(c.metrics.before[set].combined)} → ${fmt(c.metrics.after[set].combined)}` : "–");
    const isServed = sameT(c.to, state.served);
    body.append(h("tr", { "data-id": c.id },
      h("td", {}, `#${c.id}`),
      h("td", {}, new Date(c.when).toLocaleString()),
      h("td", {}, `${fmt(c.from.t_precise, 2)}/${fmt(c.from.t_fuzzy, 2)} → ${fmt(c.to.t_precise, 2)}/${fmt(c.to.t_fuzzy, 2)}`,
        c.action === "rollback" ? h("span", { class: "muted" }, ` (rollback to #${c.rollback_of})`) : null),
      h("td", {}, m("dev")), h("td", {}, m("hard_dev")),
      h("td", { class: "note" }, c.note || ""),
      h("td", {},
        h("button", { type: "button", disabled: isServed, "aria-label": `Roll back to #${c.id}`, onclick: () => rollback(c.id, "after") },
          isServed ? "Serving" : "Roll back to this"),
        c === oldest ? h("button", { type: "button", "aria-label": `Restore what #${c.id} replaced`,
          disabled: sameT(c.from, state.served), onclick: () => rollback(c.id, "before") }, "Restore original") : null)));
  }
  table.append(body);
}

// --- traffic -----------------------------------------------------------------------------------------
async function loadTraffic() {
  let t;
  try { t = await api("/admin/traffic"); } catch (err) { $("traffic-status").textContent = err.message; return; }
  const box = $("traffic");
  box.replaceChildren();
  if (!t.available) { $("traffic-status").textContent = t.message; return; }
  $("traffic-status").textContent = `${t.source.queries} queries mined, updated ${t.source.updated} (${t.source.dir}).`;
  const pct = (x) => (x === null ? "–" : `${Math.round(x * 100)}%`);
  const lists = [
    ["top_queries", "Top queries", (r) => `${r.volume} searches · CTR ${pct(r.ctr)}`],
    ["no_hit", "No-hit queries", (r) => `${r.volume} searches · no hit ${pct(r.no_hit_rate)}`],
    ["low_ctr", "Low click-through", (r) => `${r.volume} searches · CTR ${pct(r.ctr)}`],
    ["disagreements", "Behaviour disagrees with the router", (r) => `behaviour ${r.behaviour} · router ${r.router} · ${r.volume}`],
  ];
  for (const [key, title, stat] of lists) {
    const id = `traffic-${key}`;
    const rows = t[key];
    box.append(h("div", {}, h("h3", { id }, title, h("span", { class: "count" }, ` (${rows.length})`)),
      rows.length ? h("ol", { "aria-labelledby": id }, rows.map((r) => h("li", {},
        h("button", { type: "button", class: "link", onclick: () => openQuery(r.query) }, r.query),
        h("span", { class: "stat" }, stat(r)),
        h("button", { type: "button", "aria-label": `Label ${r.query}`,
          onclick: () => openLabel(r.query, `traffic:${key}`, key === "disagreements" ? r.behaviour : null) }, "Label"))))
        : h("p", { class: "muted" }, "none")));
  }
}

// --- labels ------------------------------------------------------------------------------------------
async function loadLabels() {
  let l;
  try { l = await api("/admin/labels"); } catch (err) { $("label-status").textContent = err.message; return; }
  $("labels-waiting").textContent = String(l.waiting);
  const sel = $("label-cat-add");
  if (sel.options.length <= 1) for (const c of l.categories) sel.append(h("option", { value: c }, c));
  $("label-recent").replaceChildren(...l.recent.map((r) => h("li", {},
    h("strong", {}, r.query), ` → ${r.label}`, r.categories.length ? ` [${r.categories.join(", ")}]` : "",
    h("span", { class: "muted" }, ` · ${r.who} · ${new Date(r.when).toLocaleString()} · ${r.waiting ? "waiting" : "included"}`))));
}

function openLabel(query, from, suggested) {
  $("label-query").value = query;
  state.labelFrom = from;
  state.labelCats = [];
  renderLabelCats();
  for (const r of document.querySelectorAll("input[name=label]")) r.checked = suggested ? r.value === suggested : false;
  syncCats();
  $("label-status").textContent = `Labelling “${query}” (from ${from}).`;
  document.getElementById("label-section").scrollIntoView({ block: "start" });
  const first = document.querySelector("input[name=label]:checked") || document.querySelector("input[name=label]");
  first.focus();
}

function renderLabelCats() {
  $("label-cat-chips").replaceChildren(...state.labelCats.map((c, i) => h("span", { class: "chip" }, i === 0 ? `${c} (main)` : c,
    h("button", { type: "button", "aria-label": `Remove ${c}`, onclick: () => { state.labelCats.splice(i, 1); renderLabelCats(); } }, "×"))));
}

function syncCats() {
  const chosen = document.querySelector("input[name=label]:checked");
  $("label-cats").disabled = !chosen || chosen.value === "precise";
}

async function saveLabel(ev) {
  ev.preventDefault();
  const chosen = document.querySelector("input[name=label]:checked");
  const who = $("label-who").value.trim();
  sessionStorage.setItem(WHO_KEY, who);
  const body = { query: $("label-query").value, label: chosen ? chosen.value : "", who,
    categories: chosen && chosen.value !== "precise" ? state.labelCats : [] };
  if (state.labelFrom) body.from = state.labelFrom;
  try {
    const r = await api("/admin/labels", { method: "POST", body });
    $("label-status").textContent = `Saved: ${r.label.query} → ${r.label.label}. ${r.waiting} label${r.waiting === 1 ? "" : "s"} waiting for the next training build.`;
    state.labelFrom = null;
    await loadLabels();
  } catch (err) {
    $("label-status").textContent = err.message;
  }
}

// --- wiring ------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("label-who").value = sessionStorage.getItem(WHO_KEY) || "";
  $("token-form").addEventListener("submit", (ev) => { ev.preventDefault(); useToken($("token").value.trim()); connect(); });
  $("token-forget").addEventListener("click", () => {
    useToken(""); $("token").value = ""; state.served = null;
    $("served").textContent = "Not connected: enter the admin token"; banner("");
  });
  $("try-form").addEventListener("submit", (ev) => { ev.preventDefault(); tryQuery($("q").value); });
  $("try-label").addEventListener("click", () => openLabel(state.query, "try", state.explain ? state.explain.route.label : null));
  $("t-precise").addEventListener("input", () => onSlider("t-precise"));
  $("t-fuzzy").addEventListener("input", () => onSlider("t-fuzzy"));
  $("reset").addEventListener("click", () => { if (state.served) { setSliders(state.served); updateWhatIf(); updateProposedAnswer(); } });
  $("apply").addEventListener("click", openConfirm);
  $("confirm-cancel").addEventListener("click", () => $("confirm").close());
  $("confirm-ok").addEventListener("click", applyProposed);
  $("chart-set").addEventListener("change", (ev) => { state.chartSet = ev.target.value; renderCharts(); });
  for (const r of document.querySelectorAll("input[name=label]")) r.addEventListener("change", syncCats);
  $("label-cat-add-btn").addEventListener("click", () => {
    const c = $("label-cat-add").value;
    if (c && !state.labelCats.includes(c) && state.labelCats.length < 5) { state.labelCats.push(c); renderLabelCats(); }
  });
  $("label-form").addEventListener("submit", saveLabel);
  syncCats();
  showSliderValues();
  connect();
});
