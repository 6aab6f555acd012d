// The venue plan: zoom and pan (wheel, pinch, drag, buttons, keys), overview, keyboard
// navigation with one Tab stop (roving tabindex), and seat picks sent one after another.
//
// The plan (#seat-map, seats.fragments.seat_map_html) is the same for every viewer and is
// swapped by htmx: a single seat (after a pick, or a live change over the WebSocket) or the
// whole map (a resync). Nothing here is kept on the seat elements that a swap would lose:
// the zoom is one transform on .plan, re-applied when the map is replaced; the roving
// tabindex, focus, "yours" names and free counts are re-applied to whatever comes in.
(function () {
  "use strict";
  var form = document.getElementById("seat-form");
  if (!form || !window.htmx) return;
  var controls = document.querySelector(".map-controls");
  var zoomLevel = controls && controls.querySelector(".map-zoom-level");

  var FAR_PX = 8;        // seats smaller than this on screen: show the overview regions
  var PICK_PX_MOUSE = 8;
  var PICK_PX_TOUCH = 44; // smallest seat a tap picks; a tap on smaller ones zooms in
  var KEY_SEAT_PX = 30;   // a seat focused from the keyboard is zoomed to at least this
  var STEP = 1.6;         // one zoom step (buttons, keys)
  var reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  var coarse = window.matchMedia("(pointer: coarse)");

  var view = null, plan = null;
  var unit = 30, seatPx = 26, planW = 0, planH = 0, planL = 0, planT = 0;
  var k = 1, tx = 0, ty = 0, fitK = 1, minK = 1, maxK = 3;
  var fitted = false;       // still showing the whole venue (refit on resize)
  var shown = false;        // fitted once: a resync keeps the zoom the customer chose
  var currentId = null;     // the seat that has tabindex=0
  var focusedSeat = null;   // the seat element that has focus (kept while a swap replaces it)
  var keyboardFocus = false;
  var positions = null;     // seat id -> {x, y, sec}: plan coordinates, built when needed
  var mine = {};

  function pickPx() { return coarse.matches ? PICK_PX_TOUCH : PICK_PX_MOUSE; }
  function num(el, name) { return parseFloat(el.style.getPropertyValue(name)) || 0; }
  function seatById(id) { return document.getElementById("seat-" + id); }
  function seatOf(node) {
    var el = node && node.closest ? node.closest(".seat") : null;
    return el && form.contains(el) ? el : null;
  }

  // --- the transform ---------------------------------------------------------------------
  var settleTimer = 0;
  function apply(animate, moving) {
    if (!plan) return;
    if (moving || animate) {
      // Composited while it moves (cheap frames), painted sharp again once it is still.
      plan.classList.add("is-moving");
      clearTimeout(settleTimer);
      settleTimer = setTimeout(function () {
        if (plan) { plan.classList.remove("is-moving"); plan.style.transition = ""; }
      }, 300);
    }
    plan.style.transition = animate && !reduceMotion.matches ? "transform .22s ease-out" : "";
    plan.style.transform = "translate(" + tx + "px," + ty + "px) scale(" + k + ")";
    var px = seatPx * k;
    form.classList.toggle("map-far", px < FAR_PX);
    form.classList.toggle("map-nopick", px < pickPx());
    form.dataset.zoom = String(Math.round(k * 1000) / 1000);
    var zones = form.querySelectorAll(".zone");
    for (var i = 0; i < zones.length; i++) zones[i].style.setProperty("--k", String(k));
    if (zoomLevel) zoomLevel.textContent = Math.round((k / fitK) * 100) + "%";
  }

  function clamp() {
    var vw = view.clientWidth, vh = view.clientHeight;
    k = Math.min(Math.max(k, minK), maxK);
    var w = planW * k, h = planH * k;
    tx = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, tx));
    ty = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, ty));
  }

  function fit(animate) {
    if (!view) return;
    var vw = view.clientWidth, vh = view.clientHeight;
    if (!vw || !vh || !planW || !planH) return;
    fitK = Math.min(vw / planW, vh / planH);
    minK = fitK;
    maxK = Math.max(fitK * 1.01, 72 / seatPx);
    k = fitK;
    fitted = true;
    clamp();
    apply(animate);
  }

  // Zooms to `nk`, keeping the plan point under (cx, cy) (view pixels) where it is.
  function zoomAt(nk, cx, cy, animate, moving) {
    var px = (cx - tx) / k, py = (cy - ty) / k;
    k = Math.min(Math.max(nk, minK), maxK);
    tx = cx - px * k;
    ty = cy - py * k;
    fitted = k <= fitK * 1.001;
    clamp();
    apply(animate, moving);
  }

  // Shows the plan point (px, py) (plan pixels) at the view's centre at zoom `nk`.
  function centreOn(px, py, nk, animate) {
    k = Math.min(Math.max(nk, minK), maxK);
    tx = view.clientWidth / 2 - px * k;
    ty = view.clientHeight / 2 - py * k;
    fitted = k <= fitK * 1.001;
    clamp();
    apply(animate);
  }

  function zoomBy(factor, animate) {
    var el = focusedSeat && focusedSeat.isConnected ? focusedSeat : null;
    if (el) {
      var p = seatPoint(el);
      var sx = tx + p.x * k, sy = ty + p.y * k;
      if (sx >= 0 && sy >= 0 && sx <= view.clientWidth && sy <= view.clientHeight) {
        zoomAt(k * factor, sx, sy, animate);
        return;
      }
    }
    zoomAt(k * factor, view.clientWidth / 2, view.clientHeight / 2, animate);
  }

  // A section's box, in plan pixels.
  function sectionBox(sec) {
    return {
      x: (num(sec, "--l") - planL) * unit, y: (num(sec, "--t") - planT) * unit,
      w: num(sec, "--w") * unit, h: num(sec, "--h") * unit,
    };
  }

  // Zooms to a section; if seats would still be too small to pick there, further in around
  // the point (plan pixels) that was clicked.
  function zoomToSection(sec, at) {
    var b = sectionBox(sec);
    var nk = Math.min(view.clientWidth / b.w, view.clientHeight / b.h) * 0.95;
    var need = (pickPx() * 1.1) / seatPx;
    if (nk < need && at) {
      centreOn(at.x, at.y, need, true);
    } else {
      centreOn(b.x + b.w / 2, b.y + b.h / 2, Math.max(nk, Math.min(need, maxK)), true);
    }
  }

  function seatPoint(el) {
    return { x: (num(el, "--x") - planL) * unit, y: (num(el, "--y") - planT) * unit };
  }

  // Keeps a seat focused from the keyboard in sight, big enough to see.
  function reveal(el) {
    var p = seatPoint(el);
    var wanted = KEY_SEAT_PX / seatPx;
    if (k < wanted) { centreOn(p.x, p.y, wanted, true); return; }
    var margin = seatPx * k;
    var sx = tx + p.x * k, sy = ty + p.y * k;
    var vw = view.clientWidth, vh = view.clientHeight;
    if (sx < margin || sx > vw - margin || sy < margin || sy > vh - margin) {
      if (sx < margin) tx += margin - sx; else if (sx > vw - margin) tx -= sx - (vw - margin);
      if (sy < margin) ty += margin - sy; else if (sy > vh - margin) ty -= sy - (vh - margin);
      fitted = false;
      clamp();
      apply(true);
    }
    var r = view.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) view.scrollIntoView({ block: "nearest" });
  }

  // --- setting up a (new) map ------------------------------------------------------------
  function setup() {
    view = form.querySelector(".map-view");
    plan = view && view.querySelector(".plan");
    positions = null;
    if (!plan) { form.classList.remove("map-live"); return; }
    var cs = getComputedStyle(view);
    unit = parseFloat(cs.getPropertyValue("--u")) || 30;
    seatPx = parseFloat(cs.getPropertyValue("--s")) || 26;
    var map = document.getElementById("seat-map");
    planL = num(map, "--pl"); planT = num(map, "--pt");
    planW = num(map, "--pw") * unit; planH = num(map, "--ph") * unit;
    form.classList.add("map-live");
    if (controls) controls.hidden = false;

    // Every seat comes with tabindex=-1 (seats.fragments): one of them is the Tab stop.
    var current = currentId && seatById(currentId);
    if (!current || !form.contains(current)) {
      current = form.querySelector('.seat[data-state="available"]') || form.querySelector(".seat");
    }
    if (current) setCurrent(current);
    if (focusedSeat && !focusedSeat.isConnected && current && focusedSeat.id === current.id) {
      current.focus({ preventScroll: true });
    }
    refreshMine();
    if (fitted || !shown) {
      fit(false);
    } else {
      clamp();
      apply(false);
    }
    if (!shown && window.performance && performance.mark) performance.mark("seatmap-ready");
    shown = true;
  }

  function setCurrent(el) {
    if (currentId && currentId !== el.value) {
      var old = seatById(currentId);
      if (old) old.tabIndex = -1;
    }
    currentId = el.value;
    el.tabIndex = 0;
  }

  // --- your seats are "yours", others' "held" ------------------------------------------
  function refreshMine() {
    var style = document.getElementById("my-seats");
    var now = {};
    var listed = style && style.dataset.seats ? style.dataset.seats.split(",") : [];
    for (var i = 0; i < listed.length; i++) now[listed[i]] = true;
    var id;
    for (id in mine) if (!now[id]) name(seatById(id), false);
    for (id in now) name(seatById(id), true);
    mine = now;
  }

  function name(el, yours) {
    if (!el) return;
    var label = el.getAttribute("aria-label") || "";
    if (yours && el.dataset.state === "held") {
      if (/, held$/.test(label)) el.setAttribute("aria-label", label.replace(/, held$/, ", yours"));
    } else if (/, yours$/.test(label)) {
      el.setAttribute("aria-label", label.replace(/, yours$/, ", " + el.dataset.state));
    }
  }

  function recount(sec) {
    var free = sec.querySelectorAll('.seat[data-state="available"]').length;
    var b = sec.querySelector(".zone-free b");
    if (b) b.textContent = free.toLocaleString("en");
  }

  // Seats come and go by htmx swaps: give the new ones their tabindex, name and focus.
  new MutationObserver(function (records) {
    var replaced = false;
    var sections = [];
    for (var r = 0; r < records.length; r++) {
      var added = records[r].addedNodes;
      for (var i = 0; i < added.length; i++) {
        var node = added[i];
        if (node.nodeType !== 1) continue;
        if (node.id === "seat-map") { replaced = true; continue; }
        if (!node.classList.contains("seat")) continue;
        node.tabIndex = node.value === currentId ? 0 : -1;
        if (mine[node.value]) name(node, true);
        var sec = node.closest(".sec");
        if (sec && sections.indexOf(sec) < 0) sections.push(sec);
        if (focusedSeat && !focusedSeat.isConnected && focusedSeat.id === node.id) {
          var active = document.activeElement;
          if (!active || active === document.body) node.focus({ preventScroll: true });
          focusedSeat = node;
        }
      }
    }
    if (replaced) { setup(); return; }
    for (var s = 0; s < sections.length; s++) recount(sections[s]);
  }).observe(form, { childList: true, subtree: true });

  document.addEventListener("htmx:oobAfterSwap", function (e) {
    if (e.detail && e.detail.target && e.detail.target.id === "my-seats") refreshMine();
  });
  document.addEventListener("htmx:afterSettle", refreshMine);

  // --- focus -------------------------------------------------------------------------------
  form.addEventListener("focusin", function (e) {
    var el = seatOf(e.target);
    if (!el) return;
    focusedSeat = el;
    setCurrent(el);
    if (keyboardFocus) reveal(el);
  });
  form.addEventListener("focusout", function (e) {
    var el = e.target;
    // A seat swapped out while focused blurs too: keep it, so its replacement takes focus.
    setTimeout(function () {
      if (focusedSeat === el && el.isConnected && document.activeElement !== el) focusedSeat = null;
    }, 0);
  });
  document.addEventListener("keydown", function () { keyboardFocus = true; }, true);
  document.addEventListener("pointerdown", function () { keyboardFocus = false; }, true);

  // --- keyboard ------------------------------------------------------------------------------
  function buildPositions() {
    positions = {};
    var secs = form.querySelectorAll(".sec");
    for (var s = 0; s < secs.length; s++) {
      var seats = secs[s].getElementsByClassName("seat");
      for (var i = 0; i < seats.length; i++) {
        positions[seats[i].value] = { x: num(seats[i], "--x"), y: num(seats[i], "--y"), sec: s };
      }
    }
    return positions;
  }

  function rowSeats(el) { return el.parentNode.getElementsByClassName("seat"); }

  function alongRow(el, key) {
    var seats = rowSeats(el), x = num(el, "--x"), best = null, bestX = 0;
    for (var i = 0; i < seats.length; i++) {
      var sx = num(seats[i], "--x");
      var better;
      if (key === "ArrowLeft") better = sx < x && (best === null || sx > bestX);
      else if (key === "ArrowRight") better = sx > x && (best === null || sx < bestX);
      else if (key === "Home") better = best === null || sx < bestX;
      else better = best === null || sx > bestX;  // End
      if (better) { best = seats[i]; bestX = sx; }
    }
    return best;
  }

  // The nearest seat above or below, rows by geometry: mostly straight up or down, the same
  // section preferred.
  function acrossRows(el, up) {
    var pos = positions || buildPositions();
    var here = pos[el.value];
    if (!here) return null;
    var bestId = null, bestScore = Infinity;
    for (var id in pos) {
      var p = pos[id];
      var dy = p.y - here.y;
      if (up ? dy > -0.3 : dy < 0.3) continue;
      var dx = p.x - here.x;
      var score = dy * dy + 4 * dx * dx + (p.sec === here.sec ? 0 : 9);
      if (score < bestScore) { bestScore = score; bestId = id; }
    }
    return bestId && seatById(bestId);
  }

  function otherSection(el, step) {
    var secs = form.querySelectorAll(".sec");
    var index = Array.prototype.indexOf.call(secs, el.closest(".sec")) + step;
    if (index < 0 || index >= secs.length) return null;
    var front = secs[index].querySelector(".row");
    var seats = front && front.getElementsByClassName("seat");
    return seats && seats.length ? seats[Math.floor((seats.length - 1) / 2)] : null;
  }

  function moveFocus(el) {
    if (!el) return;
    setCurrent(el);
    el.focus({ preventScroll: true });
    reveal(el);
  }

  form.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var el = seatOf(e.target);
    var key = e.key;
    if (key === "+" || key === "=") { zoomBy(STEP, true); e.preventDefault(); return; }
    if (key === "-" || key === "_") { zoomBy(1 / STEP, true); e.preventDefault(); return; }
    if (key === "0") { fit(true); e.preventDefault(); return; }
    if (!el) return;
    if ((key === "Enter" || key === " ") && e.repeat) { e.preventDefault(); return; }
    var next;
    if (key === "ArrowLeft" || key === "ArrowRight" || key === "Home" || key === "End") {
      next = alongRow(el, key);
    } else if (key === "ArrowUp" || key === "ArrowDown") {
      next = acrossRows(el, key === "ArrowUp");
    } else if (key === "PageUp" || key === "PageDown") {
      next = otherSection(el, key === "PageUp" ? -1 : 1);
    } else {
      return;
    }
    e.preventDefault();
    moveFocus(next);
  });

  // --- picks: every click acted on, in order ----------------------------------------------
  var queue = [], busy = false, lastPick = { id: null, at: 0 };
  var sender = document.createElement("span");
  sender.hidden = true;
  sender.className = "seat-sender";
  form.parentNode.insertBefore(sender, form);
  function pump() {
    if (busy || !queue.length) return;
    busy = true;
    var id = queue.shift();
    var el = seatById(id);
    if (el) el.classList.add("is-pending");
    var finished = false;
    var done = function () {
      if (finished) return;
      finished = true;
      var now = seatById(id);
      if (now) now.classList.remove("is-pending");
      busy = false;
      pump();
    };
    setTimeout(done, 15000);  // never let one lost answer stop every later pick
    // Sent from an element outside the form: htmx would read all of the form's 20,000
    // buttons for its values, a third of a second per click on a big map.
    htmx.ajax("POST", form.getAttribute("hx-post"), {
      source: sender, values: { seat: id }, swap: "none",
    }).then(done, done);
  }

  var dragged = false;
  form.addEventListener("click", function (e) {
    if (dragged) { e.preventDefault(); e.stopPropagation(); return; }
    var zone = e.target.closest(".zone, .sec-name");
    if (zone && form.contains(zone)) {
      var r = view.getBoundingClientRect();
      zoomToSection(zone.closest(".sec"), {
        x: (e.clientX - r.left - tx) / k, y: (e.clientY - r.top - ty) / k,
      });
      return;
    }
    var el = seatOf(e.target);
    if (!el) return;
    e.preventDefault();  // htmx's form submit would drop a click while one is in flight
    var now = Date.now();
    // A double click on one seat is one pick (the second click would undo the first).
    if (e.detail > 1 && lastPick.id === el.value && now - lastPick.at < 800) return;
    lastPick = { id: el.value, at: now };
    setCurrent(el);
    if (e.detail > 0 && document.activeElement !== el) el.focus({ preventScroll: true });
    queue.push(el.value);
    pump();
  });

  // --- zoom controls ---------------------------------------------------------------------
  if (controls) {
    controls.addEventListener("click", function (e) {
      var button = e.target.closest("[data-zoom]");
      if (!button || !view) return;
      var how = button.dataset.zoom;
      if (how === "in") zoomBy(STEP, true);
      else if (how === "out") zoomBy(1 / STEP, true);
      else fit(true);
    });
  }

  // --- wheel, drag, pinch ----------------------------------------------------------------
  form.addEventListener("wheel", function (e) {
    if (!view || !view.contains(e.target)) return;
    var scale = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    var dy = e.deltaY * scale, dx = e.deltaX * scale;
    if (!e.ctrlKey && Math.abs(dx) > Math.abs(dy)) {
      e.preventDefault();
      tx -= dx; fitted = false; clamp(); apply(false, true);
      return;
    }
    // Zoomed all the way out, scrolling on goes to the page.
    if (dy > 0 && k <= minK * 1.001) return;
    e.preventDefault();
    var r = view.getBoundingClientRect();
    zoomAt(k * Math.exp(-dy * (e.ctrlKey ? 0.01 : 0.002)), e.clientX - r.left, e.clientY - r.top, false, true);
  }, { passive: false });

  var pointers = {}, gesture = null;
  function pointerList() {
    var list = [];
    for (var id in pointers) list.push(pointers[id]);
    return list;
  }
  function startGesture() {
    var list = pointerList();
    var r = view.getBoundingClientRect();
    if (list.length === 1) {
      gesture = {
        kind: "pan", x0: list[0].x, y0: list[0].y, lastY: list[0].y, tx0: tx, ty0: ty, moved: false,
      };
    } else if (list.length >= 2) {
      var a = list[0], b = list[1];
      var mx = (a.x + b.x) / 2 - r.left, my = (a.y + b.y) / 2 - r.top;
      gesture = {
        kind: "pinch", dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, k0: k,
        px: (mx - tx) / k, py: (my - ty) / k, moved: true,
      };
    } else {
      gesture = null;
    }
  }
  form.addEventListener("pointerdown", function (e) {
    if (!view || !view.contains(e.target) || (e.pointerType === "mouse" && e.button !== 0)) return;
    pointers[e.pointerId] = { x: e.clientX, y: e.clientY };
    dragged = false;
    startGesture();
  });
  form.addEventListener("pointermove", function (e) {
    if (!pointers[e.pointerId] || !gesture) return;
    pointers[e.pointerId] = { x: e.clientX, y: e.clientY };
    if (gesture.kind === "pan") {
      var dx = e.clientX - gesture.x0, dy = e.clientY - gesture.y0;
      if (!gesture.moved && Math.hypot(dx, dy) < 6) return;
      if (!gesture.moved) {
        gesture.moved = true;
        try { view.setPointerCapture(e.pointerId); } catch (err) { /* already released */ }
      }
      if (e.pointerType === "touch" && k <= fitK * 1.001) {
        // The whole venue is in view, nothing to pan: a finger scrolls the page instead,
        // so the map never traps the page's one scroll.
        window.scrollBy(0, gesture.lastY - e.clientY);
        gesture.lastY = e.clientY;
        e.preventDefault();
        return;
      }
      tx = gesture.tx0 + dx; ty = gesture.ty0 + dy;
      fitted = false;
      clamp();
      apply(false, true);
    } else {
      var list = pointerList();
      if (list.length < 2) return;
      var a = list[0], b = list[1];
      var r = view.getBoundingClientRect();
      var mx = (a.x + b.x) / 2 - r.left, my = (a.y + b.y) / 2 - r.top;
      k = Math.min(Math.max(gesture.k0 * Math.hypot(a.x - b.x, a.y - b.y) / gesture.dist, minK), maxK);
      tx = mx - gesture.px * k; ty = my - gesture.py * k;
      fitted = k <= fitK * 1.001;
      clamp();
      apply(false, true);
    }
    e.preventDefault();
  });
  function pointerEnd(e) {
    if (!pointers[e.pointerId]) return;
    delete pointers[e.pointerId];
    if (gesture && gesture.moved) {
      // The click that ends a drag or a pinch picks nothing.
      dragged = true;
      setTimeout(function () { dragged = false; }, 0);
    }
    if (pointerList().length) startGesture(); else gesture = null;
    if (gesture) gesture.moved = true;  // the finger left after a pinch is still no tap
  }
  form.addEventListener("pointerup", pointerEnd);
  form.addEventListener("pointercancel", pointerEnd);

  window.addEventListener("resize", function () {
    if (!view) return;
    if (fitted) fit(false);
    else {
      fitK = Math.min(view.clientWidth / planW, view.clientHeight / planH);
      minK = fitK;
      clamp();
      apply(false);
    }
  });

  setup();
})();
