/*! usher.js — the browser client of an Usher licence server. No dependencies.
 *
 * Usage, after the application's backend has logged the user in
 * (POST /v1/tenants/{tenant}/sessions) and handed the page the answer:
 *
 *   <script src="/usher.js"></script>
 *   const licence = Usher.attach({
 *     session: login.session,
 *     server: "https://usher.example.org",      // defaults to location.origin
 *     heartbeatIntervalSecs: login.heartbeat_interval_secs,
 *     idleTimeoutSecs: login.idle_timeout_secs, // optional
 *     fence: login.fence,                       // optional
 *     onEnded: (reason) => showSignedOut(reason),
 *     onHeartbeat: (info) => {},                // optional: {expiresAt, idleTimeoutSecs, fence}
 *     live: true,                               // optional: false heartbeats over HTTP only
 *   });
 *   helpMenu.releaseItem.onclick = () => licence.release();
 *   logoutButton.onclick = () => licence.logout();
 *
 * The tab keeps a WebSocket open to GET /v1/sessions/{token}/live (live: false turns
 * it off): heartbeats go as frames on it, and the server says the moment the session
 * ends (revoked by an administrator, logged out in another tab, displaced, expired,
 * the tenant deleted), so onEnded fires at once rather than at the next heartbeat.
 * When the socket cannot connect or drops, heartbeats go over HTTP as before, with the
 * same backoff, and the socket is tried again (after 1 s, doubling to a minute). A
 * socket that drops is followed at once by an HTTP heartbeat, which says whether the
 * session is still there. release() and logout() close the socket at once (a socket
 * connecting meanwhile would only be refused); one that fails keeps the session, and
 * the next heartbeat opens the socket again.
 *
 * fence is the session's fencing token, as the login and every heartbeat answer it:
 * a page that writes to a downstream resource directly sends it along, so that writes
 * from a tab whose seat has since passed to someone else are refused.
 *
 * onEnded(reason) is called exactly once, with the server's reason ("expired",
 * "released", "logged_out", "revoked", "evicted"), "not_found" when the server no
 * longer knows the session, or the error code of any other refusal.
 *
 * Why the default heartbeat interval survives background tabs
 * -----------------------------------------------------------
 * The server tells each login to heartbeat every idle_timeout / 4: 150 s at the
 * default idle timeout of 600 s. Chromium throttles timers in hidden tabs: at most
 * one wake-up per second at first, and after five minutes hidden ("intensive
 * wake-up throttling") chained timers only run on wake-ups aligned to the minute.
 * A timer asked for 150 s (165 s with the +10% jitter) therefore fires at worst
 * about 60 s late, around 225 s after the last heartbeat, which leaves more than
 * half of the 600 s idle window for the request itself and for retries: if that
 * heartbeat fails, a throttled tab still gets about six more tries, a minute
 * apart, before the deadline. For the same reason retries back off to at most
 * 60 s (or a quarter of the idle timeout if that is shorter): a throttled tab
 * cannot retry more often anyway, and a longer wait would waste the window.
 * The same arithmetic says an idle timeout much under about four minutes is not
 * safe for tabs left in the background: a minute of throttling is then a large
 * part of the window.
 * A tab that the browser freezes outright (discarded, or frozen to save energy)
 * runs no timers at all; its session then expires on the server, which is right
 * for a tab nobody is using, and the next heartbeat reports "expired".
 *
 * Transient failures (network errors, timeouts, 5xx, 408, 429, 503 with
 * Retry-After) never end the session here: the client keeps retrying until the
 * server answers, and only the server decides that a session has ended (410).
 *
 * When the page goes away (pagehide), the session is released with
 * navigator.sendBeacon, so the seat frees at once instead of after the idle
 * timeout. If the page is later restored from the back/forward cache, onEnded
 * reports "released".
 *
 * Waiting in line
 * ---------------
 * Under a licence that queues at its limit (on_limit: "queue"), a login at the limit is
 * answered 202 with a ticket instead of a session. The page keeps the ticket's place
 * and is signed in by itself when a seat is held for it:
 *
 *   const wait = Usher.queue(answer, {                // the 202 body (or its ticket string
 *     server: "https://usher.example.org",            //   plus heartbeatIntervalSecs)
 *     onPosition: (n) => showPlace(n),                // 1 is next; called at once, then on change
 *     onReady: (licence, login) => startApp(login),   // licence: the Usher.attach handle
 *     onEnded: (reason) => showOutOfLine(reason),     // "expired", "claim_missed", "cancelled", …
 *     attach: {onEnded: showSignedOut},               // options for the claimed session's attach
 *     live: true,                                     // optional: false heartbeats over HTTP only
 *   });
 *   leaveButton.onclick = () => wait.cancel();        // DELETE /v1/tickets/{ticket}
 *
 * The waiting tab keeps a WebSocket open to GET /v1/tickets/{ticket}/live, with the
 * session socket's code and rules (live: false turns it off; the same fallback to HTTP
 * when it cannot connect, drops or leaves a frame unanswered; the same reconnecting):
 * heartbeats go as frames on it, and the server pushes the ticket's place each time the
 * line moves ({"type": "position"}: onPosition fires when the tab moves up, not at its
 * next heartbeat), {"type": "ready"} the moment a seat is held for it, and
 * {"type": "ended", "reason"} when the ticket ends. Without the socket the ticket is
 * heartbeated over HTTP (POST /v1/tickets/{ticket}/heartbeat). Either way it goes at the
 * interval the 202 gives, with the same jitter, backoff, timeouts and retries as a
 * session; only the server's 410 (ticket_ended, with its reason), 404 ("not_found") or a
 * pushed end ends it. No socket is opened while a claim or a cancel is on its way (either
 * ends the ticket). When the ticket is ready, it is claimed at once (POST …/claim) and
 * the claim's answer — the login answer — is handed to Usher.attach with the attach
 * options, so the page goes on exactly as after a normal login. A claim answered 409
 * not_ready goes back to heartbeating; a claim refused otherwise leaves the line and
 * reports the error code. The handle has cancel() (resolves to "cancelled"; made while
 * a claim is on its way, it waits for the claim's answer and releases the seat that
 * claim took, or leaves the line if the ticket is back in it), stop()
 * (stops heartbeating without telling the server; the ticket expires) and state()
 * ({ended, position, ready, claimBy, expiresAt, failures, licence, live}, live as for a
 * session). When the page goes away (pagehide) the ticket is cancelled with a keepalive
 * fetch (a DELETE cannot be a beacon; of a ticket a claim on its way has taken, it
 * releases that claim's session); restored from the back/forward cache, onEnded
 * reports "cancelled".
 */
