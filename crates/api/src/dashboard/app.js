// Cumulo dashboard. Plain JS, no dependencies: every request goes to this server through a relative
// URL with the user's token; every value from the server is escaped before it reaches the page.
"use strict";

const REFRESH_S = 5;
const TOKEN_KEY = "cumulo.token";
const STATES = ["pending", "launching", "running", "succeeded", "failed", "cancelled"];
const ACTIVE = new Set(["pending", "launching", "running"]);
const STATE_COLOURS = {
  pending: "#d98b06", launching: "#2f6fed", running: "#1e9e5a",
  succeeded: "#9aa3b5", failed: "#d64545", cancelled: "#c3c8d2",
};
const KEEP_JOBS = 500;      // newest jobs kept in the browser
const SHOW_JOBS = 100;      // rows in the table
const FIRST_LOAD_PAGES = 200; // pages of 1000 read on the first load before giving up on the oldest
const MAX_SAMPLES = 720;    // one hour at 5 s

const $ = (id) => document.getElementById(id);

function esc(v) {
  return String(v === undefined || v === null ? "" : v)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// ---- token -----------------------------------------------------------------------------------

function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const t = url.searchParams.get("token");
  if (t) {
    localStorage.setItem(TOKEN_KEY, t.trim());
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + (url.search ? url.search : "") + url.hash);
  }
}

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

