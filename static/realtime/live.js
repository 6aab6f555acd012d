// Keeps the live seat map equal to the database.
//
// The htmx ws extension swaps every frame's elements by id. This script watches the version
// each frame carries (first element, #live-version): it drops frames the page already has,
// asks the server for a catch-up when it sees a gap, a heartbeat that disagrees with it, or a
// click's answer older than what it shows; it reconnects sockets that went silent or were
// closed with a code the extension does not retry, makes reconnects resume from the version
// reached (retrying every few seconds at most), and tells the customer when live updates are
// paused and when they resume. When a frame's sale banner says sales closed (or opened), it
// updates the badge, hides (or shows) what only an open sale offers and asks for the panel.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.htmx) return;

  var version = parseInt(live.dataset.version, 10) || 0;
  var heartbeatMs = (parseFloat(live.dataset.heartbeat) || 15) * 1000;
  var status = document.getElementById("live-status");
  var MARKER = /^<div id="live-version" data-kind="(\w+)" data-version="(\d+)"/;
  var RETRIED_BY_EXTENSION = [1006, 1011, 1012, 1013];
  var socket = null;
  var currentWs = null;
  var lastFrameAt = Date.now();
  var resyncUntil = 0;
  var wasPaused = false;

  // The extension's own back-off grows to a minute between attempts. While the server
  // refuses sockets (its channel layer is down) that would leave a page stale long after
  // the layer is back: wait 0.5-1 s, then 1-2 s, then 2-4 s, then 2.5-5 s at most.
  htmx.config.wsReconnectDelay = function (retries) {
    var cap = Math.min(1000 * Math.pow(2, retries), 5000);
    return cap / 2 + Math.random() * cap / 2;
  };

  function setStatus(state, text) {
    if (!status) return;
    status.dataset.status = state;
    status.textContent = text;
    live.dataset.liveStatus = state;
  }

  function paused() {
    wasPaused = true;
    setStatus("paused", "Live updates paused — reconnecting…");
  }

  function requestResync(force) {
    if (!socket || (!force && Date.now() < resyncUntil)) return;
    resyncUntil = Date.now() + 3000;
    socket.send(JSON.stringify({ type: "resync", version: version }));
  }

  // A reconnect asks for what happened since the version reached, not since page load, and
  // the socket it replaces is shut for good so it cannot deliver or reconnect on its own.
  var createWebSocket = htmx.createWebSocket || function (url) { return new WebSocket(url); };
  var previous = null;
  htmx.createWebSocket = function (url) {
    // Also when CLOSING: the extension closes the old socket just before asking for a new
    // one, and its close event (which would schedule yet another reconnect) is still to come.
    if (previous && previous.readyState !== WebSocket.CLOSED) {
      previous.onopen = previous.onclose = previous.onerror = null;
      previous.close();
    }
    previous = createWebSocket(url.replace(/([?&]v=)\d+/, "$1" + version));
    return previous;
  };

  live.addEventListener("htmx:wsConnecting", function () {
    if (wasPaused) setStatus("paused", "Live updates paused — reconnecting…");
  });

  live.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    currentWs = event.detail.event.target;
    lastFrameAt = Date.now();
    resyncUntil = 0;
    setStatus(wasPaused ? "resumed" : "live", wasPaused ? "Live updates resumed" : "Live");
  });

  live.addEventListener("htmx:wsClose", function (event) {
    // A socket replaced by a reconnect closes after its successor opened: ignore it.
    if (currentWs && event.detail.event.target !== currentWs) return;
    var wrapper = event.detail.socketWrapper;
    socket = null;
    paused();
    if (RETRIED_BY_EXTENSION.indexOf(event.detail.event.code) < 0 && wrapper) {
      // e.g. 1001 from a proxy going away: the extension would leave it closed.
      setTimeout(function () { wrapper.reconnect(); }, 1000 + Math.random() * 2000);
    }
  });

  live.addEventListener("htmx:wsBeforeMessage", function (event) {
    lastFrameAt = Date.now();
    var match = MARKER.exec(event.detail.message);
    if (!match) return;
    var kind = match[1];
    var frameVersion = parseInt(match[2], 10);
    if (kind === "heartbeat") {
      event.preventDefault();
      if (frameVersion < version) {
        requestResync(false);  // the database went back (restored): take its whole map
      } else if (frameVersion > version) {
        // The delta may still be on its way; look again shortly.
        setTimeout(function () { if (version < frameVersion) requestResync(false); }, 2000);
      }
      return;
    }
    if (kind === "reset") {  // the whole map: authoritative, whatever the page believed
      version = frameVersion;
      resyncUntil = 0;
      return;
    }
    if (kind === "sync") {
      if (frameVersion < version) { event.preventDefault(); return; }
      version = frameVersion;
      resyncUntil = 0;
      return;
    }
    if (frameVersion <= version) { event.preventDefault(); return; }
    if (frameVersion === version + 1) { version = frameVersion; return; }
    // A gap: show this newer change and fetch the ones in between.
    requestResync(false);
  });

  live.addEventListener("htmx:wsAfterMessage", function () {
    live.dataset.version = String(version);
    saleStateChanged();
  });

  // Deltas, syncs and resets carry #sale-banner when the sale state may have changed.
  function saleStateChanged() {
    var banner = document.getElementById("sale-banner");
    var state = banner && banner.dataset.saleState;
    if (!state || state === live.dataset.saleState) return;
    live.dataset.saleState = state;
    var layout = document.querySelector(".booking-layout");
    if (layout) layout.dataset.saleState = state;  // site.css hides the timer and Checkout
    var badge = document.getElementById("sale-badge");
    if (badge) {
      badge.className = "badge badge-" + state;
      badge.textContent = badge.getAttribute("data-label-" + state) || state;
    }
    // The panel as the server now renders it: "sales are closed", or Checkout back.
    if (live.dataset.panelUrl) htmx.ajax("GET", live.dataset.panelUrl, { source: live, swap: "none" });
  }

  // A click's answer shows seats as of the version in its header. If a newer change reached
  // this page first, the answer may have put older states back: catch up from that version.
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    var answered = xhr && parseInt(xhr.getResponseHeader("X-Seat-Version"), 10);
    if (answered >= 0 && answered < version && socket) {
      resyncUntil = 0;
      socket.send(JSON.stringify({ type: "resync", version: answered }));
      resyncUntil = Date.now() + 3000;
    }
  });

  // Heartbeats arrive every few seconds; silence means the connection died unnoticed.
  setInterval(function () {
    if (socket && Date.now() - lastFrameAt > heartbeatMs * 2.5) {
      paused();
      lastFrameAt = Date.now();
      socket.reconnect();
    }
  }, 2000);
})();
