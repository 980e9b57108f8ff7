// The live wallboard (docs/SERVE.md). Served from /assets/wallboard.js: the
// page has no inline script (Content-Security-Policy: script-src 'self').
// Every `wallboard` message of /events is the /api/wallboard document; the
// tables are rebuilt from it with textContent only (no HTML from data), and
// every cell with data-since-ms advances once a second from the server's
// clock: the page carries it (data-now-ms, when the server rendered the
// page) and it advances with the browser's monotonic timer, so neither a
// wrong browser clock nor `serve --at` (a replayed day) skews the waits.
// The server renders the first state itself; this script takes over.
// Nothing is polled: the server pushes.
'use strict';
(function () {
  var root = document.getElementById('wallboard');
  var anchor = { server: Number(root.dataset.nowMs), local: performance.now() };
  function serverNow() {
    return anchor.server + (performance.now() - anchor.local);
  }
  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var ss = String(s % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }
  // An instant as the server's --tz reads it, with its date and zone
  // (`2025-11-24 10:00:00 America/New_York`): the server's clock, which
  // under `serve --at` is a replayed day, not the browser's.
  function instant(ms, zone) {
    try {
      var parts = {};
      new Intl.DateTimeFormat('en-CA', {
        timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit',
        day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'
      }).formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
      return parts.year + '-' + parts.month + '-' + parts.day + ' ' + parts.hour + ':' +
        parts.minute + ':' + parts.second + ' ' + zone;
    } catch (e) {
      return new Date(ms).toISOString();
    }
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text === null || text === undefined ? '-' : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function since(tr, ms, cls) {
    var td = cell(tr, '', cls);
    if (ms === null || ms === undefined) {
      td.textContent = '-';
      return td;
    }
    td.dataset.sinceMs = String(ms);
    td.textContent = clock(serverNow() - ms);
    return td;
  }
  function pct(v) {
    return v === null || v === undefined ? '-' : (v * 100).toFixed(1) + '%';
  }
  function secs(v) {
    return v === null || v === undefined ? '-' : (v / 1000).toFixed(1) + 's';
  }
  // Each table's rows by key, with the JSON of the data they show: a row
  // whose data did not change is kept as it is (its waits go on ticking),
  // so a document redraws only the rows it changes, not the whole floor.
  var shown = { queues: new Map(), agents: new Map(), 'in-progress': new Map() };
  function sync(id, rows, key, build) {
    var tbody = document.getElementById(id).tBodies[0];
    var before = shown[id];
    var now = new Map();
    var wanted = [];
    rows.forEach(function (r) {
      var k = key(r);
      var json = JSON.stringify(r);
      var had = before.get(k);
      var tr = had && had.json === json && !now.has(k) ? had.tr : build(r);
      now.set(k, { json: json, tr: tr });
      wanted.push(tr);
    });
    shown[id] = now;
    var keep = new Set(wanted);
    Array.prototype.slice.call(tbody.rows).forEach(function (tr) {
      if (!keep.has(tr)) tbody.removeChild(tr);
    });
    // The rows before `at` are wanted's first ones, in order: only a row
    // out of place is moved.
    var at = tbody.firstChild;
    wanted.forEach(function (tr) {
      if (tr === at) {
        at = at.nextSibling;
      } else {
        tbody.insertBefore(tr, at);
      }
    });
  }
  function queueRow(r) {
    var tr = document.createElement('tr');
    tr.dataset.queue = r.queueId === null ? 'none' : String(r.queueId);
    tr.dataset.channel = r.mediaType === null ? 'none' : r.mediaType;
    cell(tr, r.queueId);
    cell(tr, r.mediaType);
    cell(tr, r.waiting, 'num');
    since(tr, r.oldestWaitingSinceMs, 'num longest');
    cell(tr, r.offered, 'num');
    cell(tr, r.answered, 'num');
    cell(tr, r.abandoned, 'num');
    cell(tr, pct(r.serviceLevel), 'num');
    cell(tr, secs(r.asaMs), 'num');
    cell(tr, r.outbound, 'num');
    cell(tr, r.outboundConnected, 'num');
    return tr;
  }
  function agentRow(r) {
    var tr = document.createElement('tr');
    tr.dataset.agent = r.agentId;
    tr.dataset.state = String(r.state);
    tr.dataset.activity = r.activity === null ? 'none' : r.activity;
    cell(tr, r.agentId);
    cell(tr, r.stateName);
    since(tr, r.sinceMs, 'num');
    cell(tr, r.activity, 'stage');
    since(tr, r.activitySinceMs, 'num');
    cell(tr, r.interactions, 'num');
    return tr;
  }
  function legRow(r) {
    var tr = document.createElement('tr');
    tr.dataset.guid = r.interactionGUID;
    tr.dataset.stage = r.stage;
    var td = cell(tr, '');
    var link = document.createElement('a');
    link.href = '/contact/' + encodeURIComponent(r.interactionGUID);
    link.textContent = r.interactionGUID;
    td.appendChild(link);
    cell(tr, r.stage, 'stage');
    since(tr, r.sinceMs, 'num wait');
    cell(tr, r.queueId);
    cell(tr, r.mediaType);
    cell(tr, r.agentId);
    return tr;
  }
  function render(w) {
    sync('queues', w.queues, function (r) {
      return String(r.queueId) + '\u0000' + String(r.mediaType);
    }, queueRow);
    sync('agents', w.agents, function (r) { return r.agentId; }, agentRow);
    sync('in-progress', w.inProgress, function (r) { return r.interactionGUID; }, legRow);
    var status = document.getElementById('status');
    status.textContent = 'live: ' + w.records + ' records, ' + w.inProgress.length +
      ' in progress, as of ' + instant(w.asOfMs, w.timeZone);
    status.className = 'live';
  }
  function tick() {
    document.querySelectorAll('[data-since-ms]').forEach(function (td) {
      td.textContent = clock(serverNow() - Number(td.dataset.sinceMs));
    });
  }
  setInterval(tick, 1000);
  var source = new EventSource('/events');
  source.addEventListener('wallboard', function (e) {
    render(JSON.parse(e.data));
  });
  source.addEventListener('problem', function (e) {
    var status = document.getElementById('status');
    status.textContent = 'not live: ' + e.data;
    status.className = 'down';
  });
  source.onerror = function () {
    var status = document.getElementById('status');
    status.textContent = 'reconnecting…';
    status.className = 'down';
  };
})();
