// Cumulo dashboard. Plain JS, no dependencies: every request goes to this server through a relative
// URL with the user's token; every value from the server is escaped before it reaches the page.
// Views live in the URL's fragment (#/, #/jobs?state=running, #/jobs/42, #/costs, #/fleet), so a
// job page has its own URL and works behind a path-prefix proxy.
"use strict";

const REFRESH_S = 5;
const TOKEN_KEY = "cumulo.token";
const STATES = ["pending", "launching", "running", "succeeded", "failed", "cancelled"];
const ACTIVE = new Set(["pending", "launching", "running"]);
const STATE_COLOURS = {
  pending: "#d98b06", launching: "#2f6fed", running: "#1e9e5a",
  succeeded: "#9aa3b5", failed: "#d64545", cancelled: "#c3c8d2",
};
const PALETTE = ["#2f6fed", "#1e9e5a", "#d98b06", "#d64545", "#7c3aed", "#0891b2", "#be185d", "#65a30d", "#9aa3b5", "#92400e"];
const PAGE = 50;             // jobs per page
const MAX_LOG = 1 << 20;     // characters of log kept in the page

const $ = (id) => document.getElementById(id);

function esc(v) {
  return String(v === undefined || v === null ? "" : v)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// ---- token -----------------------------------------------------------------------------------

// `cumulo up` prints a link with `#token=...` (a fragment never reaches the server's logs); an older
// `?token=` works too. Either is stored and removed from the address bar.
function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  let t = url.searchParams.get("token");
  if (t) url.searchParams.delete("token");
  const m = url.hash.match(/^#token=([^&]+)/);
  if (m) { t = decodeURIComponent(m[1]); url.hash = "#/"; }
  if (t) {
    localStorage.setItem(TOKEN_KEY, t.trim());
    history.replaceState(null, "", url.pathname + url.search + (url.hash || "#/"));
  }
}

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

class AuthError extends Error {}

async function failure(res, path) {
  let reason = res.status + " " + res.statusText;
  try { const b = await res.json(); reason = b.reason || reason; } catch (_) { /* not JSON */ }
  if (res.status === 401) return new AuthError(reason);
  const e = new Error(path + ": " + reason);
  e.status = res.status;
  e.reason = reason;
  return e;
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  if (!res.ok) throw await failure(res, path);
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

async function apiPost(path) {
  const res = await fetch(path, { method: "POST", headers: { Authorization: "Bearer " + token() } });
  if (!res.ok) throw await failure(res, path);
  return res.json();
}

// ---- formatting (the CLI's money format: $38,000.00, $1.75B, $6.16/h) ------------------------

function grouped(n) { return Math.trunc(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
function usd(dollars) {
  if (dollars === undefined || dollars === null || isNaN(dollars)) return "–";
  const cents = Math.round(Math.abs(dollars) * 100);
  return (dollars < 0 && cents ? "-" : "") + "$" + grouped(Math.floor(cents / 100)) + "." + String(cents % 100).padStart(2, "0");
}
function usdShort(dollars) {
  const a = Math.abs(dollars);
  if (a >= 1e9) return (dollars < 0 ? "-" : "") + "$" + grouped(Math.floor(a / 1e9)) + "." + String(Math.round(a / 1e7) % 100).padStart(2, "0") + "B";
  if (a >= 1e6) return (dollars < 0 ? "-" : "") + "$" + grouped(Math.floor(a / 1e6)) + "." + String(Math.round(a / 1e4) % 100).padStart(2, "0") + "M";
  return usd(dollars);
}
function micro(m) { return m === undefined || m === null ? null : Number(m) / 1e6; }
function perHour(m) {
  const d = micro(m);
  if (d === null) return "–";
  if (d !== 0 && Math.abs(d) < 1) return "$" + d.toFixed(4).replace(/0{1,2}$/, "") + "/h";
  return usd(d) + "/h";
}
function pct(x) { return (100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0) + "%"; }
function gpus(milli) { const g = milli / 1000; return Number.isInteger(g) ? String(g) : g.toFixed(2); }
function hours(seconds) { return (seconds / 3600).toFixed(2); }
function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}
// A date and time the reader can place: `2026-12-05 09:12:03` in the browser's zone, UTC on hover.
function when(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return esc(iso);
  const p = (n) => String(n).padStart(2, "0");
  const local = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return `<span class="mono" title="${esc(d.toISOString())}">${esc(local)}</span>`;
}
function pill(state) { return `<span class="pill st-${esc(state)}">${esc(state)}</span>`; }
function simTag(on) { return on ? '<span class="tag sim">simulated</span>' : ""; }
function bar(fraction, cls, mark) {
  const w = Math.max(0, Math.min(1, fraction || 0)) * 100;
  const m = mark === undefined ? "" : `<i class="mark" style="left:${Math.max(0, Math.min(1, mark)) * 100}%"></i>`;
  return `<div class="bar ${cls || ""}"><span style="width:${w.toFixed(1)}%"></span>${m}</div>`;
}
function table(el, head, rows, emptyText, rowAttrs) {
  const th = head.map(([label, cls]) => `<th class="${cls || ""}">${esc(label)}</th>`).join("");
  const body = rows.length
    ? rows.map((r, i) => `<tr ${rowAttrs ? rowAttrs(i) : ""}>` + r.map(([html, cls]) => `<td class="${cls || ""}">${html}</td>`).join("") + "</tr>").join("")
    : `<tr><td class="empty" colspan="${head.length}">${esc(emptyText)}</td></tr>`;
  el.innerHTML = `<thead><tr>${th}</tr></thead><tbody>${body}</tbody>`;
}
function resources(spec) {
  const r = (spec.resources || [])[0] || {};
  const a = r.accelerators;
  let per;
  if (a && typeof a === "object") {
    const sel = a.selector || {};
    const models = Array.isArray(sel.models) ? sel.models.join("|") : (sel.min_memory_gb ? `any≥${sel.min_memory_gb}GB` : "GPU");
    per = `${models}:${a.per_node !== undefined ? gpus(a.per_node) : ""}`;
  } else {
    per = `${(r.cpus_milli || 1000) / 1000} vCPU`;
  }
  return (spec.num_nodes > 1 ? `${spec.num_nodes} × ` : "") + per;
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

// ---- charts (inline SVG) ---------------------------------------------------------------------

// Axis ticks: a step of 1, 2 or 5 times a power of ten, at most five steps up to `v` or above it.
function niceTicks(v) {
  const top = v > 0 ? v : 1;
  for (let p = Math.pow(10, Math.floor(Math.log10(top)) - 1); ; p *= 10) {
    for (const m of [1, 2, 5]) {
      const step = m * p, n = Math.ceil(top / step - 1e-9);
      if (n <= 5) return { step, n: Math.max(1, n) };
    }
  }
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms), p = (n) => String(n).padStart(2, "0");
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  if (spanMs > 36 * 3600e3) return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}`;
  return spanMs < 3600e3 ? `${hm}:${p(d.getSeconds())}` : hm;
}

// series: [{ label, colour, points: [[ms, value], ...] }]; opts: { since, until, format, max }
function drawLines(el, series, opts) {
  const withData = series.filter((s) => s.points.length > 0);
  if (!withData.length) {
    el.innerHTML = `<div class="empty">${esc(opts.empty || "no samples in this range yet: the server samples every 15 s")}</div>`;
    return;
  }
  const W = 600, H = 200, L = 62, R = 8, T = 8, B = 22;
  // The axis starts at the first sample when the server has less history than the range.
  const first = Math.min(...withData.map((s) => s.points[0][0]));
  const t0 = Math.max(opts.since, first), t1 = opts.until, span = Math.max(1, t1 - t0);
  const top = opts.max !== undefined ? opts.max : Math.max(...withData.flatMap((s) => s.points.map((p) => p[1])));
  const ticks = niceTicks(top);
  const max = opts.max !== undefined ? opts.max : ticks.step * ticks.n;
  const x = (t) => L + (W - L - R) * (t - t0) / span;
  const y = (v) => T + (H - T - B) * (1 - v / (max || 1));
  const fmt = opts.format || ((v) => v.toLocaleString());
  let inner = "";
  const n = opts.max !== undefined ? 4 : ticks.n;
  for (let i = 0; i <= n; i++) {
    const v = max * i / n, yy = y(v);
    inner += `<line class="axis" x1="${L}" x2="${W - R}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}"/>`;
    inner += `<text x="${L - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${esc(fmt(v))}</text>`;
  }
  inner += `<text x="${L}" y="${H - 5}">${esc(timeLabel(t0, span))}</text>`;
  inner += `<text x="${W - R}" y="${H - 5}" text-anchor="end">${esc(timeLabel(t1, span))}</text>`;
  for (const s of withData) {
    const pts = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    if (s.points.length === 1) {
      const [px, py] = pts.split(",");
      inner += `<circle cx="${px}" cy="${py}" r="3" fill="${s.colour}"/>`;
    } else {
      inner += `<polyline fill="none" stroke="${s.colour}" stroke-width="2" vector-effect="non-scaling-stroke" ${s.dash ? 'stroke-dasharray="5 4"' : ""} points="${pts}"/>`;
    }
  }
  const legend = series.map((s) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    return `<span><i style="background:${s.colour}"></i>${esc(s.label)} <b>${last === null ? "–" : esc(fmt(last))}</b></span>`;
  }).join("");
  el.innerHTML = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(opts.title || "chart")}">${inner}</svg><div class="legend">${legend}</div>`;
}

