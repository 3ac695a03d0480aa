// The stream-risk dashboard: plain JavaScript over the worker's HTTP API.
// Live warnings arrive as server-sent events from GET /events, read with fetch so
// that the API key travels in a header, never in a URL.
"use strict";

const KEY_STORE = "stream-risk-api-key";
const LEVELS = ["low", "medium", "high", "critical"];
const MAX_LIVE = 200;
const $ = (sel) => document.querySelector(sel);

const state = {
  levels: {}, seen: new Set(), acked: new Set(), customer: null, paused: false, held: [],
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

function fmtTime(iso) { return iso ? iso.replace("T", " ").slice(0, 16) : ""; }
function fmtScore(x) { return typeof x === "number" ? x.toFixed(2) : "–"; }
function fmtValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  return v === null || v === undefined ? "–" : String(v);
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

// Live warnings go on top; the preloaded page (newest first) goes below them. While the
// pointer is on the list, new ones wait, so nothing moves under a button being clicked.
function addWarning(w, fresh) {
  const key = `${w.warning_id}:${w.status}`;
  if (state.seen.has(key)) return;
  state.seen.add(key);
  const list = $("#warnings");
  if (fresh && state.paused) {
    state.held.push(w);
    $("#warnings-held").textContent = `${state.held.length} new, shown when the pointer leaves the list`;
    $("#warnings-held").hidden = false;
  } else if (fresh) list.prepend(warningItem(w, true));
  else list.append(warningItem(w, false));
  while (list.children.length > MAX_LIVE) list.lastChild.remove();
  $("#warnings-empty").hidden = true;
  if (fresh && w.status === "firing") {
    state.levels[w.level] = (state.levels[w.level] || 0) + 1;
    renderLevels();
  }
  if (state.customer === w.customer_id) loadCustomer(w.customer_id);
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
  const page = await api("/warnings?limit=100");
  for (const w of page.items) addWarning(w, false);
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

async function loadRiskiest() {
  const ranking = await api("/customers?limit=15");
  const body = $("#riskiest tbody");
  body.replaceChildren(
    ...ranking.items.map((c) =>
      el(
        "tr",
        {},
        el("td", {}, customerLink(c.customer_id)),
        el("td", { class: "num" }, fmtScore(c.risk_score)),
        el("td", {}, el("span", { class: `tier ${c.tier}` }, c.tier || "–")),
        el("td", { class: "num" }, String(c.active_warnings.length)),
      ),
    ),
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
  add("text", { x: P, y: 12, "font-size": 11, fill: "#2563eb" }, "risk score (0 to 1)");
  add("text", { x: W - P, y: 12, "font-size": 11, fill: "#f97316", "text-anchor": "end" },
    `days past due (0 to ${maxDpd})`);
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
        el("tr", {}, el("td", {}, n), el("td", { class: "num" }, fmtValue(profile.features[n]))),
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
