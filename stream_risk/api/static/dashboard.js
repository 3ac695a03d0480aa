// The stream-risk dashboard: plain JavaScript over the worker's HTTP API.
// Live warnings arrive as server-sent events from GET /events, read with fetch so
// that the API key travels in a header, never in a URL.
"use strict";

const KEY_STORE = "stream-risk-api-key";
const LEVELS = ["low", "medium", "high", "critical"];
const MAX_LIVE = 200;
const $ = (sel) => document.querySelector(sel);

// Amounts are in the base currency of the deployment (set on the page's <html> element).
const CURRENCY = document.documentElement.dataset.currency || "EUR";
const RANK = { low: 1, medium: 2, high: 3, critical: 4 };

const state = {
  levels: {}, seen: new Set(), acked: new Set(), customer: null, paused: false, held: [],
  // Every warning record received (newest first) and the warnings firing now, by id.
  recent: [], active: new Map(),
  // customer_id -> {industry, region, ...} once known; profiles of the ranking by id.
  segments: new Map(), profiles: new Map(), asked: new Set(),
  filter: { level: "medium", status: "firing", industry: "", region: "" },
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }

function showKeyForm(show) {
  $("#key-form").hidden = !show;
  $("#key-button").hidden = show;
  if (show) $("#key-input").focus();
}

function toast(text, error) {
  const box = $("#toast");
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, options) {
  const headers = Object.assign({ Accept: "application/json" }, (options || {}).headers);
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) showKeyForm(true);
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, problem);
  }
  return response.json();
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
}

// ---- formatting -------------------------------------------------------------------

// One date format everywhere: YYYY-MM-DD HH:MM (UTC, as the events carry it).
function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 16);
}
function fmtScore(x) { return typeof x === "number" ? x.toFixed(2) : "–"; }
const MONEY = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 0 });
const NUMBER = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 2 });
function fmtMoney(x) { return typeof x === "number" ? `${CURRENCY} ${MONEY.format(x)}` : "–"; }
function fmtPercent(x) { return typeof x === "number" ? `${(x * 100).toFixed(0)} %` : "–"; }
function fmtDays(x) { return typeof x === "number" ? `${MONEY.format(x)} d` : "–"; }
// How each headline feature reads: money, a share of the limit, days, or a plain number.
const MONEY_FEATURES = new Set([
  "overdue_balance", "open_balance", "credit_limit", "order_amount_30d", "limit_headroom",
]);
function fmtFeature(name, v) {
  if (MONEY_FEATURES.has(name)) return fmtMoney(v);
  if (name === "credit_utilisation") return fmtPercent(v);
  if (name === "days_past_due" || name === "dso") return fmtDays(v);
  return fmtValue(v);
}
function fmtValue(v) {
  if (typeof v === "number") return NUMBER.format(v);
  return v === null || v === undefined ? "–" : String(v);
}
function fmtSegment(seg) {
  if (!seg) return "–";
  return [seg.industry, seg.size, seg.region].filter(Boolean).join(" · ") || "–";
}
function customerLink(id) { return el("a", { href: `#customer/${encodeURIComponent(id)}` }, id); }

// ---- warnings -------------------------------------------------------------------

function ackControl(w) {
  if (w.status !== "firing") return el("span");
  if (state.acked.has(w.warning_id)) return el("span", { class: "done" }, "acknowledged ✓");
  const button = el("button", { class: "ack", type: "button" }, "Acknowledge");
  button.addEventListener("click", () => acknowledge(w, button));
  return button;
}

function warningItem(w, fresh) {
  const reason = (w.reasons && w.reasons[0] && w.reasons[0].text) || "";
  const item = el(
    "li",
    {
      class: `warning level-${w.level} ${w.status}${fresh ? " fresh" : ""}`,
      "data-warning-id": w.warning_id,
      "data-customer-id": w.customer_id,
      "data-level": w.level,
      "data-status": w.status,
      "data-acked": state.acked.has(w.warning_id) ? "true" : null,
    },
    el("span", { class: `badge ${w.level}` }, w.level),
    el(
      "span",
      { class: "what" },
      customerLink(w.customer_id),
      ` ${w.rule}${w.status === "resolved" ? " (resolved)" : ""}`,
      el("span", { class: "score" }, ` · score ${fmtScore(w.risk_score)} · tier ${w.tier}`),
    ),
    ackControl(w),
    el("span", { class: "when", title: "event time" }, fmtTime(w.occurred_at)),
    el("span", { class: "why" }, reason),
  );
  return item;
}

