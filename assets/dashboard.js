// The Usher admin dashboard: tenants, who holds a seat, licences, users, records and
// the usage report, kept live by the audit log's event stream (SPEC §11): each event
// refreshes the view, a slow refresh catches what moves without an event (heartbeats
// push deadlines), and while the stream is down the HTTP API is polled every two seconds.
// Plain script, no build step; uPlot (vendored) draws the charts.
(function () {
  "use strict";

  var POLL_MS = 2000; // while the stream is down
  var BACKSTOP_MS = 30000; // while it is up: heartbeats move deadlines without an event
  var STREAM_RETRY_CAP_MS = 30000;
  var SETTLE_MS = 100; // events that come together make one refresh
  var AUTH_KEY = "usher.dashboard.auth";
  var ID_PATTERN = /^[A-Za-z0-9._@-]{1,128}$/;

  var state = {
    auth: null, // {token, tenant} — tenant set when signed in with a tenant API key
    tenants: [],
    selected: null, // tenant id shown below the list
    creating: false, // licence editor in "new tenant" mode
    licenceDirty: false,
    usageKey: "",
    pollTimer: null,
    polling: false,
    pollAgain: false, // an event came while a refresh was under way
    stream: null, // {controller, open} of the event stream
    streamTimer: null,
    streamFailures: 0,
    settleTimer: null,
  };

  var $ = function (id) { return document.getElementById(id); };

  // ---------------------------------------------------------------- API

  function ApiError(status, body) {
    this.status = status;
    this.code = (body && body.error) || (status ? "http_" + status : "network_error");
    this.message = (body && body.message) ||
      (status ? "The server answered " + status + "." : "The server could not be reached.");
    this.body = body || {};
  }

  function api(method, path, body) {
    var headers = {Accept: "application/json"};
    if (state.auth) headers.Authorization = "Bearer " + state.auth.token;
    var init = {method: method, headers: headers, cache: "no-store"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (response) {
        return response.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (!response.ok) throw new ApiError(response.status, data);
          return data;
        });
      },
      function () { throw new ApiError(0, null); }
    );
  }

  function tenantPath(tenant, rest) {
    return "/v1/tenants/" + encodeURIComponent(tenant) + (rest || "");
  }

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function setText(node, text) {
    text = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    value = String(value);
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  function fmtNumber(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString();
  }

  // One time format throughout: 24-hour local time, HH:MM:SS, with the date in
  // front (YYYY-MM-DD, as the usage report's days) when it is not today.
  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  function fmtClock(d) {
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  function fmtDate(d) {
    return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d)) return iso;
    var sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? fmtClock(d) : fmtDate(d) + " " + fmtClock(d);
  }

  // Every item of a paged list ({<key>: [...], next_cursor}), page by page.
  function listAll(path, key) {
    var items = [];
    function page(cursor) {
      var url = path + "?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      return api("GET", url).then(function (data) {
        items = items.concat((data && data[key]) || []);
        var next = data && data.next_cursor;
        return next && next !== cursor ? page(next) : items;
      });
    }
    return page(null);
  }

  function fmtRelative(iso) {
    if (!iso) return "";
    var secs = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    var abs = Math.abs(secs);
    var text = abs < 60 ? abs + " s" : abs < 3600 ? Math.floor(abs / 60) + " min " + (abs % 60) + " s"
      : Math.floor(abs / 3600) + " h " + Math.floor((abs % 3600) / 60) + " min";
    return secs >= 0 ? "in " + text : text + " ago";
  }

  function fmtDuration(secs) {
    if (secs === null || secs === undefined) return "—";
    if (secs % 3600 === 0) return secs / 3600 + " h";
    if (secs % 60 === 0) return secs / 60 + " min";
    return secs + " s";
  }

  var MODEL_NAMES = {named: "Named users", concurrent: "Concurrent users", records: "Records-based"};

  // Keeps a tbody's rows in step with a list without rebuilding them, so a
  // focused button keeps its focus across polls.
  function syncRows(tbody, items, keyOf, create, update) {
    var rows = tbody._rows || (tbody._rows = new Map());
    var seen = new Set();
    items.forEach(function (item, index) {
      var key = keyOf(item);
      seen.add(key);
      var row = rows.get(key);
      if (!row) {
        row = create(item);
        rows.set(key, row);
      }
      update(row, item);
      if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
    });
    rows.forEach(function (row, key) {
      if (!seen.has(key)) {
        var hadFocus = row.contains(document.activeElement);
        row.remove();
        rows.delete(key);
        if (hadFocus) focusHeading(tbody.closest("section"));
      }
    });
  }

  // Marks a row's button as working. aria-disabled rather than disabled, so a
  // keyboard user's focus stays on it (and moves on with focusHeading when the row
  // goes). Answers false if it was already working.
  function busy(button, on) {
    if (on && button.getAttribute("aria-disabled") === "true") return false;
    if (on) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
    return true;
  }

  // When the focused row disappears, keep keyboard users in the same panel.
  function focusHeading(section) {
    var heading = section && section.querySelector("h2, h3");
    if (!heading) return;
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }

  // ---------------------------------------------------------------- messages

  // An error from the API's {error, message}: beside the form it came from when
  // `inline` names one (so it is seen where the user is), else in the banner on top.
  function showError(error, context, inline) {
    var code = error && error.code ? error.code : "error";
    var message = (context ? context + ": " : "") + (error && error.message ? error.message : String(error));
    if (inline) {
      setText($(inline), message + " (" + code + ")");
      $(inline).hidden = false;
      return;
    }
    setText($("error-code"), code);
    setText($("error-message"), message);
    $("error").hidden = false;
  }

  function clearError(inline) {
    $("error").hidden = true;
    if (inline) $(inline).hidden = true;
  }

  function showNotice(text) {
    setText($("notice-text"), text);
    $("notice").hidden = false;
    clearTimeout(showNotice.timer);
    showNotice.timer = setTimeout(function () { $("notice").hidden = true; }, 6000);
  }

  function setLive(ok, text) {
    setAttr($("live"), "data-state", ok ? "ok" : "stale");
    setText($("live-text"), text);
  }

  // ---------------------------------------------------------------- sign in

  function isAdmin() { return state.auth && !state.auth.tenant; }

  function loadAuth() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
      if (saved && saved.token) return saved;
    } catch (e) { /* ignore a damaged entry */ }
    return null;
  }

  function signIn(event) {
    event.preventDefault();
    var token = $("signin-token").value.trim();
    var tenant = $("signin-tenant").value.trim();
    var errorBox = $("signin-error");
    errorBox.hidden = true;
    if (!token) return fail("Type the admin token or a tenant API key.", $("signin-token"));
    if (tenant && !ID_PATTERN.test(tenant)) {
      return fail("A tenant id is 1–128 letters, digits or . _ @ -", $("signin-tenant"));
    }
    // Try the token as the admin token first; a tenant API key gets 403 there and is
    // then checked against the tenant id typed beside it.
    state.auth = {token: token, tenant: null};
    $("signin-submit").disabled = true;
    api("GET", "/v1/tenants")
      .catch(function (error) {
        if (error.status !== 403 || !tenant) throw error;
        state.auth = {token: token, tenant: tenant};
        return api("GET", tenantPath(tenant));
      })
      .then(function () {
        sessionStorage.setItem(AUTH_KEY, JSON.stringify(state.auth));
        $("signin-token").value = "";
        if (isAdmin() && tenant) location.hash = "tenant=" + encodeURIComponent(tenant);
        enterApp();
      })
      .catch(function (error) {
        state.auth = null;
        var text = error.message;
        if (error.status === 403 && !tenant) {
          text = "This credential cannot list all tenants. If it is a tenant API key, also type the tenant id.";
          return fail(text, $("signin-tenant"));
        }
        if (error.status === 401) text = "That token was not accepted. Check it and try again.";
        if (error.status === 403) text = "That API key does not belong to tenant " + tenant + ".";
        fail(text + " (" + error.code + ")", error.status === 404 ? $("signin-tenant") : $("signin-token"));
      })
      .then(function () { $("signin-submit").disabled = false; });

    function fail(text, field) {
      setText(errorBox, text);
      errorBox.hidden = false;
      if (field) field.focus();
    }
  }

  function signOut(message) {
    state.auth = null;
    state.selected = null;
    state.tenants = [];
    sessionStorage.removeItem(AUTH_KEY);
    clearTimeout(state.pollTimer);
    closeStream();
    $("app-view").hidden = true;
    $("session-bar").hidden = true;
    $("signin-view").hidden = false;
    ["tenants-body", "holders-body", "queue-body", "users-body", "usage-body"].forEach(function (id) {
      $(id).textContent = "";
      $(id)._rows = null;
    });
    $("queue-panel").hidden = true;
    clearError();
    ["notice", "api-key-box", "licence-error", "user-error", "records-error", "licence-preview-box"]
      .forEach(function (id) { $(id).hidden = true; });
    setText($("api-key-value"), "");
    ["user-input", "records-input", "signin-tenant"].forEach(function (id) { $(id).value = ""; });
    if (message) {
      setText($("signin-error"), message);
      $("signin-error").hidden = false;
    }
    $("signin-token").focus();
  }

  function enterApp() {
    $("signin-view").hidden = true;
    $("app-view").hidden = false;
    $("session-bar").hidden = false;
    $("signin-error").hidden = true;
    setText($("whoami"), isAdmin() ? "Admin" : "Tenant " + state.auth.tenant);
    document.querySelectorAll("[data-admin-only]").forEach(function (node) { node.hidden = !isAdmin(); });
    if (document.activeElement === document.body || !document.activeElement) focusHeading($("tenants-panel"));
    var fromHash = decodeURIComponent((location.hash.match(/tenant=([^&]+)/) || [])[1] || "");
    if (!isAdmin()) selectTenant(state.auth.tenant);
    else if (fromHash) selectTenant(fromHash);
    poll();
    openStream();
  }

  // ---------------------------------------------------------------- polling

  function streaming() { return !!(state.stream && state.stream.open); }

  function poll() {
    clearTimeout(state.pollTimer);
    if (!state.auth) return;
    if (document.hidden) return; // resumed by visibilitychange
    if (state.polling) {
      state.pollAgain = true;
      return;
    }
    state.polling = true;
    state.pollAgain = false;
    var auth = state.auth;
    refresh()
      .then(function () {
        setLive(true, "Live · " + fmtClock(new Date()) + (streaming() ? "" : " · polling"));
      })
      .catch(function (error) {
        if (state.auth !== auth) return;
        if (error.status === 401) return signOut("Your credential is no longer accepted. Sign in again.");
        setLive(false, "Updates paused: " + error.message);
      })
      .then(function () {
        state.polling = false;
        if (!state.auth) return;
        var wait = state.auth !== auth || state.pollAgain ? 0 : streaming() ? BACKSTOP_MS : POLL_MS;
        state.pollTimer = setTimeout(poll, wait);
      });
  }

  // ---------------------------------------------------------------- event stream

  // The audit log as it is written: every tenant's for the administrator, the tenant's
  // own for a tenant key. Read with fetch, which can send the credential.
  function streamPath() {
    return isAdmin() ? "/v1/events/stream" : tenantPath(state.auth.tenant, "/events/stream");
  }

  function openStream() {
    closeStream();
    if (!state.auth || document.hidden) return;
    if (typeof AbortController !== "function" || typeof TextDecoder !== "function") return;
    var auth = state.auth;
    var stream = {controller: new AbortController(), open: false};
    state.stream = stream;
    setAttr($("live"), "data-mode", "poll");
    fetch(streamPath(), {
      headers: {Accept: "text/event-stream", Authorization: "Bearer " + auth.token},
      cache: "no-store",
      signal: stream.controller.signal,
    })
      .then(function (response) {
        if (state.stream !== stream) return;
        if (response.status === 401) {
          signOut("Your credential is no longer accepted. Sign in again.");
          return;
        }
        if (!response.ok || !response.body) throw new ApiError(response.status, null);
        stream.open = true;
        state.streamFailures = 0;
        setAttr($("live"), "data-mode", "stream");
        poll(); // what happened before the stream opened, and the slow pace from now
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function read() {
          return reader.read().then(function (chunk) {
            if (chunk.done) throw new ApiError(0, null);
            buffer += decoder.decode(chunk.value, {stream: true});
            var blocks = buffer.split("\n\n");
            buffer = blocks.pop();
            if (blocks.some(function (block) { return /^data:/m.test(block); })) settle();
            return read();
          });
        }
        return read();
      })
      .catch(function () { /* retried below */ })
      .then(function () {
        if (state.stream !== stream) return; // closed on purpose
        state.stream = null;
        setAttr($("live"), "data-mode", "poll");
        state.streamFailures += 1;
        var wait = Math.min(1000 * Math.pow(2, state.streamFailures - 1), STREAM_RETRY_CAP_MS);
        state.streamTimer = setTimeout(openStream, wait);
        poll(); // polled every two seconds until the stream is back
      });
  }

  function closeStream() {
    clearTimeout(state.streamTimer);
    clearTimeout(state.settleTimer);
    var stream = state.stream;
    state.stream = null;
    if (stream) stream.controller.abort();
  }

  // Refreshes once the events that come together have come.
  function settle() {
    clearTimeout(state.settleTimer);
    state.settleTimer = setTimeout(poll, SETTLE_MS);
  }

  function refresh() {
    var auth = state.auth;
    var list = isAdmin()
      ? api("GET", "/v1/tenants").then(function (data) { return data.tenants || []; })
      : api("GET", tenantPath(state.auth.tenant)).then(function (tenant) { return [tenant]; });
    return list.then(function (tenants) {
      if (state.auth !== auth) return; // signed out (or in as someone else) meanwhile
      state.tenants = tenants;
      renderTenants();
      if (!state.selected) return;
      var tenant = currentTenant();
      if (!tenant && !state.creating) {
        var gone = state.selected;
        selectTenant(null);
        showNotice("Tenant " + gone + " no longer exists.");
        return;
      }
      if (!tenant) return;
      renderTenantHeader(tenant);
      return refreshTenant(tenant);
    });
  }

  function refreshTenant(tenant) {
    var t = tenant.tenant;
    var auth = state.auth;
    var days = $("usage-days").value;
    return Promise.all([
      listAll(tenantPath(t, "/sessions"), "sessions"),
      listAll(tenantPath(t, "/users"), "users"),
      api("GET", tenantPath(t, "/records")),
      api("GET", tenantPath(t, "/usage?days=" + encodeURIComponent(days))),
      queues(tenant) ? api("GET", tenantPath(t, "/queue")) : Promise.resolve(null),
    ]).then(function (results) {
      if (state.selected !== t || state.auth !== auth) return; // changed meanwhile
      renderHolders(results[0], tenant);
      renderQueue(results[4] && results[4].queue, tenant);
      renderUsers(results[1], tenant);
      renderRecords(results[2] || {});
      renderUsage(results[3].days || [], tenant, Number(days));
    });
  }

  function currentTenant() {
    for (var i = 0; i < state.tenants.length; i++) {
      if (state.tenants[i].tenant === state.selected) return state.tenants[i];
    }
    return null;
  }

  // ---------------------------------------------------------------- tenants

  function seatsMeter(tenant) {
    var wrap = el("div", {className: "meter-wrap"});
    var meter = el("div", {className: "meter", role: "meter", "aria-valuemin": "0"});
    meter.appendChild(el("div", {className: "meter-fill"}));
    wrap.appendChild(meter);
    wrap.appendChild(el("span", {className: "meter-text"}));
    updateMeter(wrap, tenant);
    return wrap;
  }

  function updateMeter(wrap, tenant) {
    var meter = wrap.querySelector(".meter");
    var fill = wrap.querySelector(".meter-fill");
    var text = wrap.querySelector(".meter-text");
    var used = tenant.seats_in_use || 0;
    var limited = tenant.model !== "records" && tenant.seats !== null && tenant.seats !== undefined;
    if (!limited) {
      meter.hidden = true;
      setText(text, used + " in use · no seat limit");
      return;
    }
    meter.hidden = false;
    var seats = tenant.seats;
    var ratio = seats > 0 ? Math.min(1, used / seats) : used > 0 ? 1 : 0;
    fill.style.width = (ratio * 100).toFixed(1) + "%";
    setAttr(meter, "data-level", used >= seats ? "full" : ratio >= 0.8 ? "high" : "ok");
    setAttr(meter, "aria-valuemax", seats);
    setAttr(meter, "aria-valuenow", Math.min(used, seats));
    setAttr(meter, "aria-label", "Seats in use for " + tenant.tenant);
    setAttr(meter, "aria-valuetext", used + " of " + seats + " seats in use");
    setText(text, used + " / " + seats);
  }

  function renderTenants() {
    var body = $("tenants-body");
    $("tenants-empty").hidden = state.tenants.length > 0;
    syncRows(body, state.tenants, function (t) { return t.tenant; }, function (t) {
      var button = el("button", {
        type: "button", className: "link-button", "data-testid": "select-tenant-" + t.tenant,
        text: t.tenant,
        onclick: function () { selectTenant(t.tenant); },
      });
      return el("tr", {"data-tenant": t.tenant}, [
        el("th", {scope: "row"}, [button]),
        el("td", {className: "c-model"}),
        el("td", {className: "c-seats"}, [seatsMeter(t)]),
        el("td", {className: "num c-sessions"}),
        el("td", {className: "num c-users"}),
        el("td", {className: "num c-records"}),
        el("td", {className: "num c-idle"}),
        el("td", {className: "num c-queue"}),
      ]);
    }, function (row, t) {
      var selected = t.tenant === state.selected;
      row.classList.toggle("is-selected", selected);
      setAttr(row.querySelector("button"), "aria-pressed", selected ? "true" : "false");
      setText(row.querySelector(".c-model"), MODEL_NAMES[t.model] || t.model);
      if (t.model === "concurrent" && t.seat_per === "session") {
        row.querySelector(".c-model").textContent += " · per tab";
      }
      updateMeter(row.querySelector(".meter-wrap"), t);
      setText(row.querySelector(".c-sessions"), fmtNumber(t.sessions));
      var users = fmtNumber(t.users) + (t.max_users ? " / " + fmtNumber(t.max_users) : "");
      setText(row.querySelector(".c-users"), users);
      setText(row.querySelector(".c-records"), fmtNumber(t.records));
      setText(row.querySelector(".c-idle"), fmtDuration(t.idle_timeout_secs));
      var line = row.querySelector(".c-queue");
      setAttr(line, "data-queued", String(t.queued || 0));
      setAttr(line, "data-held", String(t.held_for_queue || 0));
      setText(line, lineText(t));
    });
  }

  // Whether the tenant has a waitlist to show: it queues at its limit, or tickets
  // remain from when it did.
  function queues(tenant) {
    return tenant.on_limit === "queue" || (tenant.queued || 0) > 0;
  }

  // "3 · 1 seat held": tickets in line and the seats held for the head of the line.
  function lineText(tenant) {
    if (!queues(tenant)) return "—";
    var held = tenant.held_for_queue || 0;
    return fmtNumber(tenant.queued || 0) + (held ? " · " + plural(held, "seat", "seats") + " held" : "");
  }

  function selectTenant(tenant) {
    var changed = state.selected !== tenant;
    state.selected = tenant;
    state.creating = false;
    $("licence-tenant-field").hidden = true;
    $("licence-cancel").hidden = true;
    if (isAdmin()) history.replaceState(null, "", tenant ? "#tenant=" + encodeURIComponent(tenant) : location.pathname);
    $("tenant-view").hidden = !tenant;
    if (changed) {
      state.licenceDirty = false;
      state.usageKey = "";
      ["holders-body", "queue-body", "users-body", "usage-body"].forEach(function (id) {
        $(id).textContent = "";
        $(id)._rows = null;
      });
      $("queue-panel").hidden = true;
      ["holders-summary", "queue-summary", "users-summary", "records-count", "records-peak-today", "records-peak-month"]
        .forEach(function (id) { setText($(id), id.indexOf("records") === 0 ? "—" : ""); });
      $("holders-empty").hidden = true;
      $("users-empty").hidden = true;
      ["licence-error", "user-error", "records-error"].forEach(function (id) { $(id).hidden = true; });
      hidePreview();
    }
    renderTenants();
    var t = currentTenant();
    if (t) {
      renderTenantHeader(t);
      refreshTenant(t).catch(function (error) { showError(error, "Loading " + tenant); });
    } else if (tenant) {
      setText($("tenant-name"), tenant);
    }
  }

  function renderTenantHeader(tenant) {
    setText($("tenant-name"), tenant.tenant);
    setText($("tenant-model"), MODEL_NAMES[tenant.model] || tenant.model);
    if (!state.licenceDirty && !state.creating) fillLicence(tenant);
    var named = tenant.model === "named";
    setText($("user-input-label"), named ? "Assign a seat to a user" : "Register a user");
    setText($("holders-heading"), tenant.model === "records" ? "Who is logged in" : "Who holds a seat");
    setText($("user-add"), named ? "Assign" : "Register");
    $("chart-seats-caption").textContent = tenant.model === "records"
      ? "Peak records per day"
      : "Peak seats in use against the licence seats (" + fmtNumber(tenant.seats) + " now)";
  }

  // ---------------------------------------------------------------- licence editor

  function fillLicence(tenant) {
    $("licence-tenant").value = tenant.tenant || "";
    $("licence-model").value = tenant.model || "concurrent";
    $("licence-seats").value = tenant.seats === null || tenant.seats === undefined ? "" : tenant.seats;
    $("licence-seat-per").value = tenant.seat_per || "user";
    $("licence-idle").value = tenant.idle_timeout_secs || 600;
    $("licence-max-users").value = tenant.max_users || "";
    // The view carries a policy only where it differs from its default: an empty
    // field is the default, and is not sent.
    $("licence-overage").value = tenant.overage === null || tenant.overage === undefined ? "" : tenant.overage;
    $("licence-on-limit").value = tenant.on_limit || "refuse";
    $("licence-min-hold").value = tenant.min_hold_secs === null || tenant.min_hold_secs === undefined ? "" : tenant.min_hold_secs;
    $("licence-max-sessions").value = tenant.max_sessions_per_user || "";
    $("licence-reload-grace").value = tenant.reload_grace_secs || "";
    $("licence-queue-claim").value = tenant.queue_claim_secs || "";
    $("licence-reserve").value = groupsText(tenant.reserve);
    $("licence-group-max").value = groupsText(tenant.group_max);
    updateLicenceFields();
  }

  // A map of groups to seats as the editor writes it: "finance=2 hr=1".
  function groupsText(groups) {
    return Object.keys(groups || {}).sort().map(function (g) { return g + "=" + groups[g]; }).join(" ");
  }

  // "finance=2 hr=1" back to a map, or undefined when left empty.
  function readGroups(id, label) {
    var raw = $(id).value.trim();
    if (raw === "") return undefined;
    var groups = {};
    var bad = raw.split(/[\s,]+/).filter(function (part) {
      var m = /^([A-Za-z0-9._@-]{1,128})=(\d+)$/.exec(part);
      if (m) groups[m[1]] = Number(m[2]);
      return !m;
    });
    if (bad.length) {
      $(id).focus();
      throw new ApiError(0, {error: "invalid_request", message: label + " is written group=seats, such as finance=2; not " + JSON.stringify(bad[0]) + "."});
    }
    return groups;
  }

  function updateLicenceFields() {
    var model = $("licence-model").value;
    $("licence-seats-field").hidden = model === "records";
    $("licence-seat-per-field").hidden = model !== "concurrent";
    // Overage, the policy at the limit and the minimum hold are the concurrent
    // model's; the cap on one user's sessions applies to every model.
    $("licence-concurrent-policies").hidden = model !== "concurrent";
    $("licence-min-hold-field").hidden = model !== "concurrent";
    $("licence-group-policies").hidden = model !== "concurrent";
    $("licence-grace-policies").hidden = model !== "concurrent";
    $("licence-queue-claim-field").hidden = model !== "concurrent" || $("licence-on-limit").value !== "queue";
    var notes = {
      named: "Each seat belongs to one assigned user, who may log in from any number of tabs.",
      concurrent: "At most this many users (or tabs) hold a seat at the same time.",
      records: "No seat limit; the tenant is charged by its record count.",
    };
    var note = notes[model] || "";
    if (!isAdmin()) note = "Only the admin token can change the licence. " + note;
    setText($("licence-note"), note);
    $("licence-fieldset").disabled = !isAdmin();
  }

  function readInt(id, label, min, optional) {
    var raw = $(id).value.trim();
    if (raw === "" && optional && !$(id).validity.badInput) return undefined;
    var n = Number(raw);
    if (raw === "" || !Number.isInteger(n) || n < min) {
      $(id).focus();
      throw new ApiError(0, {error: "invalid_request", message: label + " must be a whole number of at least " + min + "."});
    }
    return n;
  }

  // A number from 0 to 1 (the overage share), or undefined when left empty.
  function readShare(id, label) {
    var raw = $(id).value.trim();
    if (raw === "" && !$(id).validity.badInput) return undefined;
    var n = Number(raw);
    if (raw === "" || !isFinite(n) || n < 0 || n > 1) {
      $(id).focus();
      throw new ApiError(0, {error: "invalid_request", message: label + " must be a number from 0 to 1, such as 0.2."});
    }
    return n;
  }

  // The tenant the editor is about and the licence it states: the fields of the
  // model chosen, and of the optional ones only those filled in. Throws an ApiError
  // for a field that cannot be read.
  function licenceRequest() {
    var tenant = state.creating ? $("licence-tenant").value.trim() : state.selected;
    if (!ID_PATTERN.test(tenant || "")) {
      $("licence-tenant").focus();
      throw new ApiError(0, {error: "invalid_request", message: "A tenant id is 1–128 letters, digits or . _ @ -"});
    }
    var model = $("licence-model").value;
    var body = {model: model};
    if (model !== "records") body.seats = readInt("licence-seats", "Seats", 0);
    if (model === "concurrent") body.seat_per = $("licence-seat-per").value;
    body.idle_timeout_secs = readInt("licence-idle", "Idle timeout", 1);
    var optional = {max_users: readInt("licence-max-users", "Max users", 1, true)};
    if (model === "concurrent") {
      optional.overage = readShare("licence-overage", "Overage");
      if ($("licence-on-limit").value !== "refuse") optional.on_limit = $("licence-on-limit").value;
      optional.min_hold_secs = readInt("licence-min-hold", "Min hold", 0, true);
      optional.reload_grace_secs = readInt("licence-reload-grace", "Reload grace", 0, true);
      if (optional.on_limit === "queue") {
        optional.queue_claim_secs = readInt("licence-queue-claim", "Claim window", 1, true);
      }
      optional.reserve = readGroups("licence-reserve", "Reserved seats");
      optional.group_max = readGroups("licence-group-max", "Group max");
    }
    optional.max_sessions_per_user = readInt("licence-max-sessions", "Max sessions per user", 1, true);
    Object.keys(optional).forEach(function (key) {
      if (optional[key] !== undefined) body[key] = optional[key];
    });
    return {tenant: tenant, body: body};
  }

  function saveLicence(event) {
    event.preventDefault();
    var request;
    try {
      request = licenceRequest();
    } catch (error) {
      return showError(error, null, "licence-error");
    }
    var tenant = request.tenant;
    clearError("licence-error");
    hidePreview();
    $("licence-save").disabled = true;
    api("PUT", tenantPath(tenant), request.body)
      .then(function (view) {
        clearError();
        state.licenceDirty = false;
        var created = state.creating;
        if (view && view.api_key) showApiKey(tenant, view.api_key);
        showNotice(created ? "Tenant " + tenant + " created." : "Licence of " + tenant + " saved.");
        state.creating = false;
        if (view && view.tenant) fillLicence(view);
        return refresh().then(function () { selectTenant(tenant); });
      })
      .catch(function (error) { showError(error, "Saving the licence", "licence-error"); })
      .then(function () { $("licence-save").disabled = false; });
  }

  // ---------------------------------------------------------------- licence preview

  // Asks the server what the licence in the editor would do (a dry run: nothing is
  // saved) and shows the tenant as it would be and the effects below the editor.
  function previewLicence() {
    var request;
    try {
      request = licenceRequest();
    } catch (error) {
      return showError(error, null, "licence-error");
    }
    clearError("licence-error");
    hidePreview();
    $("licence-preview").disabled = true;
    var asked = state.selected;
    api("PUT", tenantPath(request.tenant, "?dry_run=true"), request.body)
      .then(function (preview) {
        if (state.selected !== asked) return; // another tenant was chosen meanwhile
        renderPreview(preview || {});
      })
      .catch(function (error) { showError(error, "Previewing the licence", "licence-error"); })
      .then(function () { $("licence-preview").disabled = false; });
  }

  function plural(n, one, many) {
    return fmtNumber(n) + " " + (n === 1 ? one : many);
  }

  // "Concurrent users · 1 seat · a seat per user · idle timeout 10 min · …", with the
  // policies the licence sets.
  function describeLicence(v) {
    var parts = [MODEL_NAMES[v.model] || v.model];
    parts.push(v.seats === null || v.seats === undefined ? "no seat limit" : plural(v.seats, "seat", "seats"));
    if (v.seat_per) parts.push(v.seat_per === "session" ? "a seat per tab" : "a seat per user");
    parts.push("idle timeout " + fmtDuration(v.idle_timeout_secs));
    parts.push("at most " + plural(v.max_users, "user", "users"));
    if (v.overage !== null && v.overage !== undefined) parts.push("overage " + v.overage);
    if (v.on_limit === "displace_idlest") parts.push("at the limit the idlest seat is displaced");
    if (v.on_limit === "queue") parts.push("at the limit the login is put in line");
    if (v.queue_claim_secs) parts.push("a freed seat held " + fmtDuration(v.queue_claim_secs) + " for the line");
    if (v.min_hold_secs !== null && v.min_hold_secs !== undefined) parts.push("min hold " + fmtDuration(v.min_hold_secs));
    if (v.max_sessions_per_user) parts.push("at most " + plural(v.max_sessions_per_user, "session", "sessions") + " per user");
    return parts.join(" · ");
  }

  function renderPreview(p) {
    var effects = p.effects || {};
    var seatsOver = effects.seats_over_limit || 0;
    var usersOver = effects.users_over_limit || 0;
    var lost = effects.named_seats_lost || [];
    var box = $("licence-preview-box");
    setText($("preview-headline"), p.creates
      ? "nothing changed. Saving would create the tenant " + p.tenant + "."
      : "nothing changed. Saving would make it:");
    setText($("preview-licence"), describeLicence(p));
    $("preview-held").hidden = !!p.creates;
    var line = [];
    if (p.queued) line.push(p.queued + " in line (" + plural(p.held_for_queue || 0, "seat", "seats") + " held for it)");
    if (effects.tickets_ended) line.push(plural(effects.tickets_ended, "ticket", "tickets") + " in line ended");
    line = line.concat(heldParts(p));
    setText($("preview-held"), "Under it: " + plural(p.seats_in_use || 0, "seat", "seats") + " in use · " +
      plural(p.sessions || 0, "session", "sessions") + " · " + plural(p.users || 0, "user account", "user accounts") +
      (line.length ? " · " + line.join(" · ") : ""));
    $("preview-effects").hidden = !!p.creates;
    setText($("preview-seats-over"), seatsOver
      ? plural(seatsOver, "seat", "seats") + " held past the new limit" : "No seat held past the new limit");
    setText($("preview-users-over"), usersOver
      ? plural(usersOver, "account", "accounts") + " past max users" : "No account past max users");
    setText($("preview-named-lost"), lost.length
      ? plural(lost.length, "named seat", "named seats") + " lost: " + lost.join(", ") : "No named seat lost");
    setAttr($("preview-seats-over"), "data-count", seatsOver);
    setAttr($("preview-users-over"), "data-count", usersOver);
    setAttr($("preview-named-lost"), "data-count", lost.length);
    ["preview-seats-over", "preview-users-over", "preview-named-lost"].forEach(function (id) {
      $(id).classList.toggle("is-effect", $(id).getAttribute("data-count") !== "0");
    });
    var hints = [];
    if (seatsOver) hints.push("Nobody loses a seat they hold; logins that would take one are refused until enough are freed.");
    if (usersOver) hints.push("No account is removed; new users are refused until enough are.");
    if (lost.length) hints.push("Their sessions stay until they end.");
    setText($("preview-hint"), hints.join(" "));
    $("preview-hint").hidden = hints.length === 0;
    setAttr(box, "data-creates", p.creates ? "true" : "false");
    setAttr(box, "data-state", seatsOver || usersOver || lost.length ? "effects" : "none");
    box.hidden = false;
  }

  function hidePreview() {
    $("licence-preview-box").hidden = true;
  }

  function startNewTenant() {
    state.selected = null;
    renderTenants();
    state.creating = true;
    state.licenceDirty = false;
    $("tenant-view").hidden = false;
    setText($("tenant-name"), "(new)");
    setText($("tenant-model"), "");
    fillLicence({tenant: "", model: "concurrent", seats: 5, seat_per: "user", idle_timeout_secs: 600});
    hidePreview();
    $("licence-tenant-field").hidden = false;
    $("licence-cancel").hidden = false;
    ["holders-body", "queue-body", "users-body", "usage-body"].forEach(function (id) {
      $(id).textContent = "";
      $(id)._rows = null;
    });
    $("queue-panel").hidden = true;
    $("licence-tenant").focus();
  }

  function showApiKey(tenant, key) {
    setText($("api-key-tenant"), tenant);
    setText($("api-key-value"), key);
    $("api-key-box").hidden = false;
  }

  function rotateKey() {
    var t = state.selected;
    if (!t || !confirm("Rotate the API key of " + t + "? The current key stops working at once.")) return;
    api("POST", tenantPath(t, "/api-key"))
      .then(function (data) {
        if (data && data.api_key) showApiKey(t, data.api_key);
        showNotice("API key of " + t + " rotated.");
      })
      .catch(function (error) { showError(error, "Rotating the API key"); });
  }

  function deleteTenant() {
    var t = state.selected;
    if (!t || !confirm("Delete tenant " + t + " and end all its sessions? This cannot be undone.")) return;
    api("DELETE", tenantPath(t))
      .then(function () {
        selectTenant(null);
        showNotice("Tenant " + t + " deleted.");
        poll();
      })
      .catch(function (error) { showError(error, "Deleting the tenant"); });
  }

  // ---------------------------------------------------------------- holders

  // "1 kept for a reload", "finance 2 (2 reserved)", "volunteers 2 of 3": the seats
  // the view counts under the reload grace and per group, where the licence does.
  function heldParts(tenant) {
    var parts = [];
    if (tenant.held_for_reload) parts.push(tenant.held_for_reload + " kept for a reload");
    var groups = tenant.group_seats || {};
    Object.keys(groups).sort().forEach(function (group) {
      var text = group + " " + groups[group];
      var max = (tenant.group_max || {})[group];
      var reserved = (tenant.reserve || {})[group];
      if (max !== undefined) text += " of " + max;
      if (reserved) text += " (" + reserved + " reserved)";
      parts.push(text);
    });
    return parts;
  }

  function renderHolders(sessions, tenant) {
    var users = new Set(sessions.map(function (s) { return s.user; }));
    var summary = sessions.length + (sessions.length === 1 ? " session" : " sessions") +
      " · " + users.size + (users.size === 1 ? " user" : " users");
    if (tenant.model !== "records") summary += " · " + (tenant.seats_in_use || 0) + " of " + fmtNumber(tenant.seats) + " seats";
    var held = heldParts(tenant);
    if (held.length) summary += " · " + held.join(" · ");
    setText($("holders-summary"), summary);
    $("holders-empty").hidden = sessions.length > 0;
    syncRows($("holders-body"), sessions, function (s) { return s.id; }, function (s) {
      var release = el("button", {
        type: "button", className: "btn btn-small", "data-action": "release",
        "data-testid": "release-" + s.id, text: "Release",
        "aria-label": "Release session " + s.id + " of " + s.user,
        onclick: function () { releaseSession(s.id, s.user, release); },
      });
      var logout = el("button", {
        type: "button", className: "btn btn-small btn-quiet", "data-action": "logout",
        "data-testid": "logout-" + s.id, text: "Log out",
        "aria-label": "Log out " + s.user + " from all sessions",
        onclick: function () { logoutUser(s.user, logout); },
      });
      return el("tr", {"data-session": s.id, "data-user": s.user}, [
        el("th", {scope: "row", className: "c-user"}, [
          el("span", {className: "user-name", text: s.user}),
          el("span", {className: "session-id mono", title: "Session id", text: s.id}),
        ]),
        el("td", {className: "c-client"}),
        el("td", {className: "c-started"}, [el("span", {className: "time", "data-time": true})]),
        el("td", {className: "c-beat"}, [
          el("span", {className: "time", "data-time": true}), el("span", {className: "rel muted"}),
        ]),
        el("td", {className: "c-expires"}, [
          el("span", {className: "time", "data-time": true}), el("span", {className: "rel muted"}),
        ]),
        el("td", {className: "c-fence num mono"}),
        el("td", {className: "c-actions"}, [release, " ", logout]),
      ]);
    }, function (row, s) {
      setText(row.querySelector(".c-client"), s.client || "—");
      [[".c-started", s.started_at, false], [".c-beat", s.last_heartbeat_at, true], [".c-expires", s.expires_at, true]]
        .forEach(function (cell) {
          var node = row.querySelector(cell[0]);
          setText(node.querySelector(".time"), fmtTime(cell[1]));
          if (cell[2]) setText(node.querySelector(".rel"), fmtRelative(cell[1]));
          setAttr(node, "title", cell[1] || "");
        });
      setText(row.querySelector(".c-fence"), s.fence == null ? "—" : String(s.fence));
    });
  }

  // ---------------------------------------------------------------- waitlist

  // For how long, from a past time: "42 s", "3 min 5 s", "1 h 2 min".
  function fmtSince(time) {
    var secs = Math.max(0, Math.round((Date.now() - new Date(time).getTime()) / 1000));
    return secs < 60 ? secs + " s" : secs < 3600 ? Math.floor(secs / 60) + " min " + (secs % 60) + " s"
      : Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
  }

  // The tenant's line, head first (GET …/queue): null when the tenant does not queue.
  function renderQueue(queue, tenant) {
    var panel = $("queue-panel");
    panel.hidden = !queue;
    if (!queue) return;
    var held = queue.filter(function (q) { return q.position === 0; }).length;
    setText($("queue-summary"), plural(queue.length - held, "waiting", "waiting") +
      (held ? " · " + plural(held, "seat", "seats") + " held for the line" : "") +
      (tenant.queue_claim_secs ? " · claim window " + fmtDuration(tenant.queue_claim_secs) : ""));
    $("queue-empty").hidden = queue.length > 0;
    syncRows($("queue-body"), queue, function (q) { return q.ticket; }, function (q) {
      return el("tr", {"data-ticket": q.ticket, "data-user": q.user}, [
        el("td", {className: "num c-place"}),
        el("th", {scope: "row", className: "c-user"}, [
          el("span", {className: "user-name", text: q.user}),
          el("span", {className: "session-id mono", title: "Ticket id", text: q.ticket}),
        ]),
        el("td", {className: "c-client"}),
        el("td", {className: "c-waiting"}),
        el("td", {className: "c-claim"}, [
          el("span", {className: "time", "data-time": true}), el("span", {className: "rel muted"}),
        ]),
      ]);
    }, function (row, q) {
      setAttr(row, "data-position", String(q.position));
      setText(row.querySelector(".c-place"), q.position === 0 ? "seat held" : String(q.position));
      setText(row.querySelector(".c-client"), q.client || "—");
      var waiting = row.querySelector(".c-waiting");
      setText(waiting, fmtSince(q.queued_at));
      setAttr(waiting, "title", "In line since " + fmtTime(q.queued_at));
      var claim = row.querySelector(".c-claim");
      var time = claim.querySelector(".time");
      if (q.claim_by) {
        setText(time, fmtTime(q.claim_by));
        time.setAttribute("data-time", "");
        setText(claim.querySelector(".rel"), fmtRelative(q.claim_by));
      } else {
        setText(time, "—");
        time.removeAttribute("data-time"); // not a time
        setText(claim.querySelector(".rel"), "");
      }
    });
  }

  function releaseSession(id, user, button) {
    if (!busy(button, true)) return;
    api("DELETE", tenantPath(state.selected, "/sessions/" + encodeURIComponent(id)))
      .then(function () {
        clearError();
        showNotice("Released " + user + "'s session " + id + ".");
        poll();
      })
      .catch(function (error) {
        busy(button, false);
        showError(error, "Releasing " + user + "'s session");
      });
  }

  function logoutUser(user, button) {
    if (!busy(button, true)) return;
    api("POST", tenantPath(state.selected, "/users/" + encodeURIComponent(user) + "/logout"))
      .then(function () {
        clearError();
        showNotice("Logged out " + user + " from all sessions.");
        poll();
      })
      .catch(function (error) {
        busy(button, false);
        showError(error, "Logging out " + user);
      });
  }

  // ---------------------------------------------------------------- users

  function renderUsers(users, tenant) {
    var named = tenant.model === "named";
    setAttr($("users-table"), "data-model", tenant.model);
    var assigned = users.filter(function (u) { return u.assigned; }).length;
    setText($("users-summary"), named
      ? assigned + " of " + fmtNumber(tenant.seats) + " seats assigned"
      : users.length + " of " + fmtNumber(tenant.max_users) + " accounts");
    $("users-empty").hidden = users.length > 0;
    syncRows($("users-body"), users, function (u) { return u.user; }, function (u) {
      var remove = el("button", {
        type: "button", className: "btn btn-small btn-quiet", "data-action": "remove-user",
        "data-testid": "remove-user-" + u.user, text: "Remove",
        onclick: function () { removeUser(u.user, remove); },
      });
      return el("tr", {"data-user": u.user}, [
        el("th", {scope: "row", text: u.user}),
        el("td", {className: "c-assigned"}),
        el("td", {className: "num c-sessions"}),
        el("td", {className: "c-groups"}),
        el("td", {className: "c-actions"}, [remove]),
      ]);
    }, function (row, u) {
      setText(row.querySelector(".c-assigned"), u.assigned ? "Yes" : "No");
      setText(row.querySelector(".c-sessions"), fmtNumber(u.sessions));
      setText(row.querySelector(".c-groups"), (u.groups || []).join(", "));
      var button = row.querySelector("button");
      var label = named && u.assigned ? "Unassign" : "Remove";
      setText(button, label);
      setAttr(button, "aria-label", label + " " + u.user);
    });
  }

  function addUser(event) {
    event.preventDefault();
    var user = $("user-input").value.trim();
    if (!ID_PATTERN.test(user)) {
      $("user-input").focus();
      return showError(new ApiError(0, {error: "invalid_request", message: "A user id is 1–128 letters, digits or . _ @ -"}), null, "user-error");
    }
    clearError("user-error");
    $("user-add").disabled = true;
    api("PUT", tenantPath(state.selected, "/users/" + encodeURIComponent(user)))
      .then(function () {
        clearError();
        $("user-input").value = "";
        showNotice((currentTenant() && currentTenant().model === "named" ? "Assigned a seat to " : "Registered ") + user + ".");
        poll();
      })
      .catch(function (error) { showError(error, "Adding " + user, "user-error"); })
      .then(function () { $("user-add").disabled = false; });
  }

  function removeUser(user, button) {
    if (!confirm("Remove " + user + "? Their sessions end at once.")) return;
    if (!busy(button, true)) return;
    api("DELETE", tenantPath(state.selected, "/users/" + encodeURIComponent(user)))
      .then(function () {
        clearError();
        showNotice("Removed " + user + ".");
        poll();
      })
      .catch(function (error) {
        busy(button, false);
        showError(error, "Removing " + user);
      });
  }

  // ---------------------------------------------------------------- records

  function renderRecords(records) {
    setText($("records-count"), fmtNumber(records.count));
    setText($("records-peak-today"), fmtNumber(records.peak_today));
    setText($("records-peak-month"), fmtNumber(records.peak_month));
  }

  function reportRecords(event) {
    event.preventDefault();
    var count;
    try {
      count = readInt("records-input", "The record count", 0);
    } catch (error) {
      return showError(error, null, "records-error");
    }
    clearError("records-error");
    $("records-save").disabled = true;
    api("PUT", tenantPath(state.selected, "/records"), {count: count})
      .then(function (records) {
        clearError();
        $("records-input").value = "";
        if (records) renderRecords(records);
        showNotice("Record count of " + state.selected + " set to " + fmtNumber(count) + ".");
        poll();
      })
      .catch(function (error) { showError(error, "Reporting the record count", "records-error"); })
      .then(function () { $("records-save").disabled = false; });
  }

  // ---------------------------------------------------------------- usage

  var charts = {seats: null, refusals: null};
  var DAY_SECS = 86400;
  var COLORS = {
    peak: "#2f6fb0", seats: "#c2410c", logins: "#1f7a4d", expiries: "#7c5cbf",
    limit: "#d97706", notLicensed: "#b91c1c", userLimit: "#6b7280",
  };

  function isoDay(secs) {
    return new Date(secs * 1000).toISOString().slice(0, 10);
  }

  function dayToSecs(day) {
    var parts = String(day).split("-").map(Number);
    return Date.UTC(parts[0], parts[1] - 1, parts[2]) / 1000;
  }

  // One entry per day of the period, oldest first, from the first day the server
  // reports (the tenant's creation day, if it falls in the period): no padding for
  // days the tenant did not exist. A day the server left out counts zero.
  function fillDays(days, count) {
    var byDay = new Map();
    days.forEach(function (d) { byDay.set(dayToSecs(d.day), d); });
    var known = Array.from(byDay.keys());
    var today = Math.floor(Date.now() / 1000 / DAY_SECS) * DAY_SECS;
    var last = known.length ? Math.max(today, Math.max.apply(null, known)) : today;
    var first = known.length ? Math.min.apply(null, known) : last;
    first = Math.max(first, last - (count - 1) * DAY_SECS);
    var out = [];
    for (var t = first; t <= last; t += DAY_SECS) out.push({t: t, d: byDay.get(t) || null});
    return out;
  }

  function refusalsOf(d) {
    var r = (d && d.refusals) || {};
    return {
      limit: r.licence_limit_reached || 0,
      notLicensed: r.user_not_licensed || 0,
      userLimit: r.user_limit_reached || 0,
      caps: (r.session_limit_reached || 0) + (r.group_limit_reached || 0),
    };
  }

  function renderUsage(days, tenant, count) {
    var key = JSON.stringify([days, tenant.model, tenant.seats, count]);
    if (key === state.usageKey) return;
    state.usageKey = key;
    var filled = fillDays(days, count);
    var xs = filled.map(function (e) { return e.t; });
    var records = tenant.model === "records";

    var peak = filled.map(function (e) {
      if (!e.d) return 0;
      return records ? (e.d.peak_records || 0) : (e.d.peak_seats_in_use || 0);
    });
    var seatsLine = filled.map(function () { return tenant.seats === null || tenant.seats === undefined ? null : tenant.seats; });
    var ref = filled.map(function (e) { return refusalsOf(e.d); });
    var logins = filled.map(function (e) { return e.d ? e.d.logins || 0 : 0; });
    var expiries = filled.map(function (e) { return e.d ? e.d.expiries || 0 : 0; });
    // Stacked bars: draw the running totals, tallest first, and show the raw numbers in the legend.
    var stack3 = ref.map(function (r) { return r.limit + r.notLicensed + r.userLimit; });
    var stack2 = ref.map(function (r) { return r.limit + r.notLicensed; });
    var stack1 = ref.map(function (r) { return r.limit; });

    setAttr($("usage-panel"), "data-days", xs.length);
    setAttr($("usage-panel"), "data-first-day", xs.length ? isoDay(xs[0]) : "");
    if (typeof uPlot === "function") {
      drawSeatsChart(records ? [xs, peak] : [xs, peak, seatsLine], records);
      drawRefusalsChart([xs, stack3, stack2, stack1, logins, expiries], ref);
    }
    renderUsageTable(filled);
  }

  function chartWidth(node) {
    return Math.max(280, Math.floor(node.getBoundingClientRect().width) || 600);
  }

  // Room for the y axis's widest tick label plus its title.
  function axisSize(u, values) {
    var longest = 1;
    (values || []).forEach(function (v) { longest = Math.max(longest, String(v).length); });
    return 34 + longest * 7;
  }

  function baseOptions(node, yLabel) {
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({size: [0.7, 28]}) : undefined;
    return {
      bars: bars,
      opts: {
        width: chartWidth(node),
        height: 200,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        cursor: {points: {show: false}, drag: {x: false, y: false}},
        legend: {show: true, live: true},
        // The x range is set by putChart: half a day of room each side, so the first
        // and last bars are whole.
        scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, Math.max(1, Math.ceil(max * 1.15))]; }}},
        axes: [
          // Days as the table writes them, one tick per day at most.
          {stroke: "#475569", grid: {stroke: "#e5e7eb"}, ticks: {stroke: "#cbd5e1"}, space: 90,
            incrs: [DAY_SECS, 2 * DAY_SECS, 7 * DAY_SECS, 14 * DAY_SECS, 28 * DAY_SECS, 56 * DAY_SECS],
            values: function (u, splits) { return splits.map(isoDay); }},
          {stroke: "#475569", grid: {stroke: "#e5e7eb"}, ticks: {stroke: "#cbd5e1"}, label: yLabel, size: axisSize,
            incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000]},
        ],
        series: [{label: "Day", value: function (u, v) { return v === null ? "—" : isoDay(v); }}],
      },
    };
  }

  function putChart(name, node, opts, data) {
    if (charts[name]) {
      charts[name].destroy();
      charts[name] = null;
    }
    node.textContent = "";
    charts[name] = new uPlot(opts, data, node);
    // Half a day of room each side of the first and last day, set outright: uPlot
    // does not range a time axis of a single day (a tenant created today) by itself.
    var xs = data[0];
    if (xs.length) charts[name].setScale("x", {min: xs[0] - DAY_SECS / 2, max: xs[xs.length - 1] + DAY_SECS / 2});
  }

  function drawSeatsChart(data, records) {
    var node = $("chart-seats");
    var base = baseOptions(node, records ? "records" : "seats");
    var opts = base.opts;
    opts.series.push({
      label: records ? "Peak records" : "Peak seats in use",
      stroke: COLORS.peak, fill: "rgba(47,111,176,0.7)", width: 0, paths: base.bars, points: {show: false},
    });
    if (!records) {
      opts.series.push({label: "Licence seats", stroke: COLORS.seats, width: 2, dash: [6, 4], points: {show: data[0].length === 1}});
    }
    putChart("seats", node, opts, data);
  }

  function drawRefusalsChart(data, ref) {
    var node = $("chart-refusals");
    var base = baseOptions(node, "count");
    var opts = base.opts;
    function raw(field) {
      return function (u, v, si, i) { return i === null || i === undefined || !ref[i] ? "—" : ref[i][field]; };
    }
    opts.series.push(
      {label: "Refused: user limit", stroke: COLORS.userLimit, fill: COLORS.userLimit, width: 0, paths: base.bars, points: {show: false}, value: raw("userLimit")},
      {label: "Refused: not licensed", stroke: COLORS.notLicensed, fill: COLORS.notLicensed, width: 0, paths: base.bars, points: {show: false}, value: raw("notLicensed")},
      {label: "Refused: licence limit", stroke: COLORS.limit, fill: COLORS.limit, width: 0, paths: base.bars, points: {show: false}, value: raw("limit")},
      // A line of one day is a point.
      {label: "Logins", stroke: COLORS.logins, width: 2, points: {show: data[0].length === 1}},
      {label: "Expiries", stroke: COLORS.expiries, width: 2, dash: [4, 3], points: {show: data[0].length === 1}}
    );
    putChart("refusals", node, opts, data);
  }

  function renderUsageTable(filled) {
    var rows = filled.slice().reverse();
    syncRows($("usage-body"), rows, function (e) { return String(e.t); }, function () {
      return el("tr", {}, [
        el("th", {scope: "row", className: "c-day"}),
        el("td", {className: "num c-peak"}), el("td", {className: "num c-logins"}),
        el("td", {className: "num c-r1"}), el("td", {className: "num c-r2"}), el("td", {className: "num c-r3"}),
        el("td", {className: "num c-r4"}), el("td", {className: "num c-over"}),
        el("td", {className: "num c-exp"}), el("td", {className: "num c-rec"}),
      ]);
    }, function (row, e) {
      var d = e.d || {};
      var r = refusalsOf(e.d);
      setText(row.querySelector(".c-day"), isoDay(e.t));
      setText(row.querySelector(".c-peak"), fmtNumber(d.peak_seats_in_use || 0));
      setText(row.querySelector(".c-logins"), fmtNumber(d.logins || 0));
      setText(row.querySelector(".c-r1"), fmtNumber(r.limit));
      setText(row.querySelector(".c-r2"), fmtNumber(r.notLicensed));
      setText(row.querySelector(".c-r3"), fmtNumber(r.userLimit));
      setText(row.querySelector(".c-r4"), fmtNumber(r.caps));
      var seatHours = Math.round((d.overage_seat_secs || 0) / 360) / 10;
      setText(row.querySelector(".c-over"), fmtNumber(d.peak_overage_seats || 0) + " · " + seatHours);
      setText(row.querySelector(".c-exp"), fmtNumber(d.expiries || 0));
      setText(row.querySelector(".c-rec"), fmtNumber(d.peak_records || 0));
    });
  }

  function resizeCharts() {
    ["seats", "refusals"].forEach(function (name) {
      var chart = charts[name];
      if (!chart) return;
      var node = $(name === "seats" ? "chart-seats" : "chart-refusals");
      var width = chartWidth(node);
      if (Math.abs(chart.width - width) > 2) chart.setSize({width: width, height: 200});
    });
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", function () { signOut(); });
    $("error-close").addEventListener("click", clearError);
    $("notice-close").addEventListener("click", function () { $("notice").hidden = true; });
    $("api-key-close").addEventListener("click", function () { $("api-key-box").hidden = true; });
    $("api-key-copy").addEventListener("click", function () {
      var key = $("api-key-value").textContent;
      if (navigator.clipboard) navigator.clipboard.writeText(key).then(function () { showNotice("API key copied."); });
    });
    $("new-tenant").addEventListener("click", startNewTenant);
    $("licence-form").addEventListener("submit", saveLicence);
    // A preview answers for the fields as they were; a change makes it stale.
    $("licence-form").addEventListener("input", function () { state.licenceDirty = true; hidePreview(); });
    $("licence-preview").addEventListener("click", previewLicence);
    $("preview-close").addEventListener("click", hidePreview);
    $("licence-model").addEventListener("change", updateLicenceFields);
    $("licence-on-limit").addEventListener("change", updateLicenceFields);
    $("licence-cancel").addEventListener("click", function () {
      state.creating = false;
      hidePreview();
      $("tenant-view").hidden = true;
      $("new-tenant").focus();
    });
    $("rotate-key").addEventListener("click", rotateKey);
    $("delete-tenant").addEventListener("click", deleteTenant);
    $("records-form").addEventListener("submit", reportRecords);
    $("user-form").addEventListener("submit", addUser);
    $("usage-days").addEventListener("change", function () { state.usageKey = ""; poll(); });
    document.addEventListener("visibilitychange", function () {
      if (!state.auth) return;
      if (document.hidden) return closeStream(); // a hidden tab holds no stream open
      poll();
      if (!state.stream) openStream();
    });
    if (typeof ResizeObserver === "function") new ResizeObserver(resizeCharts).observe($("usage-panel"));
    else window.addEventListener("resize", resizeCharts);

    state.auth = loadAuth();
    if (state.auth) enterApp();
    else $("signin-token").focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