// rows: [{ label, total, used (fraction 0..1), simulated }]
function drawBars(el, rows, emptyText) {
  if (!rows.length) { el.innerHTML = `<div class="empty">${esc(emptyText)}</div>`; return; }
  el.innerHTML = rows.map((r) => {
    const cls = r.used >= 0.9 ? "bad" : r.used >= 0.6 ? "warn" : "";
    return `<div class="hbar"><div class="hl">${esc(r.label)}${simTag(r.simulated)}</div>${bar(r.used, cls)}<div class="hv">${esc(pct(r.used))} of ${esc(r.total.toLocaleString())} GPUs</div></div>`;
  }).join("");
}

// ---- shared state ----------------------------------------------------------------------------

let whoami = null;
let clusters = [];
let tenants = [];
const historyCache = {};

async function history(range) {
  const h = await api("v1/history?range=" + encodeURIComponent(range));
  historyCache[range] = h;
  return h;
}

function seriesOf(h, metric, colours) {
  const out = (h.series || []).filter((s) => s.metric === metric)
    .map((s, i) => ({ label: s.label, colour: (colours && colours[s.label]) || PALETTE[i % PALETTE.length], points: s.points }));
  return out;
}

function span(h) { return { since: Date.parse(h.since), until: Date.parse(h.until) }; }

