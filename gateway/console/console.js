// pushhub's operators' console: one page over /console/api (gateway/console.h). Written by hand,
// no framework: the DOM is built with textContent only, so nothing a device or sender wrote is
// ever parsed as HTML. Views follow the location hash: #/ (the hub live), #/notifications/<id>,
// #/installations/<id>.
"use strict";

const api = "/console/api/";
let session = null; // {hub, key_name, expires, csrf}
let live = null; // the EventSource while signed in
let lastOverview = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function show(view) {
  for (const id of ["signin-view", "overview-view", "notification-view", "installation-view",
                    "error-view"]) {
    $(id).hidden = id !== view;
  }
}

async function call(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (init.method === "POST") {
    init.headers = { "Content-Type": "application/json", ...(init.headers || {}) };
    if (session) init.headers["X-Pushhub-Csrf"] = session.csrf;
  }
  const response = await fetch(api + path, init);
  let body = {};
  try { body = await response.json(); } catch (e) { body = {}; }
  if (response.status === 401 && path !== "signin") signedOut();
  return { ok: response.ok, status: response.status, body };
}

// Times and numbers as people read them.
function when(timestamp) {
  if (!timestamp) return "–";
  const d = new Date(timestamp);
  return d.toLocaleString(undefined, { hour12: false });
}
function age(seconds) {
  if (seconds < 1) return "now";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
function sinceTimestamp(timestamp, nowMs) {
  return timestamp ? (nowMs - Date.parse(timestamp)) / 1000 : 0;
}
const n = (v) => Number(v || 0);
const stateName = (s) => (s || "STATE_UNSPECIFIED").replace("STATE_", "").toLowerCase().replace(/_/g, " ");
const platformName = (p) => (p || "").replace("PLATFORM_", "").toLowerCase();

// ---- sign-in ----

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  const body = { hub: $("signin-hub").value.trim() };
  const connection = $("signin-connection").value.trim();
  if (connection) body.connection_string = connection;
  else { body.key_name = $("signin-key-name").value.trim(); body.key = $("signin-key").value; }
  const r = await call("signin", { method: "POST", body: JSON.stringify(body) });
  $("signin-key").value = "";
  $("signin-connection").value = "";
  if (!r.ok) { $("signin-error").textContent = r.body.error || `refused (${r.status})`; return; }
  session = r.body;
  startLive();
  route();
}

async function signOut() {
  await call("signout", { method: "POST", body: "{}" });
  signedOut();
}

function signedOut() {
  session = null;
  if (live) { live.close(); live = null; }
  $("who").hidden = true;
  show("signin-view");
}

function showWho() {
  $("who").hidden = false;
  $("who-hub").textContent = session.hub;
  $("who-key").textContent = session.key_name;
  $("who-expires").textContent = `session until ${new Date(session.expires * 1000).toLocaleTimeString(undefined, { hour12: false })}`;
}

// ---- the live overview ----

function startLive() {
  showWho();
  if (live) live.close();
  live = new EventSource(api + "live");
  live.onopen = () => { $("live-state").textContent = "live"; $("live-state").className = "live on"; };
  live.onmessage = (event) => {
    lastOverview = JSON.parse(event.data);
    renderOverview(lastOverview);
  };
  live.addEventListener("signedout", signedOut);
  live.onerror = async () => {
    $("live-state").textContent = "reconnecting";
    $("live-state").className = "live";
    // The server refuses a stream whose session ended: ask once whether it did.
    const r = await call("session");
    if (r.ok && live && live.readyState === EventSource.CLOSED) startLive();
  };
}

function renderOverview(o) {
  const stats = o.stats || {};
  const queue = stats.queue || {};
  const hub = (stats.hubs || []).find((h) => h.hub === o.hub) || { routes: [] };
  $("queue-jobs").textContent = queue.error ? "?" : n(hub.queued_jobs);
  $("queue-age").textContent = hub.oldest_job_time ? age(sinceTimestamp(hub.oldest_job_time, o.time_ms)) : "–";
  const scheduled = (o.scheduled && o.scheduled.notifications) || [];
  $("scheduled-count").textContent = o.scheduled.error ? "?" : scheduled.length;
  $("workers").textContent = `${n(stats.workers_responsive)} / ${n(stats.workers)}`;
  const redis = o.redis || {};
  const healthy = redis.workers_with_redis === redis.workers && redis.queue_readable;
  $("redis-state").textContent = healthy ? "ok" : "trouble";
  $("redis-state").className = healthy ? "big good" : "big bad";
  $("redis-detail").textContent =
    `${redis.workers_with_redis}/${redis.workers} connected · ${redis.errors} errors · ${redis.retries} retries`;

  renderChart(o.chart);
  renderRoutes(hub.routes || []);
  renderLatest(o.latest, o.time_ms);
  renderScheduled(scheduled, o.scheduled.error);
}

