// Small page behaviours: the hold countdowns, messages (dismissed when stale), the "Find N
// seats" button's number, confirm-before-submit.
// htmx and the live-update script do the rest.
(function () {
  "use strict";

  // --- hold countdown ------------------------------------------------------------------
  // The server says when the hold expires and what time it was when it said so; the
  // difference to this browser's clock is corrected for, so a wrong clock can't mislead.
  var skew = 0;

  // The panel's countdown and the phone bar's show the same hold; the panel's asks for the
  // panel again when it runs out.
  function tick() {
    document.querySelectorAll(".countdown[data-expires-at]").forEach(function (el) {
      if (el.dataset.serverNow && !el.dataset.synced) {
        skew = Date.parse(el.dataset.serverNow) - Date.now();
        el.dataset.synced = "1";
      }
      var left = Math.round((Date.parse(el.dataset.expiresAt) - (Date.now() + skew)) / 1000);
      if (left > 0) {
        var m = Math.floor(left / 60), s = left % 60;
        el.textContent = m + ":" + (s < 10 ? "0" : "") + s;
        el.classList.toggle("countdown-low", left <= 60);
        return;
      }
      el.textContent = "0:00";
      if (el.dataset.refreshUrl && !el.dataset.refreshing && window.htmx) {
        el.dataset.refreshing = "1";
        // Ask for the panel again: the hold is gone, and its seats are shown as free.
        htmx.ajax("GET", el.dataset.refreshUrl, { source: el, swap: "none" });
      }
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);

  // --- find N seats ---------------------------------------------------------------------------
  document.addEventListener("change", function (e) {
    var select = e.target.closest(".find-count");
    if (!select) return;
    var form = select.form, n = parseInt(select.value, 10) || 1;
    form.querySelector(".find-n").textContent = String(n);
    form.querySelector(".find-s").textContent = n === 1 ? "" : "s";
  });

  // --- messages --------------------------------------------------------------------------
  // Every message goes by itself (errors stay longer), and one about seats (data-seats) goes
  // as soon as one of them changes: "held by another customer" is wrong once it is sold.
  var TOAST_MS = 6000, ERROR_TOAST_MS = 12000;

  function seatStates(toast) {
    return (toast.dataset.seats || "").split(" ").filter(Boolean).map(function (id) {
      var seat = document.getElementById("seat-" + id);
      return seat ? seat.dataset.state : "";
    }).join(" ");
  }
  function arm(toast) {
    if (toast.dataset.armed) return;
    toast.dataset.armed = "1";
    toast.dataset.seen = seatStates(toast);
    var ms = toast.classList.contains("toast-error") ? ERROR_TOAST_MS : TOAST_MS;
    setTimeout(function () { toast.remove(); }, ms);
  }
  function armToasts() {
    document.querySelectorAll("#toasts .toast").forEach(arm);
  }
  function dropStaleToasts() {
    document.querySelectorAll("#toasts .toast[data-seats][data-armed]").forEach(function (toast) {
      if (seatStates(toast) !== toast.dataset.seen) toast.remove();
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var dock = document.getElementById("toast-dock"), region = document.getElementById("toasts");
    if (dock && region) dock.appendChild(region);
    armToasts();
  });
  document.addEventListener("htmx:afterSettle", armToasts);
  document.addEventListener("htmx:oobAfterSwap", armToasts);
  // Seats changed by someone else arrive over the WebSocket (live.js).
  document.addEventListener("htmx:wsAfterMessage", dropStaleToasts);
  document.addEventListener("click", function (e) {
    var close = e.target.closest(".toast-close");
    if (close) close.closest(".toast").remove();
  });

  // A request that got no usable answer (network down, server error) still tells the user.
  function failed() {
    var region = document.getElementById("toasts");
    if (!region) return;
    region.innerHTML =
      '<div class="toast toast-error" role="alert"><span class="toast-text">' +
      "Something went wrong and nothing was changed. Please try again.</span>" +
      '<button type="button" class="toast-close" aria-label="Dismiss message">×</button></div>';
  }
  document.addEventListener("htmx:responseError", failed);
  document.addEventListener("htmx:sendError", failed);

  // --- confirm before destructive posts ----------------------------------------------------
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
  });
})();