function simBanner() {
  const sim = clusters.filter((c) => c.simulated).map((c) => c.name);
  const banner = $("sim-banner");
  banner.hidden = sim.length === 0;
  banner.textContent = sim.length
    ? `Simulated clusters: ${sim.join(", ")}. Nothing runs on them: a job there "runs" for its duration on a faster clock (the demo fleet's: ten minutes a second).`
    : "";
}

function canCancel(job) {
  if (!whoami || !ACTIVE.has(job.state) || job.cancel_requested) return false;
  return whoami.role === "admin" || (whoami.role === "member" && whoami.tenant === job.spec.tenant);
}

// ---- overview --------------------------------------------------------------------------------

function drawCards(counts, metrics) {
  const totalGpus = clusters.reduce((a, c) => a + c.gpus, 0);
  const usedMilli = clusters.reduce((a, c) => a + c.gpus_used_milli, 0);
  const nodes = clusters.reduce((a, c) => a + c.nodes, 0);
  const nodesUp = clusters.reduce((a, c) => a + c.nodes_up, 0);
  const placements = metrics.find((m) => m.name === "cumulo_placements_total");
  const cards = STATES.map((st) => `<a class="card clickable" href="#/jobs?state=${st}">
      <div class="label">${esc(st)}</div><div class="big" style="color:${st === "cancelled" ? "#6b7280" : STATE_COLOURS[st]}">${esc((counts[st] || 0).toLocaleString())}</div>
      <div class="small">${whoami && whoami.role !== "admin" ? "jobs, all tenants" : "jobs"}</div></a>`);
  cards.push(`<div class="card"><div class="label">GPUs in use</div><div class="big">${esc(gpus(usedMilli))}</div>
      <div class="small">of ${esc(totalGpus.toLocaleString())} (${esc(pct(totalGpus ? usedMilli / 1000 / totalGpus : 0))})</div></div>`);
  cards.push(`<div class="card"><div class="label">Nodes up</div><div class="big">${esc(nodesUp.toLocaleString())}</div>
      <div class="small">of ${esc(nodes.toLocaleString())} in ${esc(clusters.length)} clusters</div></div>`);
  if (placements) cards.push(`<div class="card"><div class="label">Placements</div><div class="big">${esc(placements.value.toLocaleString())}</div>
      <div class="small">since this server started</div></div>`);
  $("cards").innerHTML = cards.join("");
}

