"""The status page: static HTML plus a small inline script that renders /api/status every 2 s.

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
function render(s) {
  const text = (id, v) => { document.getElementById(id).textContent = String(v); };
  text("version", s.version);
  text("node", s.node);
  text("uptime", duration(s.uptime_s));
  text("streams", s.connected_streams);
  text("users", s.users);
  text("rate", s.messages_per_second.toFixed(2));
  text("accepted", s.messages_accepted);
  text("pending", s.pending_messages);
  fill("clients", s.clients.map(c => [c.user, c.device, c.peer, c.certificate_subject,
    since(c.since_ms, s.server_time_ms), c.messages_sent]), "no clients connected", 6);
  fill("rooms", s.rooms.map(r => [r.name, r.members, r.protected ? "yes" : "no"]),
    "no rooms", 3);
  fill("logins", Object.keys(s.logins).sort().map(k => [k, s.logins[k]]), "none yet", 2);
  text("updated", new Date(s.server_time_ms).toISOString());
  document.body.dataset.state = "live";
}
async function refresh() {
  try {
    const response = await fetch("api/status", {cache: "no-store", credentials: "same-origin"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
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
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .3em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; margin: 0; }
dt { color: #666; }
table { border-collapse: collapse; min-width: 30em; }
th, td { text-align: left; padding: .25em .8em .25em 0; border-bottom: 1px solid #ddd; }
td.empty { color: #888; font-style: italic; }
footer { margin-top: 1.5em; color: #888; font-size: .9em; }
body[data-state=stale] footer { color: #b00; }
"""


def render_page(title: str) -> str:
    """The whole page; ``title`` (the node name) is the only server string placed in it."""
    name = html.escape(title)
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
  <dt>version</dt><dd id="version">…</dd>
  <dt>node</dt><dd id="node">{name}</dd>
  <dt>uptime</dt><dd id="uptime">…</dd>
  <dt>connected streams</dt><dd id="streams">…</dd>
  <dt>registered users</dt><dd id="users">…</dd>
  <dt>messages per second</dt><dd id="rate">…</dd>
  <dt>messages accepted</dt><dd id="accepted">…</dd>
  <dt>undelivered mailbox entries</dt><dd id="pending">…</dd>
</dl>
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
<h2>Logins by outcome</h2>
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
