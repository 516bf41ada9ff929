/// The Studio's one page: HTML, CSS and JavaScript in one response, nothing fetched from
/// elsewhere (works offline; no build step). Every value from the store reaches the document
/// as text (`textContent`), never as markup.
enum StudioPage {
    static func html(csrfToken: String, maintenance: Bool, compaction: Bool) -> String {
        template.replacingOccurrences(of: "{{CSRF}}", with: csrfToken)
            .replacingOccurrences(of: "{{MAINTENANCE}}", with: maintenance ? "true" : "false")
            .replacingOccurrences(of: "{{COMPACTION}}", with: compaction ? "true" : "false")
    }

    private static let template = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="dugong-csrf" content="{{CSRF}}">
<title>Dugong Studio</title>
<style>
:root { --ink:#1d2630; --muted:#5d6b78; --line:#d9dee3; --soft:#f4f6f8; --accent:#0a6e8a; --bad:#b42318; --good:#1a7f37; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--ink); background:#fff; }
header { display:flex; align-items:center; gap:18px; padding:10px 18px; border-bottom:1px solid var(--line); background:var(--soft); }
header h1 { font-size:16px; margin:0; }
header .store { color:var(--muted); font-family:ui-monospace, monospace; font-size:12px; }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; font-weight:600; }
nav a.active { color:var(--ink); border-bottom:2px solid var(--accent); }
.badge { padding:2px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.badge.good { background:#dcf5e3; color:var(--good); } .badge.bad { background:#fde4e1; color:var(--bad); }
main { padding:14px 18px; }
.columns { display:grid; grid-template-columns: 250px 330px minmax(0, 1fr); gap:14px; }
.scroll { max-height:78vh; overflow:auto; }
.panel { border:1px solid var(--line); border-radius:6px; padding:10px; margin-bottom:14px; }
.panel h2 { font-size:14px; margin:0 0 8px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; }
tr.pick { cursor:pointer; } tr.pick:hover { background:var(--soft); } tr.selected { background:#e1f0f5; }
ul.list { list-style:none; padding:0; margin:0; max-height:60vh; overflow:auto; }
ul.list li { padding:4px 6px; cursor:pointer; border-bottom:1px solid var(--line); font-family:ui-monospace, monospace; font-size:12px; word-break:break-all; }
ul.list li:hover { background:var(--soft); } ul.list li.selected { background:#e1f0f5; }
pre { background:var(--soft); padding:8px; border-radius:4px; overflow:auto; max-height:40vh; margin:4px 0 10px; font-size:12px; }
.mono { font-family:ui-monospace, monospace; font-size:12px; word-break:break-all; }
.muted { color:var(--muted); } .error { color:var(--bad); font-weight:600; }
input, select, button { font:inherit; padding:4px 8px; }
button { cursor:pointer; border:1px solid var(--line); background:#fff; border-radius:4px; }
button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
.row { display:flex; gap:8px; align-items:center; flex-wrap:wrap; margin-bottom:8px; }
.changed-before { color:var(--bad); } .changed-after { color:var(--good); }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
</style>
</head>
<body>
<header>
  <h1>Dugong Studio</h1>
  <span id="store" class="store"></span>
  <span id="health-badge" class="badge"></span>
  <nav>
    <a href="#/streams" data-tab="streams">Streams</a>
    <a href="#/log" data-tab="log">Log</a>
    <a href="#/health" data-tab="health">Health</a>
    <a href="#/checkpoints" data-tab="checkpoints">Checkpoints</a>
  </nav>
</header>
<main>
  <div id="error" class="error"></div>

  <section id="tab-streams" hidden>
    <div class="columns">
      <div>
        <div class="panel">
          <h2>Streams</h2>
          <div class="row"><input id="stream-search" placeholder="search names" aria-label="search streams"><button id="stream-search-go">Search</button></div>
          <div id="categories" class="row"></div>
          <ul id="stream-list" class="list"></ul>
          <div class="row"><button id="streams-more" hidden>More streams</button><span id="streams-count" class="muted"></span></div>
        </div>
      </div>
      <div>
        <div class="panel" id="stream-panel" hidden>
          <h2 id="stream-title" class="mono"></h2>
          <div id="stream-facts" class="muted"></div>
          <div class="scroll"><table><thead><tr><th>version</th><th>type</th><th>time (UTC)</th></tr></thead><tbody id="events"></tbody></table></div>
          <div class="row"><button id="events-newer" hidden>Earlier events</button><button id="events-older" hidden>Later events</button></div>
        </div>
      </div>
      <div>
        <div class="panel" id="aggregate-panel" hidden>
          <h2>The aggregate at this event</h2>
          <div class="row">
            <label>Time travel: version <input id="travel-version" size="6" inputmode="numeric"></label>
            <label>or time <input id="travel-time" size="24" placeholder="2026-11-30T12:00:00Z"></label>
            <button id="travel-go">Go</button>
          </div>
          <div id="aggregate-message" class="muted"></div>
          <div id="aggregate-body" hidden>
            <h2>Changes</h2>
            <table><thead><tr><th>field</th><th>before</th><th>after</th></tr></thead><tbody id="changes"></tbody></table>
            <h2>Command context</h2>
            <table><tbody id="context"></tbody></table>
            <div class="grid2">
              <div><h2>State before</h2><pre id="state-before"></pre></div>
              <div><h2>State after</h2><pre id="state-after"></pre></div>
            </div>
          </div>
        </div>
        <div class="panel" id="event-detail" hidden>
          <h2>Event <span id="detail-title" class="mono"></span></h2>
          <table><tbody id="envelope"></tbody></table>
          <div class="grid2">
            <div><h2>data</h2><pre id="detail-data"></pre></div>
            <div><h2>metadata</h2><pre id="detail-metadata"></pre></div>
          </div>
        </div>
      </div>
    </div>
  </section>

  <section id="tab-log" hidden>
    <div class="panel">
      <h2>The global log</h2>
      <div class="row">
        <input id="filter-type" placeholder="event type" aria-label="event type">
        <input id="filter-stream" placeholder="stream prefix" aria-label="stream prefix">
        <input id="filter-since" placeholder="since (2026-11-30T12:00:00Z)" aria-label="since">
        <input id="filter-until" placeholder="until (exclusive)" aria-label="until (exclusive)">
        <input id="filter-from" placeholder="from (a cursor)" size="12" aria-label="from cursor">
        <button id="filter-go" class="primary">Show</button>
        <button id="tail-toggle">Follow live</button>
        <span id="tail-state" class="muted"></span>
      </div>
      <div id="log-facts" class="muted"></div>
      <table><thead><tr><th>position</th><th>stream</th><th>version</th><th>type</th><th>time</th></tr></thead><tbody id="log-rows"></tbody></table>
      <div class="row"><button id="log-next" hidden>Next page</button></div>
    </div>
  </section>

  <section id="tab-health" hidden>
    <div class="panel"><h2>Store</h2><table><tbody id="health-facts"></tbody></table></div>
    <div class="panel"><h2>Segments</h2><table><thead><tr><th>file</th><th>bytes</th><th>first position</th></tr></thead><tbody id="segments"></tbody></table></div>
    <div class="panel"><h2>Maintenance</h2>
      <div id="maintenance-off" class="muted">Read-only. Start the Studio with --allow-maintenance (the application stopped) to verify or compact.</div>
      <div id="maintenance-on" class="row" hidden><button id="verify-run">Verify</button><button id="compact-run">Compact</button></div>
      <pre id="maintenance-result" hidden></pre>
    </div>
  </section>

  <section id="tab-checkpoints" hidden>
    <div class="panel"><h2>Projections and consumers</h2>
      <table><thead><tr><th>name</th><th>reads on from</th><th>behind the log's end</th><th>saved at</th></tr></thead><tbody id="checkpoint-rows"></tbody></table>
      <div id="checkpoints-none" class="muted" hidden>No checkpoints in this store.</div>
    </div>
    <div class="panel"><h2>Running readers of this application</h2>
      <table><thead><tr><th>reader</th><th>state</th><th>reads on from</th><th>parked messages</th><th></th></tr></thead><tbody id="reader-rows"></tbody></table>
      <div id="readers-none" class="muted" hidden>The application gave this Studio no running readers (DugongStudio's readers parameter).</div>
      <pre id="reader-result" hidden></pre>
    </div>
  </section>
</main>
<script>
"use strict";
const csrf = document.querySelector('meta[name="dugong-csrf"]').content;
// Off loopback, the access token of the URL the page was opened with, sent with each request
// (never a cookie: a cookie would go to every other service of the same host, whatever its port).
const accessToken = new URLSearchParams(location.search).get("token");
const maintenance = {{MAINTENANCE}};
const compaction = {{COMPACTION}};
const $ = (id) => document.getElementById(id);
let overview = null;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
function row(cells, className) {
  const tr = element("tr", null, className);
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : element("td", cell));
  return tr;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function showError(message) { $("error").textContent = message || ""; }

async function api(path, method) {
  const headers = method === "POST" ? { "X-Dugong-CSRF": csrf } : {};
  if (accessToken) headers["Authorization"] = "Bearer " + accessToken;
  const response = await fetch(path, { method: method || "GET", headers: headers });
  const body = await response.json().catch(() => ({ error: "unreadable answer (" + response.status + ")" }));
  // Damage a read met: the health badge says so (the overview now lists it).
  if (body.damage === true && path !== "/api/overview") loadOverview().catch(() => {});
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}
// Percent-encoded (a space as %20: the server reads "+" as itself, as names may hold it).
function query(parameters) {
  const pairs = [];
  for (const [key, value] of Object.entries(parameters)) {
    if (value !== undefined && value !== null && value !== "") pairs.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
  }
  return pairs.join("&");
}
function payloadText(payload) {
  if (payload.json !== undefined) return payload.json;
  if (payload.text !== undefined) return payload.text;
  if (payload.base64 !== undefined) return "(not UTF-8; base64) " + payload.base64;
  return "(none)";
}

// ---- Overview and health
async function loadOverview() {
  overview = await api("/api/overview");
  $("store").textContent = overview.directory + " · " + overview.events.toLocaleString() + " events · " + overview.streams.toLocaleString() + " streams";
  const damaged = overview.damageAtOpen.length > 0 || (overview.damageSeen || []).length > 0 || (overview.lastVerify && !overview.lastVerify.clean);
  $("health-badge").textContent = damaged ? "damage found" : (overview.tornBytesAtOpen > 0 ? "torn tail" : "healthy");
  $("health-badge").className = "badge " + (damaged ? "bad" : "good");
}
function renderHealth() {
  const facts = $("health-facts"); clear(facts);
  const o = overview;
  const lines = o.kind === "postgres" ? [
    ["database", o.directory], ["events", o.events.toLocaleString()], ["streams", o.streams.toLocaleString()],
    ["schema version", o.schemaVersion], ["table bytes (with indexes)", o.fileBytes.toLocaleString()],
    ["data and metadata bytes", o.rawPayloadBytes.toLocaleString()],
    ["oldest open transaction", o.oldestOpenTransactionSeconds === undefined ? "none (readers are not held back)" : o.oldestOpenTransactionSeconds.toFixed(1) + " s (readers of the log wait for it)"],
  ] : [
    ["directory", o.directory], ["opened", o.readOnly ? "read-only" : "for writing (maintenance)"],
    ["events", o.events.toLocaleString()], ["streams", o.streams.toLocaleString()], ["head position", o.headPosition],
    ["segment bytes", o.fileBytes.toLocaleString()], ["frames holding events", o.eventFrames.toLocaleString()],
    ["frame bytes", o.frameBytes.toLocaleString()],
    ["payload bytes before compression", o.rawPayloadBytes.toLocaleString()], ["compression", o.compressionRatio == null ? "none yet (no events)" : o.compressionRatio + " : 1"],
    ["torn tail at open", o.tornBytesAtOpen + " bytes"],
    ["damage found at open", o.damageAtOpen.length ? o.damageAtOpen.join("\n") : "none"],
    ["damage reads met (this session)", o.damageSeen.length ? o.damageSeen.join("\n") : "none"],
    ["last verify (this session)", o.lastVerify ? (o.lastVerify.clean ? "clean" : "PROBLEMS: " + o.lastVerify.problems.join("; ")) + " at " + o.lastVerify.at : "not run"],
    ["last compaction (this session)", o.lastCompaction ? o.lastCompaction.eventsBefore + " → " + o.lastCompaction.eventsAfter + " events, " + o.lastCompaction.bytesBefore + " → " + o.lastCompaction.bytesAfter + " bytes" : "not run"],
  ];
  for (const [name, value] of lines) facts.appendChild(row([element("th", name), element("td", value, "mono")]));
  const segments = $("segments"); clear(segments);
  for (const s of o.segments) segments.appendChild(row([element("td", s.name, "mono"), s.bytes.toLocaleString(), s.firstPosition]));
  $("maintenance-on").hidden = !maintenance;
  $("compact-run").hidden = !compaction;
  $("maintenance-off").hidden = maintenance;
}
async function runMaintenance(action, question) {
  if (!confirm(question)) return;
  const result = $("maintenance-result");
  result.hidden = false; result.textContent = action + "…";
  try {
    const answer = await api("/api/" + action, "POST");
    result.textContent = JSON.stringify(answer, null, 2);
    await loadOverview(); renderHealth();
  } catch (error) { result.textContent = action + " failed: " + error.message; }
}
$("verify-run").onclick = () => runMaintenance("verify", "Verify every frame of the store? It reads the whole store.");
$("compact-run").onclick = () => runMaintenance("compact", "Compact the store? It rewrites its segments (reclaiming deleted and truncated events).");

// ---- Streams
let streamsNext = 0, streamsNextCheck = null;
let streamCategory = null;  // a category button's, "" for streams without one; null: any
async function loadStreams(reset) {
  if (reset) { streamsNext = 0; streamsNextCheck = null; clear($("stream-list")); }
  // A category button's category ("" for none) goes as it is, even empty.
  const category = streamCategory === null ? "" : "&category=" + encodeURIComponent(streamCategory);
  const page = await api("/api/streams?" + query({ search: $("stream-search").value, after: streamsNext, afterCheck: streamsNextCheck, limit: 100 }) + category);
  // The store was compacted between pages (its list reordered): the answer starts again.
  if (page.restarted) clear($("stream-list"));
  for (const s of page.streams) {
    const item = element("li", s.stream + "  (v" + s.version + (s.tombstoned ? ", tombstoned" : "") + ")");
    item.dataset.stream = s.stream;
    item.onclick = () => { location.hash = "#/stream/" + encodeURIComponent(s.stream); };
    $("stream-list").appendChild(item);
  }
  streamsNext = page.next; streamsNextCheck = page.nextCheck;
  $("streams-more").hidden = page.next === null;
  // The total is the store's: with a search or a category, say how many of them matched so far.
  const shown = $("stream-list").children.length, total = page.total.toLocaleString() + " streams";
  const filtered = $("stream-search").value !== "" || streamCategory !== null;
  $("streams-count").textContent = !filtered ? shown + " shown of " + total
    : shown + (page.next === null ? " matching, of " : " matching so far (more to look at), of ") + total;
}
async function loadCategories() {
  const categories = await api("/api/categories");
  const box = $("categories"); clear(box);
  for (const c of categories.slice(0, 30)) {
    const button = element("button", (c.category || "(none)") + " · " + c.streams);
    button.onclick = () => { streamCategory = c.category; $("stream-search").value = ""; loadStreams(true).catch((e) => showError(e.message)); };
    box.appendChild(button);
  }
}
$("stream-search-go").onclick = () => { streamCategory = null; loadStreams(true).catch((e) => showError(e.message)); };
$("stream-search").onkeydown = (event) => { if (event.key === "Enter") $("stream-search-go").click(); };
$("streams-more").onclick = () => loadStreams(false).catch((e) => showError(e.message));

let currentStream = null;
async function openStream(name, from, selectVersion) {
  const page = await api("/api/stream?" + query({ name, from, limit: 50 }));
  currentStream = { name, page };
  $("stream-panel").hidden = false;
  $("stream-title").textContent = name;
  $("stream-facts").textContent = "version " + page.version + (page.firstVisibleVersion > 1 ? " · begins at " + page.firstVisibleVersion : "") + (page.tombstoned ? " · tombstoned" : "");
  const body = $("events"); clear(body);
  for (const event of page.events) {
    const tr = row([event.version, event.type, event.timestamp.slice(11, 23)], "pick");
    tr.title = event.timestamp + " · position " + event.position;
    tr.dataset.version = event.version;
    tr.onclick = () => { location.hash = "#/stream/" + encodeURIComponent(name) + "/" + event.version; };
    body.appendChild(tr);
  }
  const first = page.events.length ? page.events[0].version : 1;
  $("events-newer").hidden = first <= Math.max(page.firstVisibleVersion, 1);
  $("events-newer").onclick = () => openStream(name, Math.max(1, first - 50)).catch((e) => showError(e.message));
  $("events-older").hidden = page.next === null;
  $("events-older").onclick = () => openStream(name, page.next).catch((e) => showError(e.message));
  for (const item of $("stream-list").children) item.classList.toggle("selected", item.dataset.stream === name);
  if (selectVersion) await selectEvent(selectVersion);
}
async function selectEvent(version) {
  let event = currentStream.page.events.find((e) => e.version === version);
  if (!event) {
    await openStream(currentStream.name, Math.max(1, version - 10));
    event = currentStream.page.events.find((e) => e.version === version);
    if (!event) { showError("the stream has no visible version " + version); return; }
  }
  for (const tr of $("events").children) tr.classList.toggle("selected", Number(tr.dataset.version) === version);
  $("event-detail").hidden = false;
  $("detail-title").textContent = event.stream + " v" + event.version;
  const envelope = $("envelope"); clear(envelope);
  const fields = [["id", event.id], ["type", event.type], ["version", event.version], ["position", event.position], ["timestamp", event.timestamp]];
  if (event.envelope) for (const [key, value] of Object.entries(event.envelope)) fields.push([key, value === null ? "—" : value]);
  for (const [name, value] of fields) envelope.appendChild(row([element("th", name), element("td", value, "mono")]));
  $("detail-data").textContent = payloadText(event.data);
  $("detail-metadata").textContent = payloadText(event.metadata);
  await showAggregate(event.stream, { version: event.version });
}
async function showAggregate(stream, at) {
  const panel = $("aggregate-panel");
  panel.hidden = false;
  $("aggregate-body").hidden = true;
  if (!overview.aggregates) {
    $("aggregate-message").textContent = "States and changes need the application's aggregate types: embed DugongStudio in the application (see the README).";
    return;
  }
  try {
    const answer = await api("/api/aggregate-event?" + query({ stream, version: at.version, at: at.time }));
    $("aggregate-message").textContent = "State of " + answer.stream + " after version " + answer.version + ".";
    $("travel-version").value = answer.version;
    const changes = $("changes"); clear(changes);
    for (const c of answer.changes) changes.appendChild(row([element("td", c.path, "mono"), element("td", c.before ?? "—", "mono changed-before"), element("td", c.after ?? "—", "mono changed-after")]));
    if (!answer.changes.length) changes.appendChild(row([element("td", answer.beforeHidden ? "the state before is hidden" : "no field changed", "muted"), "", ""]));
    const context = $("context"); clear(context);
    for (const [name, value] of Object.entries(answer.context)) context.appendChild(row([element("th", name), element("td", value ?? "—", "mono")]));
    $("state-before").textContent = answer.before ?? (answer.beforeHidden ? "(hidden: the stream was truncated before this event, and no snapshot restores that state)" : "(no state yet)");
    $("state-after").textContent = answer.after ?? "(none)";
    $("aggregate-body").hidden = false;
  } catch (error) { $("aggregate-message").textContent = error.message; }
}
$("travel-go").onclick = () => {
  if (!currentStream) return;
  const time = $("travel-time").value.trim();
  if (time) { showAggregate(currentStream.name, { time }); return; }
  const version = Number($("travel-version").value);
  if (version >= 1) location.hash = "#/stream/" + encodeURIComponent(currentStream.name) + "/" + version;
};

// ---- The log and its live tail
let logNext = null;
let logHead = null;  // the log's end when the page was loaded: a live tail starts there
let logFilter = {};
// A page answered after a newer one was shown is dropped (a newer one refused does not drop it).
let logGeneration = 0, logShown = 0;
async function loadLog(reset) {
  const generation = ++logGeneration;
  let filter = logFilter, from = logNext;
  if (reset) {
    filter = { type: $("filter-type").value, stream: $("filter-stream").value, since: $("filter-since").value, until: $("filter-until").value };
    from = $("filter-from").value || "";
  }
  const page = await api("/api/log?" + query({ ...filter, from, limit: 100 }));
  if (generation < logShown) return;
  logShown = generation;
  if (reset) {
    // Kept once the server took it (a refused filter kept the page and its live log as they were).
    logFilter = filter;
    clear($("log-rows"));
    // A new page ends the live log: following again starts at this page's end, with its filter
    // (a paused tail resumed after it mixed its old cursor into the new page).
    if (tail) { tail.close(); tail = null; }
    tailPaused = false; tailNext = null; tailLast = null;
    $("tail-toggle").textContent = "Follow live"; $("tail-state").textContent = "";
  }
  for (const event of page.events) $("log-rows").appendChild(logRow(event));
  logNext = page.next;
  logHead = page.head;
  $("log-next").hidden = page.complete;
  $("log-facts").textContent = "looked up to " + page.next + " (the log's end: " + page.head + ")" + (page.complete ? ", all of it" : "");
  // The events before damage are shown; the page ends at it (and Health says so).
  if (page.damage) { showError(page.damage); loadOverview().catch(() => {}); }
}
function logRow(event) {
  // (hidden null: unknown, the damage found at open may have held what hides it.)
  const unknown = event.hidden === null;
  const tr = row([event.position, element("td", event.stream, "mono"), event.version + (event.hidden ? " (hidden)" : unknown ? " (hidden?)" : ""), event.type, event.timestamp], event.hidden ? "pick muted" : "pick");
  if (event.hidden) tr.title = "its stream no longer shows it: truncated, deleted or tombstoned";
  if (unknown) tr.title = "damage found at open may have held a delete, truncation or tombstone that hides it: whether its stream shows it is unknown";
  tr.onclick = () => { location.hash = "#/stream/" + encodeURIComponent(event.stream) + "/" + event.version; };
  return tr;
}
// A filter applied, its page still on its way: "Follow live" waits for it (it followed the old
// filter, and the new page was dropped).
let logReset = null;
$("filter-go").onclick = () => {
  const loading = loadLog(true);
  logReset = loading;
  loading.catch((e) => showError(e.message)).finally(() => { if (logReset === loading) logReset = null; });
};
$("log-next").onclick = () => loadLog(false).catch((e) => showError(e.message));

let tail = null, tailPaused = false, tailNext = null, tailLast = null;
function startTail() {
  // (An EventSource sends no headers of the page's: the access token goes in the address.)
  // With the log's filter: the live log shows what the page does.
  tail = new EventSource("/api/tail?" + query({ ...logFilter, from: tailNext, token: accessToken }));
  // Events the filter left out: resumed, the tail goes on after them.
  tail.addEventListener("cursor", (message) => { tailNext = JSON.parse(message.data).next; });
  tail.onmessage = (message) => {
    const event = JSON.parse(message.data);
    tailNext = event.next;
    tailLast = event.position;
    const rows = $("log-rows");
    rows.insertBefore(logRow(event), rows.firstChild);
    while (rows.children.length > 200) rows.removeChild(rows.lastChild);
  };
  // On a lost connection the browser reconnects by itself, from the last event's cursor
  // (Last-Event-ID).
  // A refused reconnection (not an event stream) closes it for good: say so.
  tail.onerror = () => {
    if (tail && tail.readyState === EventSource.CLOSED) {
      tail = null; tailPaused = true;
      $("tail-toggle").textContent = "Resume"; $("tail-state").textContent = "stopped after position " + (tailLast ?? "—");
      showError("the live log stopped: the Studio refused to go on (reload the page)");
    } else {
      $("tail-state").textContent = "reconnecting…";
    }
  };
  // The log cannot be read further (damage): the server ends the tail; reconnecting would
  // meet the same damage for ever.
  tail.addEventListener("damage", (message) => {
    tail.close(); tail = null; tailPaused = true;
    $("tail-toggle").textContent = "Resume"; $("tail-state").textContent = "stopped after position " + (tailLast ?? "—");
    showError(JSON.parse(message.data).error);
    loadOverview().catch(() => {});
  });
  tail.onopen = () => { $("tail-state").textContent = "following"; };
}
$("tail-toggle").onclick = async () => {
  if (tail) {
    tail.close(); tail = null; tailPaused = true;
    $("tail-toggle").textContent = "Resume"; $("tail-state").textContent = "paused after position " + (tailLast ?? "—");
  } else {
    if (logReset) {
      $("tail-state").textContent = "connecting…";
      // (Refused, the filter before it stays; its page ended a paused tail: following starts anew.)
      await logReset.catch(() => {});
      if (tail) return;  // a second click started it meanwhile
    }
    if (!tailPaused) {
      // From the end of the page loaded: nothing committed since is missed.
      tailNext = logHead;
      logShown = ++logGeneration;  // a page still on its way is not mixed into the live log
      clear($("log-rows")); $("log-next").hidden = true;
      $("log-facts").textContent = "new events appear at the top as they are committed";
    }
    startTail();
    $("tail-toggle").textContent = "Pause"; $("tail-state").textContent = "connecting…";
  }
};

// ---- Checkpoints
async function loadCheckpoints() {
  const answer = await api("/api/checkpoints");
  const body = $("checkpoint-rows"); clear(body);
  for (const c of answer.checkpoints) body.appendChild(row([element("td", c.name, "mono"), c.cursor ?? "unreadable", c.behind ?? "—", c.savedAt]));
  $("checkpoints-none").hidden = answer.checkpoints.length > 0;
  await loadReaders();
}
async function loadReaders() {
  const readers = await api("/api/readers");
  const body = $("reader-rows"); clear(body);
  for (const r of readers) {
    const actions = element("td");
    const button = (label, run) => { const b = element("button", label); b.onclick = run; actions.appendChild(b); };
    if (r.parked) button("Show parked", () => readerAction(() => api("/api/readers/parked?" + query({ name: r.name }))));
    if (maintenance) {
      if (r.paused) {
        button("Resume", () => readerAction(() => api("/api/readers/resume?" + query({ name: r.name }), "POST")));
        button("Rewind…", () => {
          const to = prompt("Move " + r.name + "'s checkpoint to which cursor? (start: the beginning; a projection sees those events again, a consumer only those it has not consumed)", "start");
          if (to) readerAction(() => api("/api/readers/rewind?" + query({ name: r.name, to }), "POST"));
        });
      } else {
        button("Pause", () => readerAction(() => api("/api/readers/pause?" + query({ name: r.name }), "POST")));
      }
      if (r.parked) button("Replay parked", () => {
        if (confirm("Replay the " + r.parked + " parked messages of " + r.name + "?")) readerAction(() => api("/api/readers/replay?" + query({ name: r.name }), "POST"));
      });
    }
    const tr = row([element("td", r.name, "mono"), r.paused ? "paused" : "reading", r.cursor, r.parked ?? "—", actions]);
    tr.dataset.reader = r.name;
    body.appendChild(tr);
  }
  $("readers-none").hidden = readers.length > 0;
}
async function readerAction(run) {
  const result = $("reader-result");
  result.hidden = false;
  try { result.textContent = JSON.stringify(await run(), null, 2); } catch (error) { result.textContent = error.message; }
  await loadReaders().catch((error) => showError(error.message));
}

// ---- Navigation: #/streams, #/stream/NAME[/VERSION], #/log, #/health, #/checkpoints
async function route() {
  showError("");
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const tab = parts[0] === "stream" ? "streams" : (parts[0] || "streams");
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== "tab-" + tab;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.tab === tab);
  try {
    if (tab === "streams") {
      if (!$("stream-list").children.length) { await loadStreams(true); loadCategories().catch(() => {}); }
      if (parts[0] === "stream" && parts.length > 1) {
        const name = decodeURIComponent(parts[1]);
        const version = parts[2] ? Number(parts[2]) : null;
        if (currentStream && currentStream.name === name && version) await selectEvent(version);
        else await openStream(name, version ? Math.max(1, version - 10) : 1, version);
      }
    } else if (tab === "log") {
      if (!$("log-rows").children.length && !tail && !tailPaused) await loadLog(true);
    } else if (tab === "health") {
      await loadOverview(); renderHealth();
    } else if (tab === "checkpoints") {
      await loadCheckpoints();
    }
  } catch (error) { showError(error.message); }
}
window.addEventListener("hashchange", route);
// "studio-first-page": the first page's data is on screen (tools/studio/first-page.py times it).
loadOverview().then(route).then(() => performance.mark("studio-first-page")).catch((error) => showError(error.message));
</script>
</body>
</html>
"""#
}