function drawUtilisationNow(metrics) {
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

function jobRows(list) {
  const simClusters = new Set(clusters.filter((c) => c.simulated).map((c) => c.name));
  return list.map((j) => {
    const spec = j.spec || {};
    const cluster = placementCache.get(j.id + ":" + j.attempt_count) || "";
    return [
      [`<a href="#/jobs/${esc(j.id)}">${esc(j.id)}</a>`, "num mono"],
      [`<a href="#/jobs/${esc(j.id)}">${esc(spec.name)}</a>`, "name"], [esc(spec.tenant)], [esc(spec.kind), "opt"],
      [pill(j.state) + (j.cancel_requested && ACTIVE.has(j.state) ? ' <span class="hint">cancel asked</span>' : "")],
      [cluster ? `<span class="mono">${esc(cluster)}</span>${simTag(simClusters.has(cluster))}` : '<span class="hint">–</span>', "opt"],
      [esc(resources(spec)), "mono opt"],
      [esc(j.pending_reason || ""), "reason opt"],
      [`<span title="${esc(j.submitted_at)}">${esc(ago(j.submitted_at))}</span>`, "opt"],
    ];
  });
}
// Columns marked `opt` give way on a phone (the job page has them all).
const JOB_HEAD = [["id", "num"], ["name"], ["tenant"], ["kind", "opt"], ["state"], ["cluster", "opt"], ["resources", "opt"], ["pending reason", "opt"], ["submitted", "opt"]];

// The cluster of each job's latest attempt, asked once per (job, attempt count).
const placementCache = new Map();
async function fillPlacements(list) {
  const need = list.filter((j) => j.attempt_count > 0 && !placementCache.has(j.id + ":" + j.attempt_count)).slice(0, 60);
  await Promise.all(need.map(async (j) => {
    try {
      const d = await api("v1/jobs/" + j.id);
      const last = (d.attempts || [])[d.attempts.length - 1];
      placementCache.set(j.id + ":" + j.attempt_count, last && last.placement ? last.placement.cluster || "" : "");
    } catch (_) { /* next time */ }
  }));
}

function clickableRows(el, list) {
  el.querySelectorAll("tbody tr").forEach((tr, i) => {
    if (!list[i]) return;
    tr.classList.add("link");
    tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.hash = "#/jobs/" + list[i].id; });
  });
}

async function refreshOverview() {
  const range = $("range").value;
  const [metricsText, h, recent] = await Promise.all([api("metrics"), history(range), api("v1/jobs?order=newest&limit=8")]);
  const metrics = parseMetrics(metricsText);
  const counts = {};
  for (const m of metrics) if (m.name === "cumulo_jobs") counts[m.labels.state] = m.value;
  drawCards(counts, metrics);
  drawLines($("queue-chart"), seriesOf(h, "jobs", STATE_COLOURS), Object.assign(span(h), { title: "queue depth" }));
  drawLines($("util-chart"), seriesOf(h, "gpu_utilisation"), Object.assign(span(h), { max: 1, format: pct, title: "GPU utilisation" }));
  drawUtilisationNow(metrics);
  await fillPlacements(recent.jobs);
  table($("recent-jobs"), JOB_HEAD, jobRows(recent.jobs), "no jobs yet: submit one with cumulo submit JOB.yaml");
  clickableRows($("recent-jobs"), recent.jobs);
}

// ---- jobs list -------------------------------------------------------------------------------

const FILTERS = ["q", "state", "tenant", "kind", "cluster"];
let olderStack = []; // the `after` cursors of the pages before this one

function filterParams() {
  const params = new URLSearchParams(route().query);
  const out = {};
  for (const f of FILTERS) if (params.get(f)) out[f] = params.get(f);
  if (params.get("after")) out.after = params.get("after");
  return out;
}

function setFilterParams(p) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v) q.set(k, v);
  const text = q.toString();
  location.hash = "#/jobs" + (text ? "?" + text : "");
}

function fillSelect(el, values, anyText) {
  const current = el.value;
  el.innerHTML = `<option value="">${esc(anyText)}</option>` + values.map((v) => `<option>${esc(v)}</option>`).join("");
  el.value = values.includes(current) ? current : "";
}

