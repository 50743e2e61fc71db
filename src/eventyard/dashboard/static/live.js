// eventyard dashboard: Live mode of the events list. An EventSource follows the page's
// stream of new events and puts each one at the top of the table. Every value from an event
// goes into the page with textContent, never as markup: a payload is text, whatever it holds.
"use strict";

(function () {
  const MAX_ROWS = 500; // the table keeps this many rows while live

  function cell(row, child) {
    const td = document.createElement("td");
    if (child !== undefined) { td.appendChild(child); }
    row.appendChild(td);
    return td;
  }

  function link(href, text, code) {
    const a = document.createElement("a");
    a.href = href;
    if (code) {
      const c = document.createElement("code");
      c.textContent = text;
      a.appendChild(c);
    } else {
      a.textContent = text;
    }
    return a;
  }

  function buildRow(data) {
    const tr = document.createElement("tr");
    tr.className = "fresh";
    tr.dataset.id = data.id;
    const time = document.createElement("time");
    time.dateTime = data.iso;
    time.textContent = data.time;
    const first = cell(tr);
    const a = document.createElement("a");
    a.href = data.url;
    a.appendChild(time);
    first.appendChild(a);
    if (data.test) {
      const mark = document.createElement("span");
      mark.className = "test-mark";
      mark.textContent = "test";
      first.appendChild(document.createTextNode(" "));
      first.appendChild(mark);
    }
    cell(tr, link(data.trigger_url, data.trigger, true));
    cell(tr).textContent = data.user_id;
    cell(tr).textContent = data.source;
    const payload = cell(tr);
    payload.className = "payload-cell";
    payload.textContent = data.excerpt;
    payload.title = data.excerpt;
    const states = cell(tr);
    states.className = "states-cell";
    for (const s of data.states) {
      const badge = document.createElement("span");
      badge.className = "state state-" + String(s.state).replace(/[^a-z0-9_-]/g, "");
      badge.textContent = (s.consumer || s.consumer_id) + ": " + s.state;
      states.appendChild(badge);
      states.appendChild(document.createTextNode(" "));
    }
    return tr;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const toggle = document.getElementById("live-toggle");
    const body = document.getElementById("event-rows");
    const status = document.getElementById("live-status");
    if (!toggle || !body || !status || !window.EventSource) { return; }
    toggle.hidden = false;
    let source = null;
    let count = 0;
    const seen = new Set();
    for (const row of body.querySelectorAll("tr[data-id]")) { seen.add(row.dataset.id); }

    function say(text) { status.textContent = text; }
    function countText() { return count === 1 ? "1 new event" : count + " new events"; }

    function stop(text) {
      if (source) { source.close(); source = null; }
      toggle.setAttribute("aria-pressed", "false");
      toggle.classList.remove("live-on");
      say(text);
    }

    function start() {
      count = 0;
      source = new EventSource(toggle.dataset.stream);
      toggle.setAttribute("aria-pressed", "true");
      toggle.classList.add("live-on");
      say("Live: waiting for new events…");
      source.addEventListener("open", () => {
        say(count === 0 ? "Live: waiting for new events…" : countText());
      });
      source.addEventListener("row", (message) => {
        let data;
        try { data = JSON.parse(message.data); } catch (err) { return; }
        if (seen.has(data.id)) { return; }
        seen.add(data.id);
        const empty = document.getElementById("no-events");
        if (empty) { empty.hidden = true; }
        body.insertBefore(buildRow(data), body.firstChild);
        while (body.rows.length > MAX_ROWS) { body.deleteRow(body.rows.length - 1); }
        count += 1;
        say(countText());
      });
      source.addEventListener("error", () => {
        // EventSource reconnects by itself (sending Last-Event-ID); say so meanwhile.
        if (source && source.readyState === EventSource.CONNECTING) {
          say("Live: reconnecting…");
        } else if (source && source.readyState === EventSource.CLOSED) {
          stop("Live stopped: the connection closed. Press Live to try again.");
        }
      });
    }

    toggle.addEventListener("click", () => {
      if (source) { stop("Live off."); } else { start(); }
    });
    window.addEventListener("pagehide", () => { if (source) { source.close(); } });
  });
})();
