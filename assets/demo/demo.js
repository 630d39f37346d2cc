// A pretend charity CRM that shows the product's flow: the CRM's backend asks the
// licence server for a seat at sign-in (here /demo/api/login, served by
// `usher serve --demo`), and the page then keeps that seat with /usher.js. When all
// seats are taken the demo tenant puts the login in line (a 202 with a ticket): the
// page shows its place, and Usher.queue signs it in by itself once a seat frees.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var ID_PATTERN = /^[A-Za-z0-9._@-]{1,128}$/;
  var NAME_KEY = "harbourlight.user";

  var licence = null; // the Usher handle while signed in
  var session = null; // the login answer
  var waiting = null; // the Usher.queue handle while in line

  // ---------------------------------------------------------------- formatting

  // 24-hour local time, HH:MM:SS, as the dashboard writes it.
  function fmtTime(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return String(iso);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function fmtWait(secs) {
    secs = Math.max(0, Math.ceil(Number(secs)));
    if (secs < 60) return secs + (secs === 1 ? " second" : " seconds");
    var mins = Math.ceil(secs / 60);
    return mins + (mins === 1 ? " minute" : " minutes");
  }

  // English ordinals: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 102nd, 111th.
  function ordinal(n) {
    var tens = n % 100;
    if (tens >= 11 && tens <= 13) return n + "th";
    return n + (["th", "st", "nd", "rd"][n % 10] || "th");
  }

  // ---------------------------------------------------------------- signing in

  function login(event) {
    event.preventDefault();
    var user = $("user-name").value.trim();
    hideRefusal();
    if (!ID_PATTERN.test(user)) {
      showRefusal("Please check your name", "Use 1–128 letters, digits or . _ @ - (no spaces), for example ann.smith.");
      $("user-name").focus();
      return;
    }
    $("login").disabled = true;
    $("login").textContent = "Signing in…";
    fetch("/demo/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json", Accept: "application/json"},
      body: JSON.stringify({user: user}),
      cache: "no-store",
    })
      .then(function (response) {
        return response.text().then(function (text) {
          var body = {};
          try { body = text ? JSON.parse(text) : {}; } catch (e) { body = {}; }
          if (response.status === 202 && body.ticket) return wait(body, user);
          if (response.status === 201 || response.ok) return enter(body, user);
          refused(response.status, body);
        });
      }, function () {
        showRefusal("The CRM could not be reached", "Check your connection and try again.");
      })
      .then(function () {
        $("login").disabled = false;
        $("login").textContent = "Sign in";
      });
  }

  function refused(status, body) {
    var code = body.error || "http_" + status;
    var message = body.message || "The server answered " + status + ".";
    var detail = "Code: " + code;
    if (code === "licence_limit_reached") {
      // The moment the first seat may free itself: the nearest idle deadline.
      var wait = body.retry_after_secs !== undefined && body.retry_after_secs !== null
        ? " A seat may free at " + fmtTime(new Date(Date.now() + Number(body.retry_after_secs) * 1000)) +
          " (in " + fmtWait(body.retry_after_secs) + "), if its holder stays idle until then."
        : "";
      showRefusal(
        "All licences are in use",
        "Your organisation's " + body.seats + " licences are all in use (" + body.seats_in_use + " of " + body.seats +
          "). Ask a colleague who has finished to use “? → Release licence”, or try again later." + wait,
        detail + " · " + message
      );
    } else if (code === "user_not_licensed") {
      showRefusal("You have no licence yet", message, detail);
    } else if (code === "user_limit_reached") {
      showRefusal("Too many user accounts", message, detail);
    } else {
      showRefusal("Sign-in refused", message, detail);
    }
    $("user-name").focus();
  }

  function showRefusal(title, text, detail) {
    $("refusal-title").textContent = title;
    $("refusal-text").textContent = text;
    $("refusal-detail").textContent = detail || "";
    $("refusal").setAttribute("data-code", (detail || "").replace(/^Code: (\S+).*$/, "$1"));
    $("refusal").hidden = false;
  }

  function hideRefusal() {
    $("refusal").hidden = true;
    $("refusal").removeAttribute("data-code");
  }

  function loadUsherJs() {
    if (window.Usher) return Promise.resolve(window.Usher);
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = "/usher.js";
      script.onload = function () { resolve(window.Usher); };
      script.onerror = function () { reject(new Error("/usher.js could not be loaded")); };
      document.head.appendChild(script);
    });
  }

  function attachOptions() {
    return {
      onHeartbeat: function (info) { showHeld(info.expiresAt); },
      onEnded: ended,
    };
  }

  function enter(body, user) {
    return loadUsherJs().then(function (Usher) {
      var options = attachOptions();
      options.session = body.session;
      options.server = location.origin;
      options.heartbeatIntervalSecs = body.heartbeat_interval_secs;
      options.idleTimeoutSecs = body.idle_timeout_secs;
      options.expiresAt = body.expires_at;
      options.fence = body.fence;
      signedIn(body, user, Usher.attach(options));
    }, function (error) {
      showRefusal("The licence client could not be loaded", error.message);
    });
  }

  function signedIn(body, user, handle) {
    session = body;
    licence = handle;
    try { sessionStorage.setItem(NAME_KEY, user); } catch (e) { /* private mode */ }
    window.demoLicence = licence; // handy from the console
    $("current-user").textContent = body.user || user;
    $("signin-view").hidden = true;
    $("app-view").hidden = false;
    $("session-ended").hidden = true;
    $("crm").classList.remove("dimmed");
    $("crm").inert = false;
    $("help-button").disabled = false;
    showHeld(body.expires_at);
    setAbout();
    document.querySelector("nav button[aria-current]").focus();
  }

  // ---------------------------------------------------------------- waiting in line

  var LINE_ENDINGS = {
    cancelled: ["You left the line", "Sign in again to take a new place at the back."],
    expired: ["Your place in line lapsed", "This tab stopped keeping its place (asleep or offline for too long)."],
    claim_missed: ["Your seat passed to the next in line", "A seat was held for you but this tab did not take it in time."],
    evicted: ["You were taken out of the line", "Your account was removed from this organisation's licence."],
    not_found: ["Your place in line was lost", "The licence server no longer knows this ticket."],
  };

  function wait(body, user) {
    try { sessionStorage.setItem(NAME_KEY, user); } catch (e) { /* private mode */ }
    return loadUsherJs().then(function (Usher) {
      $("login-form").classList.add("queued");
      $("queue-box").hidden = false;
      $("queue-note").textContent = "Keep this tab open, " + (body.user || user) +
        ": you will be signed in automatically as soon as a colleague frees a seat.";
      $("leave-line").disabled = false;
      waiting = Usher.queue(body, {
        server: location.origin,
        onPosition: showPlace,
        onReady: function (handle, login) {
          waiting = null;
          leftLine();
          signedIn(login, user, handle);
        },
        onEnded: function (reason) {
          waiting = null;
          leftLine();
          var text = LINE_ENDINGS[reason] || ["You are no longer in line", "The line ended (" + reason + ")."];
          showRefusal(text[0], text[1], "Code: " + reason);
          $("user-name").focus();
        },
        attach: attachOptions(),
      });
      window.demoQueue = waiting; // handy from the console
      $("leave-line").focus();
    }, function (error) {
      showRefusal("The licence client could not be loaded", error.message);
    });
  }

  function showPlace(position) {
    var box = $("queue-box");
    box.setAttribute("data-position", String(position));
    $("queue-place").textContent = "All licences are in use — you are " + ordinal(position) + " in line";
  }

  function leftLine() {
    $("queue-box").hidden = true;
    $("queue-box").removeAttribute("data-position");
    $("queue-place").textContent = "";
    $("login-form").classList.remove("queued");
  }

  function leaveLine() {
    if (!waiting) return;
    $("leave-line").disabled = true;
    waiting.cancel().catch(function (error) {
      $("leave-line").disabled = false;
      $("queue-note").textContent = "Could not leave the line: " + error.message + " You are still in line; try again.";
    });
  }

  function showHeld(expiresAt) {
    var bar = $("licence-bar");
    bar.setAttribute("data-state", "held");
    $("licence-state").setAttribute("data-state", "held");
    $("licence-state").textContent = "Licence held — session expires at " + fmtTime(expiresAt) +
      " unless this tab keeps it alive (it does, while it stays open).";
    setAbout();
  }

  function setAbout() {
    if (!session) return;
    $("about-text").textContent = "You hold one of " + session.tenant + "'s licence seats as " + session.user +
      ". This tab renews it every " + session.heartbeat_interval_secs + " s; if it stops for " +
      session.idle_timeout_secs + " s the seat is freed for a colleague. Closing the tab, “Release licence” and " +
      "“Log out” free it at once.";
  }

  // ---------------------------------------------------------------- session end

  var REASONS = {
    released: "You released your licence. The seat is free for a colleague.",
    logged_out: "You logged out (from this tab or another of yours).",
    revoked: "An administrator released your licence.",
    expired: "Your session was idle for too long, so its licence was freed.",
    evicted: "Your account was removed from this organisation's licence.",
    not_found: "The licence server no longer knows this session.",
  };

  function ended(reason) {
    licence = null;
    var when = new Date().toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
    $("licence-bar").setAttribute("data-state", "ended");
    $("licence-state").setAttribute("data-state", "ended");
    $("licence-state").textContent = "No licence held — the session ended at " + when + " (" + reason + ").";
    $("ended-text").textContent = (REASONS[reason] || "The session ended (" + reason + ").") + " Ended at " + when + ".";
    var box = $("session-ended");
    box.setAttribute("data-reason", reason);
    box.hidden = false;
    closeMenu(false);
    $("help-button").disabled = true;
    $("crm").classList.add("dimmed");
    $("crm").inert = true;
    $("sign-in-again").focus();
  }

  function signInAgain() {
    session = null;
    $("app-view").hidden = true;
    $("signin-view").hidden = false;
    hideRefusal();
    $("user-name").focus();
  }

  // ---------------------------------------------------------------- help menu

  function menuItems() {
    return Array.prototype.slice.call($("help-menu").querySelectorAll("[role=menuitem]"));
  }

  function openMenu() {
    $("help-menu").hidden = false;
    $("help-button").setAttribute("aria-expanded", "true");
    menuItems()[0].focus();
  }

  function closeMenu(returnFocus) {
    $("help-menu").hidden = true;
    $("help-button").setAttribute("aria-expanded", "false");
    if (returnFocus) $("help-button").focus();
  }

  function menuKeys(event) {
    var items = menuItems();
    var index = items.indexOf(document.activeElement);
    if (event.key === "Escape") {
      closeMenu(true);
    } else if (event.key === "ArrowDown") {
      items[(index + 1) % items.length].focus();
    } else if (event.key === "ArrowUp") {
      items[(index - 1 + items.length) % items.length].focus();
    } else if (event.key === "Home") {
      items[0].focus();
    } else if (event.key === "End") {
      items[items.length - 1].focus();
    } else if (event.key === "Tab") {
      closeMenu(false);
      return;
    } else {
      return;
    }
    event.preventDefault();
  }

  function endOnPurpose(kind) {
    closeMenu(false);
    if (!licence) return;
    var call = kind === "release" ? licence.release() : licence.logout();
    $("licence-state").textContent = kind === "release" ? "Releasing your licence…" : "Logging out…";
    call.catch(function (error) {
      $("licence-state").textContent = "Could not " + (kind === "release" ? "release the licence" : "log out") +
        ": " + error.message + " Your licence is still held; try again.";
    });
  }

  // ---------------------------------------------------------------- wiring

  function showView(name) {
    document.querySelectorAll("nav button[data-view]").forEach(function (button) {
      var on = button.getAttribute("data-view") === name;
      if (on) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
      $("view-" + button.getAttribute("data-view")).hidden = !on;
    });
  }

  function init() {
    $("login-form").addEventListener("submit", login);
    $("sign-in-again").addEventListener("click", signInAgain);
    $("leave-line").addEventListener("click", leaveLine);
    $("help-button").addEventListener("click", function () {
      if ($("help-menu").hidden) openMenu();
      else closeMenu(true);
    });
    $("help-menu").addEventListener("keydown", menuKeys);
    $("help-button").addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" && $("help-menu").hidden) {
        event.preventDefault();
        openMenu();
      }
    });
    document.addEventListener("click", function (event) {
      if (!$("help-menu").hidden && !event.target.closest(".help")) closeMenu(false);
    });
    $("about-licence").addEventListener("click", function () {
      closeMenu(false);
      $("about-box").hidden = false;
      $("about-title").setAttribute("tabindex", "-1");
      $("about-title").focus();
    });
    $("release-licence").addEventListener("click", function () { endOnPurpose("release"); });
    $("logout").addEventListener("click", function () { endOnPurpose("logout"); });
    document.querySelectorAll("nav button[data-view]").forEach(function (button) {
      button.addEventListener("click", function () { showView(button.getAttribute("data-view")); });
    });
    try { $("user-name").value = sessionStorage.getItem(NAME_KEY) || ""; } catch (e) { /* private mode */ }
    $("user-name").focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