async function refreshJobs() {
  const p = filterParams();
  fillSelect($("f-state"), STATES, "any state");
  fillSelect($("f-tenant"), tenants.map((t) => t.name), "any tenant");
  fillSelect($("f-cluster"), clusters.map((c) => c.name), "any cluster");
  for (const f of FILTERS) { const el = $("f-" + f); if (document.activeElement !== el) el.value = p[f] || ""; }
  const q = new URLSearchParams({ order: "newest", limit: String(PAGE) });
  for (const f of FILTERS) if (p[f]) q.set(f, p[f]);
  if (p.after) q.set("after", p.after);
  const page = await api("v1/jobs?" + q.toString());
  await fillPlacements(page.jobs);
  const filtered = FILTERS.some((f) => p[f]);
  table($("jobs"), JOB_HEAD, jobRows(page.jobs), filtered ? "no jobs match these filters" : "no jobs yet: submit one with cumulo submit JOB.yaml");
  clickableRows($("jobs"), page.jobs);
  const own = whoami && whoami.role !== "admin" ? ` (tenant ${whoami.tenant} only)` : "";
  $("jobs-hint").textContent = "newest first" + own;
  const first = page.jobs.length ? page.jobs[0].id : null, last = page.jobs.length ? page.jobs[page.jobs.length - 1].id : null;
  $("page-info").textContent = page.jobs.length ? `ids ${first}…${last}` + (p.after ? "" : " (newest)") : "";
  $("page-older").disabled = page.next === null || page.next === undefined;
  $("page-older").dataset.next = page.next === null || page.next === undefined ? "" : String(page.next);
  $("page-newer").disabled = !p.after;
}

function bindFilters() {
  const apply = () => {
    const p = {};
    for (const f of FILTERS) p[f] = $("f-" + f).value.trim();
    olderStack = [];
    setFilterParams(p);
  };
  for (const f of ["state", "tenant", "kind", "cluster"]) $("f-" + f).addEventListener("change", apply);
  let typing = null;
  $("f-q").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 300); });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
  $("f-clear").addEventListener("click", () => { olderStack = []; setFilterParams({}); });
  $("page-older").addEventListener("click", () => {
    const p = filterParams();
    olderStack.push(p.after || "");
    p.after = $("page-older").dataset.next;
    setFilterParams(p);
  });
  $("page-newer").addEventListener("click", () => {
    const p = filterParams();
    p.after = olderStack.length ? olderStack.pop() : "";
    setFilterParams(p);
  });
}

// ---- one job ---------------------------------------------------------------------------------

let log = null; // { job, attempt, controller }

function stopLog() {
  if (log && log.controller) log.controller.abort();
  log = null;
}

async function followLog(id, attempt) {
  stopLog();
  const controller = new AbortController();
  log = { job: id, attempt, controller };
  const pre = $("job-log");
  pre.textContent = "";
  $("log-hint").textContent = `attempt ${attempt}, following`;
  try {
    const res = await fetch(`v1/jobs/${id}/logs?follow=true&attempt=${attempt}`,
      { headers: { Authorization: "Bearer " + token() }, signal: controller.signal, cache: "no-store" });
    if (!res.ok) {
      const e = await failure(res, "log");
      $("log-hint").textContent = e.reason || e.message;
      if (log && log.controller === controller) log.ended = true;
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let text = pre.textContent + decoder.decode(value, { stream: true });
      if (text.length > MAX_LOG) text = "[… earlier output dropped …]\n" + text.slice(text.length - MAX_LOG);
      pre.textContent = text;
      if ($("log-follow").checked) pre.scrollTop = pre.scrollHeight;
    }
    $("log-hint").textContent = `attempt ${attempt}, ended`;
  } catch (e) {
    if (e.name !== "AbortError") $("log-hint").textContent = "log stream broke: " + e.message;
    return;
  }
  if (log && log.controller === controller) log.ended = true;
}