(function (global) {
  "use strict";

  var RETRY_CAP_SECS = 60; // throttled background timers wake at most once a minute
  var RETRY_BASE_SECS = 1;
  var REQUEST_TIMEOUT_SECS = 10;
  var SOCKET_RETRY_CAP_SECS = 60;
  var SOCKET_OPEN = 1; // WebSocket.OPEN

  function jitter(secs) {
    return secs * (0.9 + Math.random() * 0.2); // ±10% so tabs opened together spread out
  }

  // Starts (or, with `listen` false, stops) following the page's life for one handle:
  // the page going away, coming back from the back/forward cache, becoming visible, and
  // the network coming back.
  function followPage(hide, show, visible, online, listen) {
    var method = listen ? "addEventListener" : "removeEventListener";
    global[method]("pagehide", hide);
    global[method]("pageshow", show);
    global[method]("online", online);
    if (global.document) global.document[method]("visibilitychange", visible);
  }

  function positive(n) {
    n = Number(n);
    return isFinite(n) && n > 0 ? n : null;
  }

  function readJson(response) {
    return response.text().then(function (text) {
      try {
        return text ? JSON.parse(text) : {};
      } catch (e) {
        return {};
      }
    });
  }

  // Retry-After is either delay-seconds or an HTTP date.
  function retryAfterSecs(response) {
    var value = response.headers.get("Retry-After");
    if (!value) return null;
    var secs = Number(value);
    if (isFinite(secs)) return Math.max(0, secs);
    var when = Date.parse(value);
    return isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
  }

  function isTransient(status) {
    return status >= 500 || status === 408 || status === 429;
  }

  // A socket URL for an HTTP(S) route, absolute or relative to the page.
  // POSTs `url` (a release) so that it goes even as the page goes away: as a beacon, or
  // failing that as a keepalive fetch. Nothing waits for the answer; the session's idle
  // timeout is the backstop.
  function postAndForget(url) {
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url)) return;
    } catch (e) { /* a fetch then */ }
    try {
      fetch(url, {method: "POST", mode: "cors", credentials: "omit", keepalive: true}).catch(function () {});
    } catch (e) { /* the idle timeout is the backstop */ }
  }

  function socketUrl(url) {
    if (/^https?:/i.test(url)) return url.replace(/^http/i, "ws");
    var origin = global.location ? global.location.origin : "";
    return origin.replace(/^http/i, "ws") + url;
  }

  /**
   * One tab's live channel (a session's or a ticket's): connects, sends heartbeat
   * frames and gives each its request limit to be answered, and on a failure to
   * connect, a drop or a frame left unanswered lets the socket go and tries again
   * after 1 s, doubling to a minute. What the frames mean is the owner's: hooks are
   * active() (whether a socket is still wanted), limitSecs() (how long an answer may
   * take), frame(frame) (each JSON frame, which says answered() if it answers) and
   * lost() (an open socket was lost: heartbeat over HTTP now).
   */
  function liveSocket(url, enabled, hooks) {
    enabled = enabled && typeof global.WebSocket === "function";
    var socket = null; // the WebSocket connecting or open, if any
    var answer = null; // timer: the answer to the upgrade or a heartbeat frame is overdue
    var retry = null; // timer: the next try to connect
    var failures = 0;

    function awaitAnswer(ws, opened) {
      answer = setTimeout(function () { lost(ws, opened()); }, hooks.limitSecs() * 1000);
    }

    function connect() {
      clearTimeout(retry);
      retry = null;
      if (!enabled || socket || !hooks.active()) return;
      var ws;
      try {
        ws = new global.WebSocket(socketUrl(url));
      } catch (e) {
        failed();
        return;
      }
      socket = ws;
      var opened = false;
      // The upgrade is itself a heartbeat: its answer is the first frame.
      awaitAnswer(ws, function () { return opened; });
      ws.onopen = function () { opened = true; };
      ws.onmessage = function (event) {
        if (ws !== socket) return;
        var frame;
        try {
          frame = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (frame && typeof frame === "object") hooks.frame(frame);
      };
      ws.onclose = function () { lost(ws, opened); };
    }

    // The socket could not connect, closed, or stopped answering: the owner heartbeats
    // over HTTP until it is back, and after a drop at once.
    function lost(ws, opened) {
      if (ws !== socket) return;
      socket = null;
      clearTimeout(answer);
      answer = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch (e) { /* already closed */ }
      if (!hooks.active()) return;
      failed();
      if (opened) hooks.lost();
    }

    function failed() {
      failures += 1;
      var wait = Math.min(Math.pow(2, failures - 1), SOCKET_RETRY_CAP_SECS);
      clearTimeout(retry);
      retry = setTimeout(connect, jitter(wait) * 1000);
    }

    function isOpen() {
      return !!(socket && socket.readyState === SOCKET_OPEN);
    }

    return {
      /** Connects now, unless a socket is already connecting or open. */
      connect: connect,
      /** Connects unless connecting, open, or waiting to try again. */
      connectIfIdle: function () { if (!retry) connect(); },
      /** Whether the socket is open: heartbeats go on it. */
      isOpen: isOpen,
      /** Sends a heartbeat frame, unless one is still waiting for its answer. */
      heartbeat: function () {
        if (!isOpen() || answer) return;
        var ws = socket;
        try {
          ws.send(JSON.stringify({type: "heartbeat"}));
        } catch (e) {
          lost(ws, true);
          return;
        }
        awaitAnswer(ws, function () { return true; });
      },
      /** A frame answered the upgrade or a heartbeat; `good` if it was no error. */
      answered: function (good) {
        clearTimeout(answer);
        answer = null;
        if (good) failures = 0;
      },
      /** Closes the socket and tries no more. */
      close: function () {
        clearTimeout(retry);
        retry = null;
        clearTimeout(answer);
        answer = null;
        if (!socket) return;
        var ws = socket;
        socket = null;
        ws.onopen = ws.onmessage = ws.onclose = null;
        try {
          ws.close(1000);
        } catch (e) { /* already closed */ }
      },
    };
  }

  /**
   * Keeps one session alive by heartbeat and reports when it ends.
   * Returns a handle with release(), logout(), heartbeatNow(), stop() and state().
   */
  function attach(options) {
    options = options || {};
    if (!options.session) throw new TypeError("Usher.attach: options.session is required");
    var session = String(options.session);
    var server = String(options.server || (global.location && global.location.origin) || "").replace(/\/+$/, "");
    var base = server + "/v1/sessions/" + encodeURIComponent(session);
    var onEnded = typeof options.onEnded === "function" ? options.onEnded : function () {};
    var onHeartbeat = typeof options.onHeartbeat === "function" ? options.onHeartbeat : function () {};

    var intervalSecs = positive(options.heartbeatIntervalSecs) || 150;
    var idleTimeoutSecs = positive(options.idleTimeoutSecs) || intervalSecs * 4;
    var expiresAt = options.expiresAt ? new Date(options.expiresAt) : null;
    var fence = typeof options.fence === "number" ? options.fence : null;

    var timer = null;
    var inFlight = null; // AbortController of the heartbeat under way
    var failures = 0;
    var lastSuccess = Date.now(); // the login itself counts as activity
    var closing = false; // release/logout under way: no more heartbeats
    var ended = null; // the reason, once ended
    var releasedByPagehide = false;

    var channel = liveSocket(base + "/live", options.live !== false, {
      active: function () { return !ended && !closing; },
      limitSecs: requestLimitSecs,
      frame: onFrame,
      // After a drop, an HTTP heartbeat at once says whether the session is still there
      // (unless HTTP is itself backing off).
      lost: function () { if (failures === 0) beat(); },
    });

    function retryCapSecs() {
      return Math.max(RETRY_BASE_SECS, Math.min(RETRY_CAP_SECS, idleTimeoutSecs / 4));
    }

    function schedule(secs) {
      clearTimeout(timer);
      timer = setTimeout(beat, Math.max(0, secs) * 1000);
    }

    function finish(reason) {
      if (ended) return;
      ended = reason;
      clearTimeout(timer);
      timer = null;
      if (inFlight) inFlight.abort();
      channel.close();
      removeListeners();
      try {
        onEnded(reason);
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }

    function post(path, timeoutSecs) {
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var limit = Math.min(timeoutSecs, requestLimitSecs());
      var timeout = controller && setTimeout(function () { controller.abort(); }, limit * 1000);
      // No body and no custom header: a CORS "simple request", so no preflight.
      var request = fetch(base + path, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      });
      return {
        controller: controller,
        done: request.then(
          function (r) { clearTimeout(timeout); return r; },
          function (e) { clearTimeout(timeout); throw e; }
        ),
      };
    }

    function retryLater(hintSecs) {
      failures += 1;
      var backoff = RETRY_BASE_SECS * Math.pow(2, failures - 1);
      var wait = Math.min(Math.max(backoff, hintSecs || 0), retryCapSecs());
      schedule(jitter(wait));
    }

    // An answer that says the session is over, or null if it is not such an answer.
    function endingOf(response, body) {
      if (response.status === 410) return (body && body.reason) || "expired";
      if (response.status === 404) return "not_found";
      if (response.status >= 400 && response.status < 500 && !isTransient(response.status)) {
        return (body && body.error) || "http_" + response.status;
      }
      return null;
    }

    // A heartbeat answered, over HTTP or the socket.
    function beaten(body) {
      failures = 0;
      lastSuccess = Date.now();
      idleTimeoutSecs = positive(body.idle_timeout_secs) || idleTimeoutSecs;
      if (body.expires_at) expiresAt = new Date(body.expires_at);
      if (typeof body.fence === "number") fence = body.fence;
      schedule(jitter(intervalSecs));
      try {
        onHeartbeat({expiresAt: expiresAt, idleTimeoutSecs: idleTimeoutSecs, fence: fence});
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }

    function requestLimitSecs() {
      return Math.max(1, Math.min(REQUEST_TIMEOUT_SECS, idleTimeoutSecs / 2));
    }

    function beat() {
      if (ended || closing) return;
      if (channel.isOpen()) {
        clearTimeout(timer);
        channel.heartbeat();
        return;
      }
      if (inFlight) return;
      clearTimeout(timer);
      var call = post("/heartbeat", REQUEST_TIMEOUT_SECS);
      var mine = call.controller || {abort: function () {}};
      inFlight = mine;
      function settled() {
        if (inFlight === mine) inFlight = null; // a later heartbeat may already be under way
      }
      call.done
        .then(function (response) {
          return readJson(response).then(function (body) {
            settled();
            if (ended || closing) return;
            if (response.ok) {
              beaten(body);
              channel.connectIfIdle();
              return;
            }
            var reason = endingOf(response, body);
            if (reason) finish(reason);
            else retryLater(response.status === 503 ? retryAfterSecs(response) : null);
          });
        })
        .catch(function () {
          var current = inFlight === mine;
          settled();
          // A network error or timeout; an abort by release/logout/stop is not a failure.
          if (current && !ended && !closing) retryLater(null);
        });
    }

    function onFrame(frame) {
      if (ended) return;
      if (frame.type === "ended") {
        finish(frame.reason || "expired");
        return;
      }
      if (frame.type !== "heartbeat" && frame.type !== "error") return;
      channel.answered(frame.type === "heartbeat");
      if (frame.type === "heartbeat") {
        if (!closing) beaten(frame);
      } else if (frame.error === "session_ended") {
        finish(frame.reason || "expired");
      } else if (frame.error === "session_not_found") {
        finish("not_found");
      } else if (!closing) {
        retryLater(frame.retry_after_secs || null); // overloaded, unavailable: as over HTTP
      }
    }

    // Ends the session on purpose: "release" (this tab) or "logout" (all the user's tabs).
    function end(path, reason) {
      if (ended) return Promise.resolve(ended);
      closing = true;
      clearTimeout(timer);
      channel.close(); // opened again by the next heartbeat if the session stays
      if (inFlight) {
        inFlight.abort();
        inFlight = null;
      }
      return post(path, REQUEST_TIMEOUT_SECS).done.then(
        function (response) {
          return readJson(response).then(function (body) {
            if (response.ok) {
              finish(reason);
            } else if (endingOf(response, body)) {
              finish(endingOf(response, body)); // already over: report why
            } else {
              closing = false;
              schedule(0);
              var error = new Error((body && body.message) || "the server answered " + response.status);
              error.code = body && body.error;
              error.status = response.status;
              throw error;
            }
            return ended;
          });
        },
        function (error) {
          closing = false; // still ours: keep it alive and let the caller retry
          schedule(0);
          throw error;
        }
      );
    }

    function onPageHide() {
      if (ended || closing) return;
      postAndForget(base + "/release");
      closing = true;
      releasedByPagehide = true;
      clearTimeout(timer);
      channel.close();
    }

    function onPageShow(event) {
      // Restored from the back/forward cache after pagehide released the session.
      if (event.persisted && releasedByPagehide) finish("released");
    }

    function onVisible() {
      // Timers may have been frozen or stretched while hidden: catch up at once.
      if (ended || closing || global.document.visibilityState !== "visible") return;
      if (Date.now() - lastSuccess >= intervalSecs * 1000) beat();
    }

    function onOnline() {
      if (failures > 0) beat();
      channel.connect();
    }

    function removeListeners() {
      followPage(onPageHide, onPageShow, onVisible, onOnline, false);
    }

    followPage(onPageHide, onPageShow, onVisible, onOnline, true);
    schedule(jitter(intervalSecs));
    channel.connect();

    return {
      /** Ends this tab's session ("Release licence"); resolves to "released". */
      release: function () { return end("/release", "released"); },
      /** Ends every session of this user; resolves to "logged_out". */
      logout: function () { return end("/logout", "logged_out"); },
      /** Sends a heartbeat now instead of waiting for the timer. */
      heartbeatNow: function () { beat(); },
      /** Stops heartbeating without telling the server; the session will expire. */
      stop: function () {
        if (ended) return;
        ended = "stopped";
        clearTimeout(timer);
        if (inFlight) inFlight.abort();
        channel.close();
        removeListeners();
      },
      /**
       * The client's view: {ended, expiresAt, failures, idleTimeoutSecs, fence, live},
       * live being whether heartbeats go over the socket now.
       */
      state: function () {
        return {
          ended: ended,
          expiresAt: expiresAt,
          failures: failures,
          idleTimeoutSecs: idleTimeoutSecs,
          fence: fence,
          live: channel.isOpen(),
        };
      },
    };
  }

  /**
   * Keeps a waitlist ticket's place by heartbeat, reports its position, and claims the
   * seat held for it: onReady(licence, login) gets the Usher.attach handle of the new
   * session. Returns a handle with cancel(), stop() and state().
   */
  function queue(ticket, options) {
    options = options || {};
    var answer = ticket && typeof ticket === "object" ? ticket : {ticket: ticket};
    if (!answer.ticket) throw new TypeError("Usher.queue: the ticket is required");
    var token = String(answer.ticket);
    var server = String(options.server || (global.location && global.location.origin) || "").replace(/\/+$/, "");
    var base = server + "/v1/tickets/" + encodeURIComponent(token);
    var callback = function (f) { return typeof f === "function" ? f : function () {}; };
    var onPosition = callback(options.onPosition);
    var onReady = callback(options.onReady);
    var onEnded = callback(options.onEnded);
    var attachOptions = options.attach || {};

    var intervalSecs = positive(options.heartbeatIntervalSecs) || positive(answer.heartbeat_interval_secs) || 15;
    var idleTimeoutSecs = positive(options.idleTimeoutSecs) || positive(answer.idle_timeout_secs) || intervalSecs * 4;
    var expiresAt = answer.expires_at ? new Date(answer.expires_at) : null;
    var position = typeof answer.position === "number" ? answer.position : null;
    var claimBy = null;

    var timer = null;
    var inFlight = null; // AbortController of the request under way
    var failures = 0;
    var lastSuccess = Date.now();
    var claiming = false;
    var closing = false; // cancel under way
    var ended = null;
    var licence = null; // the session's handle, once claimed
    var cancelledByPagehide = false;
    // A cancel() made while a claim was on its way: {promise, resolve, reject}.
    var cancelAfterClaim = null;

    // No socket is wanted while the ticket is being claimed or left: either ends it, and a
    // socket opened meanwhile would only be refused.
    var channel = liveSocket(base + "/live", options.live !== false, {
      active: function () { return !ended && !closing && !claiming; },
      limitSecs: requestLimitSecs,
      frame: onFrame,
      lost: function () { if (failures === 0) step(); }, // as for a session
    });

    function retryCapSecs() {
      return Math.max(RETRY_BASE_SECS, Math.min(RETRY_CAP_SECS, idleTimeoutSecs / 4));
    }

    function requestLimitSecs() {
      return Math.max(1, Math.min(REQUEST_TIMEOUT_SECS, idleTimeoutSecs / 2));
    }

    function schedule(secs) {
      clearTimeout(timer);
      timer = setTimeout(step, Math.max(0, secs) * 1000);
    }

    function safely(f, args) {
      try {
        f.apply(null, args);
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }

    function stopAll() {
      clearTimeout(timer);
      timer = null;
      if (inFlight) inFlight.abort();
      inFlight = null;
      channel.close();
      removeListeners();
    }

    function finish(reason) {
      if (ended) return;
      ended = reason;
      stopAll();
      safely(onEnded, [reason]);
    }

    function request(method, path) {
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var timeout = controller && setTimeout(function () { controller.abort(); }, requestLimitSecs() * 1000);
      // No body and no custom header: the POSTs are CORS "simple requests".
      var done = fetch(base + path, {
        method: method,
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      }).then(
        function (r) { clearTimeout(timeout); return r; },
        function (e) { clearTimeout(timeout); throw e; }
      );
      return {controller: controller || {abort: function () {}}, done: done};
    }

    function retryLater(hintSecs) {
      failures += 1;
      var backoff = RETRY_BASE_SECS * Math.pow(2, failures - 1);
      schedule(jitter(Math.min(Math.max(backoff, hintSecs || 0), retryCapSecs())));
    }

    // An answer that says the ticket is over, or null if it is not such an answer.
    function endingOf(response, body) {
      if (response.status === 410) return (body && body.reason) || "expired";
      if (response.status === 404) return "not_found";
      if (response.status >= 400 && response.status < 500 && !isTransient(response.status)) {
        return (body && body.error) || "http_" + response.status;
      }
      return null;
    }

    function moved(n) {
      if (typeof n !== "number" || n < 1 || n === position) return;
      position = n;
      safely(onPosition, [n]);
    }

    // One request, heartbeat or claim, with the shared handling of failures; `settled`
    // (if given) runs once the answer or the failure has been dealt with.
    function call(method, path, handle, settled) {
      if (inFlight) return;
      clearTimeout(timer);
      var sent = request(method, path);
      var mine = sent.controller;
      inFlight = mine;
      sent.done
        .then(function (response) {
          return readJson(response).then(function (body) {
            if (inFlight === mine) inFlight = null;
            if (!ended && !closing && !handle(response, body)) {
              var reason = endingOf(response, body);
              if (reason) finish(reason);
              else retryLater(response.status === 503 ? retryAfterSecs(response) : null);
            }
            if (settled) settled();
          });
        })
        .catch(function () {
          var current = inFlight === mine;
          if (current) inFlight = null;
          // A network error or timeout; an abort by cancel/stop is not a failure.
          if (current && !ended && !closing) retryLater(null);
          if (settled) settled();
        });
    }

    function step() {
      if (ended || closing) return;
      if (claiming) claim();
      else beat();
    }

    function beat() {
      if (channel.isOpen()) {
        clearTimeout(timer);
        channel.heartbeat();
        return;
      }
      call("POST", "/heartbeat", function (response, body) {
        if (!response.ok) return false;
        placed(body, !!body.ready);
        channel.connectIfIdle();
        return true;
      });
    }

    // The ticket's place, as a heartbeat answered it or the socket pushed it (a push is
    // itself a heartbeat on the server): in line, or ready to be claimed at once.
    function placed(body, ready) {
      failures = 0;
      lastSuccess = Date.now();
      if (body.expires_at) expiresAt = new Date(body.expires_at);
      if (ready || claiming) {
        // Ready (or told so on the socket while this answer was on its way): claim now.
        if (ready) claimBy = body.claim_by ? new Date(body.claim_by) : null;
        position = 0;
        claiming = true;
        claim();
        return;
      }
      moved(body.position);
      schedule(jitter(intervalSecs));
    }

    function onFrame(frame) {
      if (ended || closing) return;
      if (frame.type === "ended") {
        // Our own claim ends the ticket too; its answer, the login, is on its way, and
        // the ticket's socket has nothing more to say: it is not opened again.
        if (frame.reason === "claimed" && claiming) {
          channel.close();
          return;
        }
        finish(frame.reason || "expired");
        return;
      }
      if (frame.type === "position" || frame.type === "ready") {
        channel.answered(true);
        if (!claiming) placed(frame, frame.type === "ready");
      } else if (frame.type === "error") {
        channel.answered(false);
        if (frame.error === "ticket_ended") finish(frame.reason || "expired");
        else if (frame.error === "ticket_not_found") finish("not_found");
        else retryLater(frame.retry_after_secs || null); // overloaded, unavailable: as over HTTP
      }
    }

    function claim() {
      call("POST", "/claim", function (response, body) {
        if (response.status === 409 && body.error === "not_ready") {
          // Not held for us after all (or not yet): back in line.
          failures = 0;
          claiming = false;
          claimBy = null;
          moved(body.position);
          schedule(jitter(Math.min(intervalSecs, RETRY_BASE_SECS * 2)));
          return true;
        }
        if (response.ok && body.session && cancelAfterClaim) {
          // Cancelled while the claim was on its way: the seat it took is given back.
          postAndForget(server + "/v1/sessions/" + encodeURIComponent(body.session) + "/release");
          finish("cancelled");
          return true;
        }
        if (response.ok && body.session) {
          claimed(body);
          return true;
        }
        if (response.status >= 400 && response.status < 500 && response.status !== 404 &&
            response.status !== 410 && !isTransient(response.status)) {
          // Refused for another reason (say, session_limit_reached): leave the line so
          // the seat held for this ticket passes on, and report why.
          var reason = (body && body.error) || "http_" + response.status;
          request("DELETE", "").done.catch(function () {});
          finish(reason);
          return true;
        }
        return false;
      }, function () {
        var waiting = cancelAfterClaim;
        if (!waiting) return;
        cancelAfterClaim = null;
        // The claim is answered: over (claimed and given back, or refused), or back in
        // line, which the cancel now leaves.
        (ended ? Promise.resolve(ended) : leave()).then(waiting.resolve, waiting.reject);
      });
    }

    function claimed(login) {
      ended = "claimed";
      stopAll();
      var settings = {};
      for (var key in attachOptions) {
        if (Object.prototype.hasOwnProperty.call(attachOptions, key)) settings[key] = attachOptions[key];
      }
      settings.session = login.session;
      settings.server = server;
      settings.heartbeatIntervalSecs = login.heartbeat_interval_secs;
      settings.idleTimeoutSecs = login.idle_timeout_secs;
      settings.expiresAt = login.expires_at;
      settings.fence = login.fence;
      licence = attach(settings);
      safely(onReady, [licence, login]);
    }

    function cancel() {
      if (ended) return Promise.resolve(ended);
      if (claiming && inFlight) {
        // A claim is on its way, and its answer may already hold the seat, which only
        // that answer can give back: the cancel waits for it.
        if (!cancelAfterClaim) {
          var waiting = {};
          waiting.promise = new Promise(function (resolve, reject) {
            waiting.resolve = resolve;
            waiting.reject = reject;
          });
          cancelAfterClaim = waiting;
        }
        return cancelAfterClaim.promise;
      }
      return leave();
    }

    // Leaves the line: DELETE /v1/tickets/{ticket}.
    function leave() {
      closing = true;
      clearTimeout(timer);
      channel.close(); // opened again by the next heartbeat if the ticket stays in line
      if (inFlight) {
        inFlight.abort();
        inFlight = null;
      }
      return request("DELETE", "").done.then(
        function (response) {
          return readJson(response).then(function (body) {
            if (response.ok) {
              finish("cancelled");
            } else if (endingOf(response, body)) {
              finish(endingOf(response, body)); // already over: report why
            } else {
              closing = false;
              schedule(0);
              var error = new Error((body && body.message) || "the server answered " + response.status);
              error.code = body && body.error;
              error.status = response.status;
              throw error;
            }
            return ended;
          });
        },
        function (error) {
          closing = false; // still in line: keep the place and let the caller retry
          schedule(0);
          throw error;
        }
      );
    }

    function onPageHide() {
      if (ended || closing) return;
      try {
        fetch(base, {method: "DELETE", mode: "cors", credentials: "omit", keepalive: true}).catch(function () {});
      } catch (e) { /* the page is going away; the ticket's idle timeout is the backstop */ }
      closing = true;
      cancelledByPagehide = true;
      clearTimeout(timer);
      channel.close();
    }

    function onPageShow(event) {
      if (event.persisted && cancelledByPagehide) finish("cancelled");
    }

    function onVisible() {
      if (ended || closing || global.document.visibilityState !== "visible") return;
      if (Date.now() - lastSuccess >= intervalSecs * 1000) step();
    }

    function onOnline() {
      if (failures > 0) step();
      channel.connect();
    }

    function removeListeners() {
      followPage(onPageHide, onPageShow, onVisible, onOnline, false);
    }

    followPage(onPageHide, onPageShow, onVisible, onOnline, true);
    if (position !== null && position >= 1) safely(onPosition, [position]);
    schedule(jitter(intervalSecs));
    channel.connect();

    return {
      /** Leaves the line (DELETE /v1/tickets/{ticket}); resolves to "cancelled". */
      cancel: cancel,
      /** Stops heartbeating without telling the server; the ticket will expire. */
      stop: function () {
        if (ended) return;
        ended = "stopped";
        stopAll();
      },
      /**
       * The client's view: {ended, position, ready, claimBy, expiresAt, failures, licence,
       * live}, live being whether heartbeats go over the socket now.
       */
      state: function () {
        return {
          ended: ended,
          position: position,
          ready: claiming || !!licence,
          claimBy: claimBy,
          expiresAt: expiresAt,
          failures: failures,
          licence: licence,
          live: channel.isOpen(),
        };
      },
    };
  }

  global.Usher = {attach: attach, queue: queue, version: "1"};
})(typeof window !== "undefined" ? window : this);
