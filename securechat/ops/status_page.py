"""The status page: static HTML plus a small inline script that renders /api/status and the
last hour of /api/history (inline SVG charts, nothing loaded from elsewhere) every 2 s.

The page carries no data of its own. The script builds every cell with ``textContent`` (never
``innerHTML``), so user names and peer addresses are escaped by construction; the server-side
strings that do go into the HTML are escaped with :func:`html.escape`. A Content-Security-Policy
allows exactly this one script (by hash) and nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import html

REFRESH_MS = 2000

SCRIPT = """
"use strict";
const REFRESH_MS = @REFRESH_MS@;
const SVG = "http://www.w3.org/2000/svg";
const W = 600, H = 150, L = 52, R = 10, T = 10, B = 22;
// Each chart: fixed series [key, label], or every series whose key starts with a prefix.
const CHARTS = [
  {id: "chart-messages", series: [["messages_per_s", "accepted"]]},
  {id: "chart-deliveries", series: [["deliveries_per_s", "stored"]]},
  {id: "chart-latency", series: [["send_p50_ms", "p50"], ["send_p99_ms", "p99"]]},
  {id: "chart-streams", series: [["streams", "streams"]]},
  {id: "chart-logins", prefix: "logins_per_min:"},
  {id: "chart-errors", prefix: "errors_per_min:"},
];
function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function number(v) {
  if (v === null || v === undefined) return "-";
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
function ceiling(max) {
  if (max <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}
function linesOf(chart, h) {
  if (chart.series) return chart.series.map(([key, label]) => [label, h.series[key] || []]);
  const keys = Object.keys(h.series).filter(k => k.startsWith(chart.prefix)).sort();
  const names = keys.map(k => k.slice(chart.prefix.length));
  // "all" first, then outcomes/codes that were ever non-zero.
  return names.map((name, i) => [name, h.series[keys[i]]])
    .filter(([name, v]) => name === "all" || v.some(x => x))
    .sort((a, b) => (a[0] === "all" ? -1 : b[0] === "all" ? 1 : a[0] < b[0] ? -1 : 1));
}
function draw(chart, h) {
  const svg = document.getElementById(chart.id);
  const lines = linesOf(chart, h);
  let max = 0, points = 0;
  for (const [, values] of lines) for (const v of values) if (v !== null && v > max) max = v;
  const top = ceiling(max);
  const times = h.times_ms, now = times.length ? times[times.length - 1] : 0;
  const x = t => L + (W - L - R) * (1 - (now - t) / (h.window_s * 1000));
  const y = v => H - B - (H - B - T) * v / top;
  svg.replaceChildren(
    el("line", {x1: L, y1: T, x2: W - R, y2: T, class: "grid"}),
    el("line", {x1: L, y1: (T + H - B) / 2, x2: W - R, y2: (T + H - B) / 2, class: "grid"}),
    el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}),
    el("text", {x: L - 6, y: T + 4, class: "ylab"}, number(top)),
    el("text", {x: L - 6, y: H - B + 4, class: "ylab"}, "0"),
    el("text", {x: L, y: H - 6, class: "xlab"}, "-60 min"),
    el("text", {x: (L + W - R) / 2, y: H - 6, class: "xlab mid"}, "-30 min"),
    el("text", {x: W - R, y: H - 6, class: "xlab end"}, "now"));
  const legend = document.getElementById(chart.id + "-legend");
  legend.replaceChildren();
  lines.forEach(([label, values], i) => {
    let d = "", pen = false, last = null;
    values.forEach((v, j) => {
      if (v === null) { pen = false; return; }
      d += (pen ? "L" : "M") + x(times[j]).toFixed(1) + "," + y(v).toFixed(1);
      pen = true; points += 1; last = [times[j], v];
    });
    const cls = "s" + (i % 6);
    if (d) svg.appendChild(el("path", {d: d, class: "line " + cls}));
    if (last) svg.appendChild(el("circle", {cx: x(last[0]), cy: y(last[1]), r: 2.5, class: cls}));
    const item = document.createElement("span");
    item.className = "key " + cls;
    item.textContent = label + " " + number(last ? last[1] : null);
    legend.appendChild(item);
  });
  svg.dataset.points = String(points);
}
function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = String(text);
  row.appendChild(td);
}
function fill(id, rows, empty, columns) {
  const body = document.getElementById(id);
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = columns;
    td.className = "empty";
    td.textContent = empty;
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const values of rows) {
    const tr = document.createElement("tr");
    for (const v of values) cell(tr, v);
    body.appendChild(tr);
  }
}
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60), r = s % 60;
  return (d ? d + "d " : "") + (h ? h + "h " : "") + (m ? m + "m " : "") + r + "s";
}
function since(ms, now) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC ("
    + duration(Math.max(0, Math.floor((now - ms) / 1000))) + " ago)";
}
function latest(h, key) {
  const v = h.series[key] || [];
  for (let i = v.length - 1; i >= 0; i--) if (v[i] !== null) return v[i];
  return null;
}
function render(s, h) {
  const text = (id, v) => { document.getElementById(id).textContent = String(v); };
  text("state", s.serving ? "serving" : "draining (health NOT_SERVING)");
  document.body.dataset.serving = s.serving ? "yes" : "no";
  text("version", s.version);
  text("node", s.node);
  text("uptime", duration(s.uptime_s));
  text("streams", s.connected_streams);
  text("users", s.users);
  text("rate", s.messages_per_second.toFixed(2));
  text("p99", number(latest(h, "send_p99_ms")) + " ms");
  text("errors", number(latest(h, "errors_per_min:all")) + " /min");
  text("accepted", s.messages_accepted);
  text("pending", s.pending_messages);
  for (const chart of CHARTS) draw(chart, h);
  document.getElementById("personal").hidden = !s.personal_data;
  document.getElementById("personal-hidden").hidden = s.personal_data;
  if (s.personal_data) {
    fill("clients", s.clients.map(c => [c.user, c.device, c.peer, c.certificate_subject,
      since(c.since_ms, s.server_time_ms), c.messages_sent]), "no clients connected", 6);
    fill("rooms", s.rooms.map(r => [r.name, r.members, r.protected ? "yes" : "no"]),
      "no rooms", 3);
  }
  fill("logins", Object.keys(s.logins).sort().map(k => [k, s.logins[k]]), "none yet", 2);
  text("updated", new Date(s.server_time_ms).toISOString());
  document.body.dataset.state = "live";
}
async function get(path) {
  const response = await fetch(path, {cache: "no-store", credentials: "same-origin"});
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}
async function refresh() {
  try {
    const [s, h] = await Promise.all([get("api/status"), get("api/history")]);
    render(s, h);
  } catch (err) {
    document.getElementById("updated").textContent = "unreachable: " + err.message;
    document.body.dataset.state = "stale";
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
""".replace("@REFRESH_MS@", str(REFRESH_MS))

SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{SCRIPT_HASH}'; img-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1300px; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .3em; }
dl { display: grid; grid-template-columns: repeat(4, max-content auto); gap: .2em 1em; margin: 0; }
dt { color: #666; }
dd { margin: 0; font-weight: 600; }
body[data-serving=no] #state { color: #b00; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1em; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 4px; padding: .4em .6em; }
figcaption { font-weight: 600; }
figcaption small { font-weight: normal; color: #666; }
svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: #eee; } svg .axis { stroke: #999; }
svg text { font-size: 10px; fill: #666; }
svg .ylab, svg .xlab.end { text-anchor: end; }
svg .xlab.mid { text-anchor: middle; }
svg .line { fill: none; stroke-width: 1.5; }
.s0 { stroke: #1f77b4; fill: #1f77b4; color: #1f77b4; }
.s1 { stroke: #d62728; fill: #d62728; color: #d62728; }
.s2 { stroke: #2ca02c; fill: #2ca02c; color: #2ca02c; }
.s3 { stroke: #ff7f0e; fill: #ff7f0e; color: #ff7f0e; }
.s4 { stroke: #9467bd; fill: #9467bd; color: #9467bd; }
.s5 { stroke: #8c564b; fill: #8c564b; color: #8c564b; }
svg path.line { fill: none; }
.legend .key { margin-right: 1em; font-size: .9em; }
.legend .key::before { content: "\\25A0 "; }
table { border-collapse: collapse; min-width: 30em; }
th, td { text-align: left; padding: .25em .8em .25em 0; border-bottom: 1px solid #ddd; }
td.empty { color: #888; font-style: italic; }
.note { color: #666; }
footer { margin-top: 1.5em; color: #888; font-size: .9em; }
body[data-state=stale] footer { color: #b00; }
"""

CHARTS = (
    ("chart-messages", "Messages accepted", "per second: sends durably stored"),
    ("chart-deliveries", "Deliveries", "per second: mailbox entries stored for devices"),
    ("chart-latency", "Send latency", "ms, p50 and p99 of each interval"),
    ("chart-streams", "Connected streams", "Chat streams open on this node"),
    ("chart-logins", "Logins by outcome", "per minute"),
    ("chart-errors", "Errors by status code", "per minute, RPCs and stream endings not OK"),
)


def _figure(chart_id: str, title: str, note: str) -> str:
    return (
        f"<figure><figcaption>{title} <small>{note}</small></figcaption>"
        f'<svg id="{chart_id}" viewBox="0 0 600 150" role="img" aria-label="{title}" '
        f'data-points="0"></svg><div class="legend" id="{chart_id}-legend"></div></figure>'
    )


def render_page(title: str) -> str:
    """The whole page; ``title`` (the node name) is the only server string placed in it."""
    name = html.escape(title)
    charts = "\n".join(_figure(*chart) for chart in CHARTS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>securechat status: {name}</title>
<style>{STYLE}</style>
</head>
<body data-state="loading">
<h1>securechat status</h1>
<dl>
  <dt>state</dt><dd id="state">…</dd>
  <dt>messages per second</dt><dd id="rate">…</dd>
  <dt>send latency p99</dt><dd id="p99">…</dd>
  <dt>errors</dt><dd id="errors">…</dd>
  <dt>connected streams</dt><dd id="streams">…</dd>
  <dt>undelivered mailbox entries</dt><dd id="pending">…</dd>
  <dt>registered users</dt><dd id="users">…</dd>
  <dt>messages accepted</dt><dd id="accepted">…</dd>
  <dt>node</dt><dd id="node">{name}</dd>
  <dt>version</dt><dd id="version">…</dd>
  <dt>uptime</dt><dd id="uptime">…</dd>
</dl>
<h2>The last hour</h2>
<div class="charts">
{charts}
</div>
<section id="personal" hidden>
<h2>Connected clients</h2>
<table>
  <thead><tr><th>user</th><th>device</th><th>peer</th><th>certificate</th><th>since</th>
  <th>sent</th></tr></thead>
  <tbody id="clients"><tr><td colspan="6" class="empty">loading…</td></tr></tbody>
</table>
<h2>Rooms</h2>
<table>
  <thead><tr><th>room</th><th>members</th><th>password</th></tr></thead>
  <tbody id="rooms"><tr><td colspan="3" class="empty">loading…</td></tr></tbody>
</table>
</section>
<p id="personal-hidden" class="note">User names, addresses and room names are shown only with
the admin token (<code>status.admin_token</code>); <code>securechat-admin clients</code> lists
them too.</p>
<h2>Logins by outcome since start</h2>
<table>
  <thead><tr><th>outcome</th><th>count</th></tr></thead>
  <tbody id="logins"><tr><td colspan="2" class="empty">loading…</td></tr></tbody>
</table>
<noscript><p>This page needs JavaScript; the same data is at
<a href="api/status">api/status</a>.</p></noscript>
<footer>updated <span id="updated">never</span>; refreshes every {REFRESH_MS // 1000} s ·
<a href="api/status">JSON</a> · <a href="metrics">metrics</a></footer>
<script>{SCRIPT}</script>
</body>
</html>
"""