function drawJob(d) {
  const spec = d.spec || {};
  $("job-title").innerHTML = `Job ${esc(d.id)} · ${esc(spec.name)} ${pill(d.state)}`;
  document.title = `Job ${d.id} ${spec.name} · Cumulo`;
  const facts = [
    ["tenant", esc(spec.tenant)], ["kind", esc(spec.kind)], ["priority", esc(spec.priority)],
    ["resources", `<span class="mono">${esc(resources(spec))}</span>`],
    ["replicas", esc(spec.replicas || 1)], ["topology", esc(spec.topology || "any")],
    ["duration", esc(spec.duration_s ? (spec.duration_s / 3600).toFixed(2) + " h" : "until it exits")],
    ["max attempts", esc(spec.max_attempts)], ["attempts", esc(d.attempt_count)],
    ["submitted", when(d.submitted_at) + ` <span class="hint">${esc(ago(d.submitted_at))}</span>`],
    ["updated", when(d.updated_at)],
  ];
  if (d.pending_reason) facts.unshift(["pending reason", `<span class="reason-text">${esc(d.pending_reason)}</span>`]);
  if (d.cancel_requested) facts.unshift(["cancel", "requested; the attempt is being stopped"]);
  $("job-facts").innerHTML = facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("");

  const actions = $("job-actions");
  if (canCancel(d)) {
    if (!actions.querySelector("#cancel")) {
      actions.innerHTML = '<button id="cancel" class="danger">Cancel job</button> <span class="hint" id="cancel-hint"></span>';
      $("cancel").addEventListener("click", () => cancelJob(d.id));
    }
  } else {
    actions.innerHTML = ACTIVE.has(d.state) && whoami && whoami.role === "viewer"
      ? '<span class="hint">a viewer token cannot cancel jobs</span>' : "";
  }

  const simClusters = new Set(clusters.filter((c) => c.simulated).map((c) => c.name));
  const attempts = d.attempts || [];
  table($("job-attempts"), [["attempt"], ["replica", "num"], ["state"], ["cluster"], ["nodes"], ["price", "num"], ["message"], ["started"], ["updated"]],
    attempts.map((a) => {
      const p = a.placement || {};
      const nodes = Array.isArray(p.nodes) ? p.nodes.map((n) => n.node).filter(Boolean) : [];
      return [
        [esc(`${a.id.job}.${a.id.attempt}`), "mono"], [esc(a.replica || 0), "num"], [pill(a.state)],
        [`${esc(p.cluster || "")}${simTag(simClusters.has(p.cluster))}`],
        [`<span class="mono">${esc(nodes.slice(0, 4).join(", "))}${nodes.length > 4 ? esc(` +${nodes.length - 4}`) : ""}</span>`],
        [esc(perHour(p.price_per_hour)), "num"], [esc(a.message || "")], [when(a.created_at)], [when(a.updated_at)],
      ];
    }), d.pending_reason ? "no attempt yet: " + d.pending_reason : "no attempt yet");
  const last = attempts[attempts.length - 1];
  $("placement-box").hidden = !last;
  $("job-placement").textContent = last ? JSON.stringify(last.placement, null, 2) : "";

  table($("job-events"), [["at"], ["event"], ["message"]],
    (d.events || []).slice().reverse().map((e) => [[when(e.at)], [esc(e.kind), "mono"], [esc(e.message)]]), "no events yet");

  if (!last) {
    stopLog();
    $("job-log").textContent = "";
    $("log-hint").textContent = ACTIVE.has(d.state) ? "waiting for the first attempt to start" : "the job never started an attempt";
  } else if (simClusters.has((last.placement || {}).cluster)) {
    stopLog();
    $("job-log").textContent = "";
    $("log-hint").textContent = `attempt ${last.id.attempt} is on a simulated cluster: nothing runs there, so there is no log; it ends after its duration, on the cluster's faster clock`;
  } else if (last.state === "planned" || last.state === "launching") {
    $("log-hint").textContent = `waiting for attempt ${last.id.attempt} to start`;
  } else if (!log || log.job !== d.id || log.attempt !== d.attempt_count) {
    followLog(d.id, d.attempt_count);
  }
}

async function cancelJob(id) {
  const button = $("cancel");
  if (button.dataset.armed !== "yes") {
    button.dataset.armed = "yes";
    button.textContent = "Really cancel?";
    $("cancel-hint").textContent = "click again to cancel the job";
    setTimeout(() => { if ($("cancel")) { $("cancel").dataset.armed = ""; $("cancel").textContent = "Cancel job"; $("cancel-hint").textContent = ""; } }, 4000);
    return;
  }
  button.disabled = true;
  try {
    const job = await apiPost(`v1/jobs/${id}/cancel`);
    $("job-actions").innerHTML = `<span class="hint">${job.state === "cancelled" ? "cancelled" : "cancel requested; the attempt is being stopped"}</span>`;
  } catch (e) {
    $("cancel-hint").textContent = "not cancelled: " + (e.reason || e.message);
    button.disabled = false;
  }
  refresh();
}

async function refreshJob(id) {
  try {
    drawJob(await api("v1/jobs/" + id));
  } catch (e) {
    if (e.status === 404) {
      stopLog();
      $("job-title").textContent = `Job ${id}`;
      $("job-facts").innerHTML = `<dd class="error">${esc(e.reason)}</dd>`;
      return;
    }
    throw e;
  }
}