function renderRoutes(routes) {
  const body = $("routes").tBodies[0];
  body.replaceChildren();
  $("routes-empty").hidden = routes.length > 0;
  for (const r of routes) {
    const deliveries = r.deliveries || {};
    const retries = r.retries || {};
    const total = Object.values(deliveries).reduce((a, b) => a + n(b), 0);
    const outcomes = el("td");
    for (const [name, count] of Object.entries(deliveries).sort()) {
      outcomes.append(el("span", { class: name === "Success" ? "pill good" : "pill bad",
                                   "data-test": `deliveries-${r.platform}-${name}`,
                                   text: `${name} ${count}` }));
    }
    const retried = el("td");
    for (const [name, count] of Object.entries(retries).sort()) {
      retried.append(el("span", { class: "pill", "data-test": `retries-${r.platform}-${name}`,
                                  text: `${name} ${count}` }));
    }
    body.append(el("tr", { "data-test": `route-${r.platform}` },
      el("td", { text: r.platform }),
      el("td", { "data-test": `in-flight-${r.platform}`, text: n(r.in_flight) }),
      el("td", { "data-test": `connections-${r.platform}`, text: n(r.connections) }),
      el("td", { "data-test": `delivered-${r.platform}`, text: total }),
      outcomes, retried));
  }
}

function renderLatest(latest, nowMs) {
  const body = $("latest").tBodies[0];
  body.replaceChildren();
  if (latest && latest.error) { $("latest-empty").textContent = latest.error; $("latest-empty").hidden = false; return; }
  const list = (latest && latest.notifications) || [];
  $("latest-empty").hidden = list.length > 0;
  for (const s of list) {
    let ok = 0, failed = 0;
    for (const c of s.outcomes || []) (c.outcome === "Success" ? (ok += n(c.count)) : (failed += n(c.count)));
    body.append(el("tr", { "data-test": `latest-${s.notification_id}` },
      el("td", {}, el("a", { href: `#/notifications/${s.notification_id}`, text: s.notification_id.slice(0, 12) })),
      el("td", { text: stateName(s.state) + (s.test ? " (test)" : "") }),
      el("td", { text: s.audience || "" }),
      el("td", { text: `${age(sinceTimestamp(s.enqueue_time, nowMs))} ago` }),
      el("td", { "data-test": "ok", text: ok }),
      el("td", { "data-test": "failed", class: failed ? "bad" : "", text: failed })));
  }
}

function renderScheduled(list, error) {
  const body = $("scheduled").tBodies[0];
  body.replaceChildren();
  if (error) { $("scheduled-empty").textContent = error; $("scheduled-empty").hidden = false; return; }
  $("scheduled-empty").hidden = list.length > 0;
  for (const s of list) {
    const button = el("button", { type: "button", "data-test": `cancel-${s.notification_id}`, text: "Cancel" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      const r = await call(`notifications/${s.notification_id}/cancel`, { method: "POST", body: "{}" });
      if (!r.ok) { button.disabled = false; alert(r.body.error || `refused (${r.status})`); return; }
      button.closest("tr").remove();
    });
    body.append(el("tr", { "data-test": `scheduled-${s.notification_id}` },
      el("td", {}, el("a", { href: `#/notifications/${s.notification_id}`, text: s.notification_id.slice(0, 12) })),
      el("td", { text: when(s.scheduled_time) }),
      el("td", { text: when(s.enqueue_time) }),
      el("td", {}, button)));
  }
}

const colors = { apns: "#2563eb", fcm: "#d97706", wns: "#059669" };

function renderChart(chart) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const width = canvas.width, height = canvas.height, pad = 36;
  ctx.clearRect(0, 0, width, height);
  const points = (chart && chart.points) || [];
  const platforms = (chart && chart.platforms) || [];
  let max = 1;
  for (const p of points) for (let i = 1; i < p.length; ++i) max = Math.max(max, p[i]);
  const spanMs = 15 * 60 * 1000;
  const end = points.length ? points[points.length - 1][0] : Date.now();
  const x = (t) => pad + ((t - (end - spanMs)) / spanMs) * (width - pad - 8);
  const y = (v) => height - pad / 2 - (v / max) * (height - pad);
  ctx.strokeStyle = "#d1d5db";
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px sans-serif";
  for (const f of [0, 0.5, 1]) {
    ctx.beginPath(); ctx.moveTo(pad, y(max * f)); ctx.lineTo(width - 8, y(max * f)); ctx.stroke();
    ctx.fillText(String(Math.round(max * f)), 2, y(max * f) + 4);
  }
  platforms.forEach((platform, index) => {
    ctx.strokeStyle = colors[platform] || "#111827";
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[index + 1])) : ctx.moveTo(x(p[0]), y(p[index + 1]))));
    ctx.stroke();
    if (points.length === 1) { // a line needs two points: show the first as a dot
      ctx.fillStyle = colors[platform] || "#111827";
      ctx.fillRect(x(points[0][0]) - 2, y(points[0][index + 1]) - 2, 4, 4);
    }
  });
  const legend = $("chart-legend");
  legend.replaceChildren();
  const last = points[points.length - 1] || [];
  platforms.forEach((platform, index) => {
    legend.append(el("span", { class: `key ${platform}`, text: `${platform} ${n(last[index + 1])}/s` }));
  });
}