class AuthError extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  if (res.status === 401) {
    let reason = "the server refused the token";
    try { reason = (await res.json()).reason || reason; } catch (_) { /* not JSON */ }
    throw new AuthError(reason);
  }
  if (!res.ok) {
    let reason = res.status + " " + res.statusText;
    try { const b = await res.json(); reason = b.reason || reason; } catch (_) { /* not JSON */ }
    throw new Error(path + ": " + reason);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// ---- formatting ------------------------------------------------------------------------------

function money(micro) {
  if (micro === undefined || micro === null) return "–";
  const d = Number(micro) / 1e6;
  const a = Math.abs(d);
  if (a >= 1e9) return "$" + (d / 1e9).toFixed(2) + "B";
  if (a >= 1e6) return "$" + (d / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return "$" + (d / 1e3).toFixed(1) + "k";
  return "$" + d.toFixed(2);
}
function pct(x) { return (100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0) + "%"; }
function gpus(milli) { const g = milli / 1000; return Number.isInteger(g) ? String(g) : g.toFixed(2); }
function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}
function pill(state) { return `<span class="pill st-${esc(state)}">${esc(state)}</span>`; }
function simTag(on) { return on ? '<span class="tag sim">simulated</span>' : ""; }
function bar(fraction, cls, mark) {
  const w = Math.max(0, Math.min(1, fraction || 0)) * 100;
  const m = mark === undefined ? "" : `<i class="mark" style="left:${Math.max(0, Math.min(1, mark)) * 100}%"></i>`;
  return `<div class="bar ${cls || ""}"><span style="width:${w.toFixed(1)}%"></span>${m}</div>`;
}
function table(el, head, rows, emptyText) {
  const th = head.map(([label, cls]) => `<th class="${cls || ""}">${esc(label)}</th>`).join("");
  const body = rows.length
    ? rows.map((r) => "<tr>" + r.map(([html, cls]) => `<td class="${cls || ""}">${html}</td>`).join("") + "</tr>").join("")
    : `<tr><td class="empty" colspan="${head.length}">${esc(emptyText)}</td></tr>`;
  el.innerHTML = `<thead><tr>${th}</tr></thead><tbody>${body}</tbody>`;
}

// ---- /metrics --------------------------------------------------------------------------------

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// ---- jobs kept in the browser ----------------------------------------------------------------

const jobs = new Map();   // id -> JobRecord (newest KEEP_JOBS)
const details = new Map(); // id -> { attempts: n, placement: text }
let tail = null;          // highest id read so far
let firstLoadCapped = false;

function keepNewest() {
  if (jobs.size <= KEEP_JOBS) return;
  const ids = [...jobs.keys()].sort((a, b) => a - b);
  for (const id of ids.slice(0, ids.length - KEEP_JOBS)) { jobs.delete(id); details.delete(id); }
}

async function readNewJobs() {
  let pages = 0;
  const limit = tail === null ? FIRST_LOAD_PAGES : 20;
  for (;;) {
    const q = "v1/jobs?limit=1000" + (tail !== null ? "&after=" + tail : "");
    const page = await api(q);
    for (const j of page.jobs) { jobs.set(j.id, j); tail = tail === null ? j.id : Math.max(tail, j.id); }
    keepNewest();
    pages += 1;
    if (page.next === null || page.next === undefined || page.jobs.length === 0) { firstLoadCapped = false; break; }
    if (pages >= limit) { firstLoadCapped = true; break; }
  }
}

// Jobs shown as active may have moved on: re-read the active states, then ask for each kept job
// that was active and is in none of those lists (it ended).
async function refreshActiveJobs() {
  const seen = new Set();
  const covered = {}; // state -> highest id that state's first page answers for
  for (const state of ACTIVE) {
    const page = await api("v1/jobs?limit=1000&state=" + state);
    for (const j of page.jobs) { seen.add(j.id); if (jobs.has(j.id)) jobs.set(j.id, j); }
    covered[state] = page.next === null || page.next === undefined ? Infinity : page.next;
  }
  const ended = [...jobs.values()]
    .filter((j) => ACTIVE.has(j.state) && !seen.has(j.id) && j.id <= covered[j.state]).slice(0, 50);
  await Promise.all(ended.map(async (j) => {
    try { const d = await api("v1/jobs/" + j.id); jobs.set(j.id, stripDetail(d)); rememberPlacement(d); } catch (_) { /* next time */ }
  }));
}

function stripDetail(d) { const j = Object.assign({}, d); delete j.events; delete j.attempts; return j; }

function describePlacement(p) {
  if (!p || typeof p !== "object" || !p.cluster) return "";
  const nodes = Array.isArray(p.nodes) ? p.nodes : [];
  const first = nodes.length ? nodes[0].node : "";
  const more = nodes.length > 1 ? ` +${nodes.length - 1} nodes` : "";
  return `${p.cluster}${first ? " / " + first : ""}${more}`;
}

function rememberPlacement(d) {
  const attempts = d.attempts || [];
  const last = attempts[attempts.length - 1];
  details.set(d.id, {
    attempts: d.attempt_count,
    placement: last ? describePlacement(last.placement) : "",
    message: last && last.message ? `attempt ${attempts.length}: ${last.message}` : "",
  });
}

async function fillPlacements(rows) {
  const need = rows.filter((j) => j.attempt_count > 0 && (!details.has(j.id) || details.get(j.id).attempts !== j.attempt_count || ACTIVE.has(j.state) && !details.get(j.id).placement)).slice(0, 40);
  await Promise.all(need.map(async (j) => {
    try { rememberPlacement(await api("v1/jobs/" + j.id)); } catch (_) { /* next time */ }
  }));
}

// ---- charts (inline SVG) ---------------------------------------------------------------------

const samples = []; // { t, counts: {state: n} }

function svg(w, h, inner) {
  return `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img">${inner}</svg>`;
}

// Axis ticks: a step of 1, 2 or 5 times a power of ten, at most five steps up to `v` or above it.
function niceTicks(v) {
  const top = Math.max(1, v);
  for (let p = 1; ; p *= 10) {
    for (const m of [1, 2, 5]) {
      const step = m * p, n = Math.ceil(top / step);
      if (n <= 5) return { step, n };
    }
  }
}

function drawQueueChart() {
  const el = $("queue-chart");
  const shown = STATES.filter((s) => s === "pending" || s === "launching" || s === "running");
  const W = 1000, H = 190, L = 44, R = 10, T = 10, B = 24;
  if (samples.length < 2) {
    el.innerHTML = '<div class="empty">collecting samples: the chart starts after two refreshes</div>';
    return;
  }
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t;
  const span = Math.max(1, t1 - t0);
  const ticks = niceTicks(Math.max(...samples.flatMap((s) => shown.map((st) => s.counts[st] || 0))));
  const max = ticks.step * ticks.n;
  const x = (t) => L + (W - L - R) * (t - t0) / span;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  let inner = "";
  for (let i = 0; i <= ticks.n; i++) {
    const v = ticks.step * i, yy = y(v);
    inner += `<line class="axis" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>`;
    inner += `<text x="${L - 6}" y="${yy + 4}" text-anchor="end">${esc(v.toLocaleString())}</text>`;
  }
  inner += `<text x="${L}" y="${H - 6}">${esc(new Date(t0).toLocaleTimeString())}</text>`;
  inner += `<text x="${W - R}" y="${H - 6}" text-anchor="end">${esc(new Date(t1).toLocaleTimeString())}</text>`;
  for (const st of shown) {
    const pts = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.counts[st] || 0).toFixed(1)}`).join(" ");
    inner += `<polyline fill="none" stroke="${STATE_COLOURS[st]}" stroke-width="2" vector-effect="non-scaling-stroke" points="${pts}"/>`;
  }
  const last = samples[samples.length - 1].counts;
  const legend = shown.map((st) => `<span><i style="background:${STATE_COLOURS[st]}"></i>${esc(st)} ${esc(last[st] || 0)}</span>`).join("");
  el.innerHTML = svg(W, H, inner) + `<div class="legend">${legend}</div>`;
}

// rows: [{ label, total, used (fraction 0..1), simulated }]
function drawBars(el, rows, emptyText) {
  if (!rows.length) { el.innerHTML = `<div class="empty">${esc(emptyText)}</div>`; return; }
  const W = 600, rowH = 28, L = 190, R = 120, H = rows.length * rowH + 6;
  let inner = "";
  rows.forEach((r, i) => {
    const y0 = 4 + i * rowH;
    const w = (W - L - R) * Math.max(0, Math.min(1, r.used));
    const colour = r.used >= 0.9 ? "#d64545" : r.used >= 0.6 ? "#d98b06" : "#2f6fed";
    inner += `<text x="0" y="${y0 + 15}">${esc(r.label)}${r.simulated ? " (simulated)" : ""}</text>`;
    inner += `<rect x="${L}" y="${y0 + 4}" width="${W - L - R}" height="14" rx="3" fill="#eceff3"/>`;
    inner += `<rect x="${L}" y="${y0 + 4}" width="${w.toFixed(1)}" height="14" rx="3" fill="${colour}"/>`;
    inner += `<text x="${W - R + 8}" y="${y0 + 15}">${esc(pct(r.used))} of ${esc(r.total)} GPUs</text>`;
  });
  el.innerHTML = `<svg viewBox="0 0 ${W} ${H}" role="img">${inner}</svg>`;
}

function drawUtilisation(metrics, clusters) {
  const gpusBy = {}, usedBy = {};
  for (const m of metrics) {
    const key = (m.labels.provider || "") + "\u0000" + (m.labels.gpu || "");
    if (m.name === "cumulo_gpus") gpusBy[key] = m.value;
    if (m.name === "cumulo_gpu_utilisation") usedBy[key] = m.value;
  }
  const simProvider = {};
  for (const c of clusters) simProvider[c.provider] = (simProvider[c.provider] || false) || c.simulated;
  const byProvider = {}, byModel = {};
  for (const key of Object.keys(gpusBy)) {
    const [provider, model] = key.split("\u0000");
    const total = gpusBy[key], used = (usedBy[key] || 0) * total;
    const p = byProvider[provider] || (byProvider[provider] = { label: provider, total: 0, usedGpus: 0, simulated: !!simProvider[provider] });
    p.total += total; p.usedGpus += used;
    const g = byModel[model] || (byModel[model] = { label: model || "unknown", total: 0, usedGpus: 0, simulated: true });
    g.total += total; g.usedGpus += used; g.simulated = g.simulated && !!simProvider[provider];
  }
  const rows = (o) => Object.values(o).sort((a, b) => b.total - a.total)
    .map((r) => ({ label: r.label, total: r.total, used: r.total ? r.usedGpus / r.total : 0, simulated: r.simulated }));
  drawBars($("util-provider"), rows(byProvider), "no GPUs in the fleet");
  drawBars($("util-model"), rows(byModel), "no GPUs in the fleet");
}

// ---- panels ----------------------------------------------------------------------------------

let stateFilter = "";
let whoami = null;

function drawCards(counts, clusters, metrics) {
  const totalGpus = clusters.reduce((a, c) => a + c.gpus, 0);
  const usedMilli = clusters.reduce((a, c) => a + c.gpus_used_milli, 0);
  const nodes = clusters.reduce((a, c) => a + c.nodes, 0);
  const nodesUp = clusters.reduce((a, c) => a + c.nodes_up, 0);
  const placements = metrics.find((m) => m.name === "cumulo_placements_total");
  const cards = STATES.map((st) => `<div class="card clickable ${stateFilter === st ? "selected" : ""}" data-state="${st}">
      <div class="label">${esc(st)}</div><div class="big" style="color:${STATE_COLOURS[st] === "#c3c8d2" ? "#6b7280" : STATE_COLOURS[st]}">${esc((counts[st] || 0).toLocaleString())}</div>
      <div class="small">${whoami && whoami.role !== "admin" ? "jobs, all tenants" : "jobs"}</div></div>`);
  cards.push(`<div class="card"><div class="label">GPUs in use</div><div class="big">${esc(gpus(usedMilli))}</div>
      <div class="small">of ${esc(totalGpus.toLocaleString())} (${esc(pct(totalGpus ? usedMilli / 1000 / totalGpus : 0))})</div></div>`);
  cards.push(`<div class="card"><div class="label">Nodes up</div><div class="big">${esc(nodesUp.toLocaleString())}</div>
      <div class="small">of ${esc(nodes.toLocaleString())} in ${esc(clusters.length)} clusters</div></div>`);
  if (placements) cards.push(`<div class="card"><div class="label">Placements</div><div class="big">${esc(placements.value.toLocaleString())}</div>
      <div class="small">since this server started</div></div>`);
  $("cards").innerHTML = cards.join("");
  for (const el of $("cards").querySelectorAll(".card.clickable")) {
    el.addEventListener("click", () => { setFilter(stateFilter === el.dataset.state ? "" : el.dataset.state); });
  }
}

function setFilter(state) {
  stateFilter = state;
  $("state-filter").value = state;
  for (const el of $("cards").querySelectorAll(".card.clickable")) el.classList.toggle("selected", el.dataset.state === state);
  refresh();
}

function visibleJobs() {
  return [...jobs.values()].filter((j) => !stateFilter || j.state === stateFilter)
    .sort((a, b) => b.id - a.id).slice(0, SHOW_JOBS);
}

function drawJobs(rows, counts) {
  const simClusters = new Set(lastClusters.filter((c) => c.simulated).map((c) => c.name));
  table($("jobs"), [["id", "num"], ["name"], ["tenant"], ["kind"], ["state"], ["placement"], ["pending reason / message"], ["submitted"]],
    rows.map((j) => {
      const d = details.get(j.id);
      const placement = d && d.placement ? d.placement : "";
      const cluster = placement.split(" / ")[0];
      const spec = j.spec || {};
      return [
        [esc(j.id), "num mono"], [esc(spec.name)], [esc(spec.tenant)], [esc(spec.kind)],
        [pill(j.state) + (j.cancel_requested ? ' <span class="hint">cancel asked</span>' : "")],
        [placement ? `<span class="mono">${esc(placement)}</span>${simTag(simClusters.has(cluster))}` : '<span class="hint">–</span>'],
        [esc(j.pending_reason || (d && j.state !== "pending" ? d.message : "") || ""), "reason"],
        [`<span title="${esc(j.submitted_at)}">${esc(ago(j.submitted_at))}</span>`],
      ];
    }), stateFilter ? `no ${stateFilter} jobs among the newest ${KEEP_JOBS}` : "no jobs yet: submit one with cumulo submit JOB.yaml");
  const total = STATES.reduce((a, s) => a + (counts[s] || 0), 0);
  const matching = stateFilter ? (counts[stateFilter] || 0) : total;
  const own = whoami && whoami.role !== "admin";
  $("jobs-hint").textContent = (own ? `newest ${rows.length} of tenant ${whoami.tenant}` : `newest ${rows.length} of ${matching.toLocaleString()}`) +
    (firstLoadCapped ? " (still reading the store's jobs page by page: the newest may not be shown yet)" : "");
}

let lastClusters = [];

function drawClusters(clusters) {
  table($("clusters"), [["cluster"], ["provider"], ["region"], ["capacity"], ["driver"], ["status"], ["nodes up", "num"], ["GPU use"], ["vCPUs", "num"]],
    clusters.map((c) => {
      const f = c.gpus ? c.gpus_used_milli / 1000 / c.gpus : 0;
      const cls = f >= 0.9 ? "bad" : f >= 0.6 ? "warn" : "";
      return [
        [`<b>${esc(c.name)}</b>${simTag(c.simulated)}`], [esc(c.provider)], [esc(c.region)], [esc(c.capacity)], [esc(c.driver)],
        [c.status === "up" ? '<span class="pill st-running">up</span>' : `<span class="tag down">${esc(c.status)}</span>`],
        [`${esc(c.nodes_up)} / ${esc(c.nodes)}`, "num"],
        [c.gpus ? `<div class="barcell">${bar(f, cls)}<span class="v">${esc(gpus(c.gpus_used_milli))} / ${esc(c.gpus)}</span></div>` : '<span class="hint">no GPUs</span>'],
        [esc(c.vcpus.toLocaleString()), "num"],
      ];
    }), "no clusters configured");
}

function drawNodes(nodes) {
  const shown = nodes.slice().sort((a, b) => (b.gpus_used_milli - a.gpus_used_milli) || a.name.localeCompare(b.name)).slice(0, 300);
  const busy = nodes.filter((n) => n.gpus_used_milli > 0 || n.cpus_used_milli > 0).length;
  $("nodes-hint").textContent = `${nodes.length} nodes, ${busy} in use` + (shown.length < nodes.length ? `; the ${shown.length} busiest shown` : "");
  table($("nodes"), [["node"], ["cluster"], ["zone"], ["state"], ["GPU"], ["GPU use"], ["CPU use"], ["memory", "num"]],
    shown.map((n) => {
      const gf = n.gpus ? n.gpus_used_milli / 1000 / n.gpus : 0;
      const cf = n.vcpus ? n.cpus_used_milli / 1000 / n.vcpus : 0;
      return [
        [`<span class="mono">${esc(n.name)}</span>${simTag(n.simulated)}`], [esc(n.cluster)], [esc(n.zone)],
        [n.state === "up" ? esc(n.state) : `<span class="tag down">${esc(n.state)}</span>`], [esc(n.gpu || "–")],
        [n.gpus ? `<div class="barcell">${bar(gf)}<span class="v">${esc(gpus(n.gpus_used_milli))} / ${esc(n.gpus)}</span></div>` : '<span class="hint">–</span>'],
        [`<div class="barcell">${bar(cf, "ok")}<span class="v">${esc(gpus(n.cpus_used_milli))} / ${esc(n.vcpus)}</span></div>`],
        [esc((n.memory_mib / 1024).toFixed(0)) + " GiB", "num"],
      ];
    }), "no nodes");
}

// Burn-down as the server computes it (GET /v1/contracts/burn-down: the portfolio's own schedule,
// committed x value delivered so far / value delivered over the term, against metered usage), so
// the dashboard tells the same story as `cumulo contracts` and `cumulo portfolio burn-down`.
function drawContracts(burn) {
  const list = burn && Array.isArray(burn.contracts) ? burn.contracts : [];
  const illustrative = !!(burn && burn.illustrative);
  $("contracts-hint").innerHTML = (illustrative ? '<span class="tag ill">illustrative</span> demo portfolio, not real contracts; ' : "") +
    "consumed = usage metered by this server under each contract; scheduled = the portfolio's burn schedule by now (follows delivered capacity)";
  table($("contracts"), [["contract"], ["provider"], ["term"], ["committed", "num"], ["consumed", "num"], ["scheduled by now", "num"], ["burn-down"], ["status"]],
    list.map((c) => {
      const committed = Number(c.committed || 0);
      const consumed = Number(c.consumed || 0);
      const scheduled = Number(c.scheduled || 0);
      const state = c.status ? c.status.state : "";
      const cls = state === "on-schedule" || state === "ahead" ? "ok" : state === "behind" ? (c.status.bps >= 3000 ? "bad" : "warn") : "";
      const tagCls = cls === "ok" ? "st-running" : cls === "warn" ? "st-pending" : cls === "bad" ? "st-failed" : "st-cancelled";
      const f = committed ? consumed / committed : 0;
      return [
        [`<b>${esc(c.contract)}</b>${illustrative ? '<span class="tag ill">illustrative</span>' : ""}`], [esc(c.provider)],
        [`<span class="mono">${esc(c.term)}</span>`],
        [esc(money(committed)), "num"], [esc(money(consumed)), "num"], [esc(money(scheduled)), "num"],
        [`<div class="barcell">${bar(f, cls, committed ? scheduled / committed : 0)}<span class="v">${esc(pct(f))}</span></div>`],
        [`<span class="pill ${tagCls}">${esc(c.status_text)}</span>`],
      ];
    }), "no contracts in the portfolio");
}

// ---- refresh loop ----------------------------------------------------------------------------

let timer = null;
let busy = false;

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const [metricsText, clusters, nodes, burn] = await Promise.all([
      api("metrics"), api("v1/clusters"), api("v1/nodes"),
      api("v1/contracts/burn-down").catch(() => null),
    ]);
    await readNewJobs();
    await refreshActiveJobs();
    const metrics = parseMetrics(metricsText);
    const counts = {};
    for (const m of metrics) if (m.name === "cumulo_jobs") counts[m.labels.state] = m.value;
    samples.push({ t: Date.now(), counts });
    if (samples.length > MAX_SAMPLES) samples.shift();
    lastClusters = clusters;

    const sim = clusters.filter((c) => c.simulated).map((c) => c.name);
    const banner = $("sim-banner");
    banner.hidden = sim.length === 0;
    banner.textContent = sim.length
      ? `Simulated clusters: ${sim.join(", ")}. Nothing runs on them; their nodes and GPU use come from the simulated driver.`
      : "";

    const rows = visibleJobs();
    await fillPlacements(rows);
    drawCards(counts, clusters, metrics);
    drawQueueChart();
    drawUtilisation(metrics, clusters);
    drawJobs(rows, counts);
    drawClusters(clusters);
    drawNodes(nodes);
    drawContracts(burn);
    $("status").textContent = "connected";
    $("status").classList.remove("bad");
    $("updated").textContent = "Last update " + new Date().toLocaleTimeString() + ".";
  } catch (e) {
    if (e instanceof AuthError) { localStorage.removeItem(TOKEN_KEY); showLogin(e.message); }
    else { $("status").textContent = "refresh failed: " + e.message; $("status").classList.add("bad"); }
  } finally {
    busy = false;
  }
}

async function start() {
  $("login").hidden = true;
  try {
    const me = await api("v1/whoami");
    whoami = me;
    $("who").textContent = `${me.name} · tenant ${me.tenant} · ${me.role}`;
  } catch (e) {
    if (e instanceof AuthError) { localStorage.removeItem(TOKEN_KEY); showLogin(e.message); return; }
    $("status").textContent = "cannot reach the server: " + e.message;
    $("status").classList.add("bad");
  }
  $("main").hidden = false;
  $("signout").hidden = false;
  await refresh();
  if (timer === null) timer = setInterval(refresh, REFRESH_S * 1000);
}

function showLogin(message) {
  if (timer !== null) { clearInterval(timer); timer = null; }
  $("main").hidden = true;
  $("signout").hidden = true;
  $("login").hidden = false;
  $("who").textContent = "";
  $("status").textContent = "not connected";
  $("login-error").textContent = message || "";
  $("token-input").focus();
}

function main() {
  takeTokenFromUrl();
  const base = new URL(".", window.location.href);
  $("server").textContent = base.origin + base.pathname.replace(/\/$/, "");
  $("interval").textContent = String(REFRESH_S);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) { $("login-error").textContent = "the token is empty: paste the value that starts with cum_"; return; }
    localStorage.setItem(TOKEN_KEY, t);
    $("token-input").value = "";
    start();
  });
  $("signout").addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); showLogin(""); });
  $("state-filter").addEventListener("change", (ev) => setFilter(ev.target.value));
  if (token()) start(); else showLogin("");
}

main();