// ---- costs -----------------------------------------------------------------------------------

async function refreshCosts() {
  const range = $("range-costs").value;
  const [h, usage, burn] = await Promise.all([
    history(range),
    api("v1/usage?group_by=tenant").catch((e) => ({ error: e.reason || e.message, rows: [] })),
    api("v1/contracts/burn-down").catch((e) => ({ error: e.reason || e.message, contracts: [] })),
  ]);
  const s = span(h);
  drawLines($("cost-tenant-chart"), seriesOf(h, "cost_by_tenant"), Object.assign({}, s, { format: usdShort, title: "cost by tenant", empty: "no metered cost in this range" }));
  drawLines($("cost-provider-chart"), seriesOf(h, "cost_by_provider"), Object.assign({}, s, { format: usdShort, title: "cost by provider", empty: "no metered cost in this range (admins only)" }));
  const rows = (usage.rows || []).slice().sort((a, b) => Number(b.cost) - Number(a.cost));
  const maxCost = Math.max(1, ...rows.map((r) => Number(r.cost)));
  table($("usage-tenants"), [["tenant"], ["GPU-hours", "num"], ["node-hours", "num"], ["cost", "num"], ["at list prices", "num"], ["share"]],
    rows.map((r) => [
      [esc(r.group)], [esc(hours(r.gpu_seconds || 0)), "num"], [esc(hours(r.node_seconds || 0)), "num"],
      [esc(usd(micro(r.cost))), "num"], [esc(usd(micro(r.list_cost))), "num"],
      [`<div class="barcell">${bar(Number(r.cost) / maxCost)}</div>`],
    ]), usage.error ? "usage not available: " + usage.error : "no metered usage yet");

  const list = burn.contracts || [];
  $("burn-hint").innerHTML = (burn.illustrative ? '<span class="tag ill">illustrative</span> demo portfolio, not real contracts; ' : "") +
    (burn.error ? esc("burn-down not available: " + burn.error) : "consumed = metered spend under each contract; scheduled = what the contract's burn schedule expects by now");
  table($("contracts"), [["contract"], ["provider"], ["term"], ["committed", "num"], ["scheduled", "num"], ["consumed", "num"], ["burn"], ["status"], ["projected shortfall", "num"]],
    list.map((c) => {
      const committed = micro(c.committed) || 0, consumed = micro(c.consumed) || 0, scheduled = micro(c.scheduled) || 0;
      const f = committed ? consumed / committed : 0;
      // The server's verdict (the portfolio's 1% on-schedule band), never a rule of our own.
      const ok = !(c.status && c.status.state === "behind");
      return [
        [`<b>${esc(c.contract)}</b>`], [esc(c.provider)], [`<span class="mono">${esc(c.term)}</span>`],
        [esc(usdShort(committed)), "num"], [esc(usdShort(scheduled)), "num"], [esc(usdShort(consumed)), "num"],
        [`<div class="barcell">${bar(f, ok ? "ok" : "warn", committed ? scheduled / committed : 0)}<span class="v">${esc(pct(f))}</span></div>`],
        [`<span class="pill ${ok ? "st-running" : "st-pending"}">${esc(c.status_text || c.status)}</span>`],
        [esc(usdShort(micro(c.projected_shortfall) || 0)), "num"],
      ];
    }), "no contracts in the portfolio");
  const charts = list.map((c, i) => {
    const consumed = (h.series || []).find((x) => x.metric === "contract_consumed" && x.label === c.contract);
    const scheduled = (h.series || []).find((x) => x.metric === "contract_scheduled" && x.label === c.contract);
    return { c, series: [
      { label: "consumed", colour: PALETTE[i % PALETTE.length], points: consumed ? consumed.points : [] },
      { label: "scheduled", colour: "#9aa3b5", dash: true, points: scheduled ? scheduled.points : [] },
    ] };
  });
  $("burn-charts").innerHTML = charts.map((x, i) => `<div class="burn"><div class="burn-title">${esc(x.c.contract)} <span class="hint">${esc(x.c.provider)}, committed ${esc(usdShort(micro(x.c.committed) || 0))}</span></div><div class="chart" id="burn-${i}"></div></div>`).join("");
  charts.forEach((x, i) => drawLines($("burn-" + i), x.series, Object.assign({}, s, { format: usdShort, title: "burn-down " + x.c.contract, empty: "no samples yet" })));
}