// ---- one notification, one installation ----

function fact(id, text) { $(id).textContent = text === undefined || text === "" ? "–" : text; }

async function showNotification(id) {
  const r = await call(`notifications/${encodeURIComponent(id)}`);
  if (!r.ok) return showError(r.body.error || `notification ${id}: ${r.status}`);
  const s = r.body;
  fact("n-id", s.notification_id);
  fact("n-state", stateName(s.state) + (s.abandoned_reason ? `: ${s.abandoned_reason}` : "") + (s.test ? " (test send)" : ""));
  fact("n-audience", s.audience);
  fact("n-platforms", (s.target_platforms || []).map(platformName).join(", "));
  fact("n-enqueued", when(s.enqueue_time));
  fact("n-scheduled", s.scheduled_time ? when(s.scheduled_time) : "");
  fact("n-started", when(s.start_time));
  fact("n-ended", when(s.end_time));
  fact("n-jobs", `${n(s.jobs_done)} of ${n(s.jobs_total)} done`);
  const outcomes = $("n-outcomes").tBodies[0];
  outcomes.replaceChildren();
  for (const c of s.outcomes || []) {
    outcomes.append(el("tr", {}, el("td", { text: platformName(c.platform) }),
      el("td", { text: c.outcome }), el("td", { "data-test": `outcome-${platformName(c.platform)}-${c.outcome}`, text: n(c.count) })));
  }
  const failures = $("n-failures").tBodies[0];
  failures.replaceChildren();
  const list = s.failures || [];
  $("n-failures-empty").hidden = list.length > 0;
  for (const f of list) {
    failures.append(el("tr", { "data-test": "failure" },
      el("td", { text: platformName(f.platform) }), el("td", { class: "nowrap", text: f.installation_id || "" }),
      el("td", { class: "handle", text: f.push_handle || "" }), el("td", { text: n(f.http_status) || "" }),
      el("td", { text: f.outcome || "" }), el("td", { text: f.reason || "" })));
  }
  show("notification-view");
}

async function showInstallation(id) {
  const r = await call(`installations/${encodeURIComponent(id)}`);
  if (!r.ok) return showError(r.body.error || `installation ${id}: ${r.status}`);
  const i = r.body;
  fact("i-id", i.installation_id);
  fact("i-platform", platformName(i.platform));
  fact("i-handle", i.push_channel);
  fact("i-user", i.user_id);
  fact("i-tags", (i.tags || []).join(", "));
  fact("i-expires", i.expiration_time ? when(i.expiration_time) : "never");
  fact("i-expired", i.push_channel_expired ? "yes: the provider called the handle dead" : "no");
  const templates = $("i-templates").tBodies[0];
  templates.replaceChildren();
  for (const [name, t] of Object.entries(i.templates || {})) {
    templates.append(el("tr", {}, el("td", { text: name }), el("td", {}, el("code", { text: t.body || "" })),
      el("td", { text: (t.tags || []).join(", ") })));
  }
  show("installation-view");
}

function showError(text) {
  $("error-text").textContent = text;
  show("error-view");
}

// ---- routing ----

function route() {
  if (!session) return show("signin-view");
  const hash = location.hash.replace(/^#/, "");
  const parts = hash.split("/").filter(Boolean);
  if (parts[0] === "notifications" && parts[1]) return showNotification(decodeURIComponent(parts[1]));
  if (parts[0] === "installations" && parts[1]) return showInstallation(decodeURIComponent(parts[1]));
  show("overview-view");
  if (lastOverview) renderOverview(lastOverview);
}

async function boot() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/installations/${encodeURIComponent($("lookup-id").value.trim())}`;
  });
  window.addEventListener("hashchange", route);
  const r = await call("session");
  if (r.ok) { session = r.body; startLive(); }
  route();
}

document.addEventListener("DOMContentLoaded", boot);
