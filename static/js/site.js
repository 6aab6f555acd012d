// Small page behaviours: the hold countdown, dismissable messages, confirm-before-submit.
// htmx and the live-update script do the rest.
(function () {
  "use strict";

  // --- hold countdown ------------------------------------------------------------------
  // The server says when the hold expires and what time it was when it said so; the
  // difference to this browser's clock is corrected for, so a wrong clock can't mislead.
  var skew = 0;

  function tick() {
    var el = document.querySelector(".countdown[data-expires-at]");
    if (!el) return;
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
    if (!el.dataset.refreshing && window.htmx) {
      el.dataset.refreshing = "1";
      // Ask for the panel again: the hold is gone, and its seats are shown as free.
      htmx.ajax("GET", el.dataset.refreshUrl, { source: el, swap: "none" });
    }
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);

  // --- seat map ------------------------------------------------------------------------------
  // A hall wider than the screen opens at its centre, in front of the stage.
  document.addEventListener("DOMContentLoaded", function () {
    var scroller = document.querySelector(".map-scroll");
    if (scroller && scroller.scrollWidth > scroller.clientWidth) {
      scroller.scrollLeft = (scroller.scrollWidth - scroller.clientWidth) / 2;
    }
  });

  // --- messages --------------------------------------------------------------------------
  function dismissLater(toast) {
    if (toast.dataset.timed || toast.classList.contains("toast-error")) return;
    toast.dataset.timed = "1";
    setTimeout(function () { toast.remove(); }, 6000);
  }
  function armToasts() {
    document.querySelectorAll("#toasts .toast").forEach(dismissLater);
  }
  document.addEventListener("DOMContentLoaded", armToasts);
  document.addEventListener("htmx:afterSettle", armToasts);
  document.addEventListener("htmx:oobAfterSwap", armToasts);
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