// ---- fleet -----------------------------------------------------------------------------------

async function refreshFleet() {
  const nodes = await api("v1/nodes");
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
  table($("tenants"), [["tenant"], ["from"], ["weight", "num"], ["GPU quota", "num"], ["CPU quota", "num"]],
    tenants.map((t) => [[esc(t.name)], [esc(t.source)], [esc(t.weight === undefined ? "as the file says" : t.weight), "num"],
      [esc(t.gpus_milli === undefined ? "–" : gpus(t.gpus_milli)), "num"], [esc(t.cpus_milli === undefined ? "–" : gpus(t.cpus_milli)), "num"]]),
    "no tenants: any tenant name is accepted");
}

// ---- routing and the refresh loop ------------------------------------------------------------

function route() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query] = h.split("?");
  const job = path.match(/^\/jobs\/(\d+)$/);
  if (job) return { view: "job", id: Number(job[1]), query: query || "" };
  if (path === "/jobs") return { view: "jobs", query: query || "" };
  if (path === "/costs") return { view: "costs", query: "" };
  if (path === "/fleet") return { view: "fleet", query: "" };
  return { view: "overview", query: "" };
}

function showView() {
  const r = route();
  for (const el of document.querySelectorAll(".view")) el.hidden = el.id !== "view-" + r.view;
  const navView = r.view === "job" ? "jobs" : r.view;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.view === navView);
  if (r.view !== "job") { stopLog(); document.title = "Cumulo dashboard"; }
  if (r.view === "job" && (!log || log.job !== r.id)) { $("job-log").textContent = ""; $("job-title").textContent = `Job ${r.id}`; }
  window.scrollTo(0, 0);
}

let timer = null;
let busy = false;
let again = false;

async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  try {
    const r = route();
    [clusters, tenants] = await Promise.all([api("v1/clusters"), api("v1/tenants").catch(() => [])]);
    simBanner();
    if (r.view === "overview") await refreshOverview();
    else if (r.view === "jobs") await refreshJobs();
    else if (r.view === "job") await refreshJob(r.id);
    else if (r.view === "costs") await refreshCosts();
    else if (r.view === "fleet") await refreshFleet();
    $("status").textContent = "connected";
    $("status").classList.remove("bad");
    $("view-error").hidden = true;
    $("updated").textContent = "Last update " + new Date().toLocaleTimeString() + ".";
  } catch (e) {
    if (e instanceof AuthError) { localStorage.removeItem(TOKEN_KEY); showLogin(e.message); }
    else {
      $("status").textContent = "refresh failed";
      $("status").classList.add("bad");
      $("view-error").hidden = false;
      $("view-error").textContent = "refresh failed: " + e.message;
    }
  } finally {
    busy = false;
    if (again) { again = false; refresh(); }
  }
}

async function start() {
  $("login").hidden = true;
  try {
    whoami = await api("v1/whoami");
    $("who").textContent = `${whoami.name} · ${whoami.tenant} · ${whoami.role}`;
  } catch (e) {
    if (e instanceof AuthError) { localStorage.removeItem(TOKEN_KEY); showLogin(e.message); return; }
    $("status").textContent = "cannot reach the server";
    $("status").title = e.message;
    $("status").classList.add("bad");
  }
  $("main").hidden = false;
  $("nav").hidden = false;
  $("signout").hidden = false;
  showView();
  await refresh();
  if (timer === null) timer = setInterval(refresh, REFRESH_S * 1000);
}

function showLogin(message) {
  if (timer !== null) { clearInterval(timer); timer = null; }
  stopLog();
  $("main").hidden = true;
  $("nav").hidden = true;
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
  const server = base.origin + base.pathname.replace(/\/$/, "");
  $("server").textContent = server;
  $("server-foot").textContent = server;
  $("interval").textContent = String(REFRESH_S);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) { $("login-error").textContent = "the token is empty: paste the value that starts with cum_"; return; }
    localStorage.setItem(TOKEN_KEY, t);
    $("token-input").value = "";
    start();
  });
  $("signout").addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); whoami = null; showLogin(""); });
  $("range").addEventListener("change", refresh);
  $("range-costs").addEventListener("change", refresh);
  bindFilters();
  window.addEventListener("hashchange", () => { if (token()) { showView(); refresh(); } });
  if (token()) start(); else showLogin("");
}

main();
