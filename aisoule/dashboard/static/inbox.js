/* aisoule inbox: the live channel (GET /api/events through EventSource) and the composer's
   small helpers. No inline script (strict CSP). What a live event changes is fetched again by
   htmx: the list (#conv-list listens for "inbox-refresh"), the open conversation (#pane-live,
   "inbox-pane") and its composer (#composer, "inbox-composer"). */
(function () {
  "use strict";

  var root = document.getElementById("inbox");
  if (!root) return;
  var url = root.getAttribute("data-live");
  var openId = root.getAttribute("data-conversation") || "";
  var last = root.getAttribute("data-last-event-id") || "";
  var statusEl = document.getElementById("live-status");
  var TYPES = ["message.created", "message.status", "conversation.updated", "note.created"];
  var POLL_MS = 5000;

  /* What the stream delivered, for people debugging and for the browser tests. */
  var live = { log: [], dupes: 0, state: "connecting", connects: 0 };
  window.aisouleLive = live;
  var seen = {};
  var source = null, retryTimer = null, pollTimer = null, delay = 500;
  var pending = {}, flushTimer = null, stash = null;

  function setState(state) {
    live.state = state;
    root.setAttribute("data-live-state", state);
    if (!statusEl) return;
    statusEl.setAttribute("data-state", state);
    statusEl.textContent = state === "live" ? "Live: new messages appear as they arrive."
      : state === "down" ? "Live updates are interrupted: reconnecting; meanwhile the page refreshes every 5 seconds."
      : "Connecting to live updates…";
  }

  /* One fetch at a time per region; an event during a fetch fetches once more after it (the
     region is replaced by the answer, so htmx's own queue on the old element would be lost). */
  var busy = {}, again = {};
  function load(name) {
    var el = document.querySelector("[data-on=" + name + "]");
    if (!el || !window.htmx) return;
    if (busy[name]) { again[name] = true; return; }
    busy[name] = true;
    if (name === "inbox-composer") {
      var text = document.getElementById("reply-text");
      if (text && text.value) stash = text.value; // a live refresh keeps what is being typed
    }
    var done = function () {
      busy[name] = false;
      if (again[name]) { again[name] = false; load(name); }
    };
    window.htmx.ajax("GET", el.getAttribute("data-refresh"), { source: el, target: el, swap: "outerHTML" }).then(done, done);
  }

  function fire(name) { load(name); }

  /* The answers of the pane's own forms ask for the other regions (HX-Trigger). */
  ["inbox-refresh", "inbox-pane", "inbox-composer"].forEach(function (name) {
    document.body.addEventListener(name, function () { schedule(name); });
  });

  function schedule(name) {
    pending[name] = true;
    if (flushTimer) return;
    flushTimer = setTimeout(function () { // one fetch per burst of events
      flushTimer = null;
      var names = Object.keys(pending);
      pending = {};
      names.forEach(fire);
    }, 60);
  }

  function refreshAll() {
    schedule("inbox-refresh");
    if (openId) { schedule("inbox-pane"); schedule("inbox-composer"); }
  }

  function onEvent(ev) {
    var id = ev.lastEventId;
    if (id && seen[id]) { live.dupes += 1; return; }
    if (id) { seen[id] = true; live.log.push(Number(id)); last = id; }
    var data = {};
    try { data = JSON.parse(ev.data || "{}"); } catch (e) { data = {}; }
    schedule("inbox-refresh");
    if (openId && String(data.conversation_id) === openId) {
      schedule("inbox-pane");
      if (ev.type === "conversation.updated" || (ev.type === "message.created" && data.direction === "inbound")) {
        schedule("inbox-composer");
      }
    }
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(refreshAll, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function connect() {
    retryTimer = null;
    /* Resume after the last event seen (the page gives the newest at render time): nothing
       between the page and the stream is lost, and a reconnect replays what was missed. */
    var src = url + (last !== "" ? "?last_event_id=" + encodeURIComponent(last) : "");
    source = new EventSource(src);
    source.onopen = function () {
      live.connects += 1;
      delay = 500;
      var wasDown = live.state === "down";
      setState("live");
      stopPolling();
      if (wasDown) refreshAll();
    };
    source.onerror = function () {
      /* Reconnect ourselves, from the last event seen: EventSource's own retry would keep the
         first URL's last_event_id. */
      if (source) source.close();
      source = null;
      setState("down");
      startPolling();
      if (!retryTimer) {
        retryTimer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 5000);
      }
    };
    TYPES.forEach(function (t) { source.addEventListener(t, onEvent); });
    source.addEventListener("reset", function () { refreshAll(); });
  }

  setState("connecting");
  connect();
  window.addEventListener("pagehide", function () { if (source) source.close(); });

  /* -- the composer ---------------------------------------------------------------------- */

  function pickTemplate(select) {
    var form = select.closest("form");
    form.querySelectorAll("fieldset[data-template]").forEach(function (fs) {
      var on = fs.getAttribute("data-template") === select.value;
      fs.hidden = !on;
      fs.disabled = !on;
    });
  }

  document.addEventListener("change", function (ev) {
    if (ev.target.matches && ev.target.matches("[data-template-picker]")) pickTemplate(ev.target);
  });

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-reply-to]");
    if (btn) {
      var field = document.getElementById("reply-to");
      var box = document.getElementById("replying");
      if (!field || !box) return;
      field.value = btn.getAttribute("data-reply-to");
      box.querySelector("[data-quote-text]").textContent = "Replying to: " + btn.getAttribute("data-quote");
      box.hidden = false;
      var text = document.getElementById("reply-text");
      if (text) text.focus();
      return;
    }
    var cancel = ev.target.closest && ev.target.closest("[data-cancel-reply]");
    if (cancel) {
      document.getElementById("reply-to").value = "";
      document.getElementById("replying").hidden = true;
    }
  });

  /* The thread shows its newest end; a refresh keeps a reader who scrolled up where they are. */
  var atBottom = true;
  function toBottom() {
    var t = document.querySelector(".inbox-thread");
    if (t && atBottom) t.scrollTop = t.scrollHeight;
  }
  document.addEventListener("htmx:beforeSwap", function () {
    var t = document.querySelector(".inbox-thread");
    atBottom = !t || t.scrollHeight - t.scrollTop - t.clientHeight < 40;
  });
  toBottom();

  document.addEventListener("htmx:afterSwap", function (ev) {
    toBottom();
    var target = ev.detail && ev.detail.target;
    if (!target) return;
    var composer = document.getElementById("composer");
    if (composer && stash !== null && (target === composer || target.id === "composer")) {
      var text = document.getElementById("reply-text");
      if (text && !text.value) text.value = stash;
      stash = null;
    }
  });
})();
