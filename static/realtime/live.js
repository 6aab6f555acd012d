// Keeps the live seat map equal to the database.
//
// The htmx ws extension swaps every frame's elements by id. This script watches the version
// each frame carries (first element, #live-version): it drops frames the page already has,
// asks the server for a catch-up when it sees a gap or a heartbeat ahead of it, reconnects a
// socket that went silent, makes reconnects resume from the version reached, and tells the
// customer when live updates are paused and when they resume.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.htmx) return;

  var version = parseInt(live.dataset.version, 10) || 0;
  var heartbeatMs = (parseFloat(live.dataset.heartbeat) || 15) * 1000;
  var status = document.getElementById("live-status");
  var MARKER = /^<div id="live-version" data-kind="(\w+)" data-version="(\d+)"/;
  var socket = null;
  var currentWs = null;
  var lastFrameAt = Date.now();
  var resyncUntil = 0;
  var wasPaused = false;

  function setStatus(state, text) {
    if (!status) return;
    status.dataset.status = state;
    status.textContent = text;
    live.dataset.liveStatus = state;
  }

  function requestResync() {
    if (!socket || Date.now() < resyncUntil) return;
    resyncUntil = Date.now() + 3000;
    socket.send(JSON.stringify({ type: "resync", version: version }));
  }

  // A reconnect asks for what happened since the version reached, not since page load.
  var createWebSocket = htmx.createWebSocket || function (url) { return new WebSocket(url); };
  htmx.createWebSocket = function (url) {
    return createWebSocket(url.replace(/([?&]v=)\d+/, "$1" + version));
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
    socket = null;
    wasPaused = true;
    setStatus("paused", "Live updates paused — reconnecting…");
  });

  live.addEventListener("htmx:wsBeforeMessage", function (event) {
    lastFrameAt = Date.now();
    var match = MARKER.exec(event.detail.message);
    if (!match) return;
    var kind = match[1];
    var frameVersion = parseInt(match[2], 10);
    if (kind === "heartbeat") {
      event.preventDefault();
      if (frameVersion > version) {
        // The delta may still be on its way; look again shortly.
        setTimeout(function () { if (version < frameVersion) requestResync(); }, 2000);
      }
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
    requestResync();
  });

  live.addEventListener("htmx:wsAfterMessage", function () {
    live.dataset.version = String(version);
  });

  // Heartbeats arrive every few seconds; silence means the connection died unnoticed.
  setInterval(function () {
    if (socket && Date.now() - lastFrameAt > heartbeatMs * 2.5) {
      wasPaused = true;
      setStatus("paused", "Live updates paused — reconnecting…");
      lastFrameAt = Date.now();
      socket.reconnect();
    }
  }, 2000);
})();