async function acknowledge(w, button) {
  button.disabled = true;
  try {
    const out = await post(`/warnings/${encodeURIComponent(w.warning_id)}/ack`, {});
    state.acked.add(w.warning_id);
    for (const item of document.querySelectorAll(`li[data-warning-id="${CSS.escape(w.warning_id)}"]`)) {
      item.setAttribute("data-acked", "true");
      const control = item.querySelector("button.ack");
      if (control) control.replaceWith(el("span", { class: "done" }, "acknowledged ✓"));
    }
    toast(`Acknowledged ${w.rule} for ${w.customer_id} (event ${out.event.event_id})`);
  } catch (err) {
    button.disabled = false;
    toast(`Could not acknowledge: ${err.message}`, true);
  }
}

// ---- filters ----------------------------------------------------------------------

function segmentOf(profile) {
  const f = (profile && profile.features) || {};
  return { industry: f.segment_industry, size: f.segment_size, region: f.segment_region };
}

function learnSegment(customerId, seg) {
  state.segments.set(customerId, seg);
  for (const dim of ["industry", "region"]) {
    const value = seg[dim];
    const select = $(`#filter-${dim}`);
    if (!value || [...select.options].some((o) => o.value === value)) continue;
    select.append(el("option", { value }, value));
  }
}

// A segment filter needs the customer's segment: asked once per customer, then re-rendered.
async function askSegment(customerId) {
  if (state.asked.has(customerId)) return;
  state.asked.add(customerId);
  try {
    learnSegment(customerId, segmentOf(await api(`/customers/${encodeURIComponent(customerId)}/risk`)));
    renderWarnings();
  } catch (_) { /* unknown customer: it stays out of segment filters */ }
}

function passes(w, ignoreStatus) {
  const f = state.filter;
  if ((RANK[w.level] || 0) < RANK[f.level]) return false;
  if (!ignoreStatus && f.status !== "all" && w.status !== f.status) return false;
  if (f.industry || f.region) {
    const seg = state.segments.get(w.customer_id);
    if (!seg) { askSegment(w.customer_id); return false; }
    if (f.industry && seg.industry !== f.industry) return false;
    if (f.region && seg.region !== f.region) return false;
  }
  return true;
}

function renderActive() {
  const items = [...state.active.values()]
    .filter((w) => passes(w, true))
    .sort((a, b) => (RANK[b.level] - RANK[a.level]) || b.occurred_at.localeCompare(a.occurred_at));
  $("#active").replaceChildren(...items.map((w) => warningItem(w, false)));
  $("#active-empty").hidden = items.length > 0;
  $("#active-count").textContent = `(${items.length})`;
}

function renderWarnings() {
  const shown = state.recent.filter((w) => passes(w, false)).slice(0, MAX_LIVE);
  $("#warnings").replaceChildren(...shown.map((w) => warningItem(w, false)));
  $("#warnings-empty").hidden = shown.length > 0;
  renderActive();
}

function readFilters() {
  state.filter = {
    level: $("#filter-level").value,
    status: $("#filter-status").value,
    industry: $("#filter-industry").value,
    region: $("#filter-region").value,
  };
  renderWarnings();
}

// Live warnings go on top; the preloaded page (newest first) goes below them. While the
// pointer is on the list, new ones wait, so nothing moves under a button being clicked.
function addWarning(w, fresh) {
  const key = `${w.warning_id}:${w.status}`;
  if (state.seen.has(key)) return;
  state.seen.add(key);
  if (fresh) state.recent.unshift(w);
  else state.recent.push(w);
  if (state.recent.length > 5 * MAX_LIVE) state.recent.pop();
  if (fresh) {
    if (w.status === "firing") state.active.set(w.warning_id, w);
    else state.active.delete(w.warning_id);
    renderActive();
  }
  if (fresh && w.status === "firing") {
    state.levels[w.level] = (state.levels[w.level] || 0) + 1;
    renderLevels();
  }
  if (state.customer === w.customer_id) loadCustomer(w.customer_id);
  if (!passes(w, false)) return;
  const list = $("#warnings");
  if (fresh && state.paused) {
    state.held.push(w);
    $("#warnings-held").textContent = `${state.held.length} new, shown when the pointer leaves the list`;
    $("#warnings-held").hidden = false;
  } else if (fresh) list.prepend(warningItem(w, true));
  else list.append(warningItem(w, false));
  while (list.children.length > MAX_LIVE) list.lastChild.remove();
  $("#warnings-empty").hidden = true;
}

function releaseHeld() {
  state.paused = false;
  const list = $("#warnings");
  for (const w of state.held) list.prepend(warningItem(w, true));
  state.held = [];
  $("#warnings-held").hidden = true;
  while (list.children.length > MAX_LIVE) list.lastChild.remove();
}

function renderLevels() {
  for (const level of LEVELS) {
    $(`[data-count="${level}"]`).textContent = state.levels[level] || 0;
  }
}

// ---- the live feed --------------------------------------------------------------

function setLive(on, text) {
  const badge = $("#live-status");
  badge.textContent = text;
  badge.className = `status ${on ? "on" : "off"}`;
}

async function readLive() {
  const headers = { Accept: "text/event-stream" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch("/events", { headers, cache: "no-store" });
  if (response.status === 401) { showKeyForm(true); throw new Error("API key needed"); }
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  setLive(true, "live");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (event === "warning" && data.length) addWarning(JSON.parse(data.join("\n")), true);
    }
  }
}

async function live() {
  for (;;) {
    try {
      await readLive();
      setLive(false, "reconnecting");
    } catch (err) {
      setLive(false, `offline: ${err.message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

// ---- overview -------------------------------------------------------------------

async function loadRecent() {
  const page = await api("/warnings?limit=200");
  for (const w of page.items) addWarning(w, false);
  // What is firing now: replay the page oldest first, a resolution ends its firing.
  const resolved = new Set();
  for (const w of [...page.items].reverse()) {
    if (w.status === "firing" && !resolved.has(w.warning_id)) state.active.set(w.warning_id, w);
    else { state.active.delete(w.warning_id); resolved.add(w.warning_id); }
  }
  renderActive();
}

async function loadSummary() {
  const s = await api("/summary");
  for (const level of LEVELS) state.levels[level] = s.warnings.levels[level].firing;
  renderLevels();
  $("#level-window").textContent = `(firing, latest ${s.warnings.window})`;
  for (const [tier, n] of Object.entries(s.tiers)) {
    const cell = $(`[data-tier="${tier}"]`);
    if (cell) cell.textContent = n;
  }
  $("#customer-total").textContent = `(${s.customers} customers)`;
}

// The ranking carries score and tier; exposure, days past due and segment come from each
// customer's profile, fetched again only when the customer has changed.
async function profileFor(c) {
  const known = state.profiles.get(c.customer_id);
  if (known && known.updated_at === c.updated_at) return known;
  try {
    const profile = await api(`/customers/${encodeURIComponent(c.customer_id)}/risk`);
    state.profiles.set(c.customer_id, profile);
    learnSegment(c.customer_id, segmentOf(profile));
    return profile;
  } catch (_) {
    return known || null;
  }
}

async function loadRiskiest() {
  const ranking = await api("/customers?limit=15");
  const profiles = await Promise.all(ranking.items.map(profileFor));
  const body = $("#riskiest tbody");
  body.replaceChildren(
    ...ranking.items.map((c, n) => {
      const f = (profiles[n] && profiles[n].features) || {};
      return el(
        "tr",
        {},
        el("td", {}, customerLink(c.customer_id)),
        el("td", { class: "num" }, fmtScore(c.risk_score)),
        el("td", {}, el("span", { class: `tier ${c.tier}` }, c.tier || "–")),
        el("td", { class: "num" }, fmtMoney(f.open_balance)),
        el("td", { class: "num" }, fmtDays(f.days_past_due)),
        el("td", { class: "num" }, fmtMoney(f.overdue_balance)),
        el("td", {}, fmtSegment(segmentOf(profiles[n]))),
        el("td", { class: "num" }, String(c.active_warnings.length)),
      );
    }),
  );
}

async function refresh() {
  try {
    await Promise.all([loadSummary(), loadRiskiest()]);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.warn(err);
  }
}

// ---- customer page --------------------------------------------------------------

function chart(items) {
  const ns = "http://www.w3.org/2000/svg";
  const W = 600, H = 180, P = 28;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  if (items.length === 0) {
    add("text", { x: P, y: H / 2, fill: "#6b7280" }, "no history yet");
    return svg;
  }
  const times = items.map((i) => Date.parse(i.at));
  const t0 = Math.min(...times), t1 = Math.max(...times) || t0 + 1;
  const x = (t) => P + ((t - t0) / Math.max(t1 - t0, 1)) * (W - 2 * P);
  const maxDpd = Math.max(30, ...items.map((i) => i.days_past_due || 0));
  const yScore = (s) => H - P - s * (H - 2 * P);
  const yDpd = (d) => H - P - (d / maxDpd) * (H - 2 * P);
  add("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#9ca3af" });
  add("line", { x1: P, y1: P, x2: P, y2: H - P, stroke: "#2563eb" });
  add("line", { x1: W - P, y1: P, x2: W - P, y2: H - P, stroke: "#f97316" });
  add("text", { x: P, y: 12, "font-size": 11, fill: "#2563eb" }, "left axis: risk score (0 to 1)");
  add("text", { x: W - P, y: 12, "font-size": 11, fill: "#f97316", "text-anchor": "end" },
    `right axis: days past due (0 to ${maxDpd})`);
  add("text", { x: P - 4, y: P + 4, "font-size": 9, fill: "#2563eb", "text-anchor": "end" }, "1");
  add("text", { x: P - 4, y: H - P, "font-size": 9, fill: "#2563eb", "text-anchor": "end" }, "0");
  add("text", { x: W - P + 4, y: P + 4, "font-size": 9, fill: "#f97316" }, String(maxDpd));
  add("text", { x: W - P + 4, y: H - P, "font-size": 9, fill: "#f97316" }, "0");
  add("text", { x: W / 2, y: H - 8, "font-size": 10, fill: "#6b7280", "text-anchor": "middle" },
    "event time (UTC)");
  const line = (y, colour, pick) =>
    add("polyline", {
      fill: "none",
      stroke: colour,
      "stroke-width": 2,
      points: items.map((i, n) => `${x(times[n]).toFixed(1)},${y(pick(i) || 0).toFixed(1)}`).join(" "),
    });
  line(yDpd, "#f97316", (i) => i.days_past_due);
  line(yScore, "#2563eb", (i) => i.risk_score);
  add("text", { x: P, y: H - 8, "font-size": 10, fill: "#6b7280" }, fmtTime(items[0].at));
  add("text", { x: W - P - 90, y: H - 8, "font-size": 10, fill: "#6b7280" },
    fmtTime(items[items.length - 1].at));
  return svg;
}

const HEADLINE = [
  "days_past_due", "overdue_balance", "open_balance", "credit_limit", "credit_utilisation",
  "bounced_payments_90d", "broken_promises_90d", "open_promises", "dso", "order_amount_30d",
  "segment_industry", "segment_size", "segment_region", "rating",
];

async function loadCustomer(id) {
  const path = encodeURIComponent(id);
  try {
    const [profile, history, warnings] = await Promise.all([
      api(`/customers/${path}/risk`),
      api(`/customers/${path}/history?limit=200`),
      api(`/warnings?customer_id=${path}&limit=100`),
    ]);
    if (state.customer !== id) return;
    $("#c-id").textContent = id;
    $("#c-tier").textContent = `tier ${profile.tier}`;
    $("#c-tier").className = `tier ${profile.tier}`;
    $("#c-meta").textContent =
      `risk score ${fmtScore(profile.risk_score)} · ${profile.active_warnings.length} active ` +
      `warning(s) · as of ${fmtTime(profile.updated_at)} (event time)`;
    $("#c-chart").replaceChildren(chart(history.items));
    $("#c-features tbody").replaceChildren(
      ...HEADLINE.filter((n) => n in profile.features).map((n) =>
        el("tr", {}, el("td", {}, n), el("td", { class: "num" }, fmtFeature(n, profile.features[n]))),
      ),
    );
    $("#c-warnings").replaceChildren(...warnings.items.map((w) => warningItem(w, false)));
    $("#c-warnings-empty").hidden = warnings.items.length > 0;
  } catch (err) {
    toast(`Could not load customer ${id}: ${err.message}`, true);
  }
}

async function submitAction(form, path, body) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const out = await post(path, body);
    toast(`Recorded ${out.event.action} for ${out.event.customer_id} (event ${out.event.event_id})`);
    form.reset();
  } catch (err) {
    const fields = (err.problem && err.problem.errors) || [];
    const detail = fields.length ? fields.map((e) => `${e.field}: ${e.message}`).join("; ") : err.message;
    toast(`Not recorded: ${detail}`, true);
  } finally {
    button.disabled = false;
  }
}

function route() {
  const match = location.hash.match(/^#customer\/(.+)$/);
  state.customer = match ? decodeURIComponent(match[1]) : null;
  $("#overview").hidden = !!state.customer;
  $("#customer").hidden = !state.customer;
  if (state.customer) loadCustomer(state.customer);
}

// ---- start ----------------------------------------------------------------------

function init() {
  $("#key-button").addEventListener("click", () => showKeyForm(true));
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem(KEY_STORE, $("#key-input").value.trim());
    location.reload();
  });
  $("#contact-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const note = ev.target.note.value.trim();
    submitAction(ev.target, `/customers/${encodeURIComponent(state.customer)}/contact`,
      note ? { note } : {});
  });
  $("#promise-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    submitAction(f, `/customers/${encodeURIComponent(state.customer)}/promise-to-pay`, {
      amount: Number(f.amount.value),
      currency: f.currency.value.trim().toUpperCase(),
      date: f.date.value,
    });
  });
  $("#filters").addEventListener("change", readFilters);
  $("#warnings").addEventListener("mouseenter", () => { state.paused = true; });
  $("#warnings").addEventListener("mouseleave", releaseHeld);
  window.addEventListener("hashchange", route);
  route();
  live();
  loadRecent().catch((err) => console.warn(err));
  refresh();
  setInterval(refresh, 5000);
}

init();
