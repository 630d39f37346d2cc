// usher.js in a real headless Chromium, against a scripted server: the browser's
// requests and WebSockets are intercepted (nothing leaves the browser) and the page's clock is
// Playwright's fake clock, so backoff and jitter are checked in simulated time.
//
//   node tests/browser/client.mjs
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium).

import {readFileSync} from "node:fs";
import {chromium} from "playwright-core";

const USHER_JS = readFileSync(new URL("../../assets/usher.js", import.meta.url), "utf8");
const ORIGIN = "http://usher.test";
const TOKEN = "tok_abc";
const STEP_MS = 250; // simulated time advanced per step while waiting for a request

let passed = 0;
let failed = 0;

function check(condition, description, detail) {
  if (condition) {
    passed += 1;
    console.log(`ok - ${description}`);
  } else {
    failed += 1;
    console.log(`not ok - ${description}${detail === undefined ? "" : `: ${detail}`}`);
  }
}

// One page with usher.js loaded, the clock faked, and the session routes scripted:
// each request waits in `pending` until the test answers it. Its WebSockets are
// refused (closed before they open) unless `acceptSockets`: then each lands in
// `sockets`, with the frames the page sent in its `frames`.
async function openPage(browser, {acceptSockets = false} = {}) {
  const context = await browser.newContext();
  const pending = [];
  const seen = [];
  const sockets = [];
  await context.routeWebSocket(/.*/, (ws) => {
    if (!acceptSockets) {
      sockets.push({ws, url: ws.url(), frames: [], refused: true});
      ws.close({code: 1006, reason: "refused"});
      return;
    }
    const socket = {ws, url: ws.url(), frames: [], refused: false, closed: false};
    ws.onMessage((message) => socket.frames.push(JSON.parse(message)));
    ws.onClose(() => { socket.closed = true; });
    sockets.push(socket);
  });
  await context.route(`${ORIGIN}/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === "/") {
      return route.fulfill({contentType: "text/html", body: "<!doctype html><title>client</title>"});
    }
    seen.push({path: url.pathname, method: route.request().method()});
    pending.push(route);
  });
  const page = await context.newPage();
  await page.clock.install();
  await page.goto(`${ORIGIN}/`);
  await page.addScriptTag({content: USHER_JS});
  return {context, page, pending, seen, sockets};
}

async function attach(t, options) {
  await t.page.evaluate(([token, options]) => {
    window.events = [];
    window.fences = [];
    window.handle = Usher.attach({
      session: token,
      ...options,
      onEnded: (reason) => window.events.push(["ended", reason]),
      onHeartbeat: (info) => {
        window.events.push(["heartbeat", info.expiresAt && info.expiresAt.toISOString()]);
        window.fences.push(info.fence);
      },
    });
  }, [TOKEN, {server: ORIGIN, ...options}]);
}

// Advances simulated time until the page sends a request; returns it and how much
// simulated time that took. `skipMs` is jumped at once (a request sent meanwhile
// shows up as taking exactly that long); then time moves in steps of `stepMs`.
// With the default step a request must come; with a coarser one (checking that none
// comes) a missing request is answered with {route: null}.
async function nextRequest(t, limitMs, skipMs = 0, stepMs = STEP_MS) {
  const mustArrive = stepMs === STEP_MS;
  let elapsed = 0;
  if (skipMs > 0) {
    await t.page.clock.runFor(skipMs);
    elapsed = skipMs;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  while (t.pending.length === 0) {
    if (elapsed > limitMs) {
      if (mustArrive) throw new Error(`no request within ${limitMs / 1000} s of simulated time`);
      return {route: null, elapsed};
    }
    await t.page.clock.runFor(stepMs);
    elapsed += stepMs;
    await new Promise((resolve) => setTimeout(resolve, 5)); // let the request reach the route
  }
  return {route: t.pending.shift(), elapsed};
}

function json(status, body, headers = {}) {
  return {status, contentType: "application/json", headers, body: JSON.stringify(body)};
}

async function settle(t) {
  // Let a response reach the page's callbacks.
  await new Promise((resolve) => setTimeout(resolve, 30));
  await t.page.clock.runFor(1);
  await new Promise((resolve) => setTimeout(resolve, 30));
}

// Waits, in real time and without moving the page's clock, until the client has
// counted `n` consecutive failures (it schedules its retry in the same step).
async function failuresCounted(t, n) {
  for (let i = 0; i < 400; i++) {
    if ((await t.page.evaluate(() => window.handle.state().failures)) >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the client never counted ${n} failures`);
}

const events = (t) => t.page.evaluate(() => window.events);
const within = (ms, lo, hi) => ms >= lo * 1000 - STEP_MS && ms <= hi * 1000 + STEP_MS;
const OK_BEAT = json(200, {expires_at: "2026-11-28T12:10:00Z", idle_timeout_secs: 600});

async function heartbeatsFollowTheIntervalWithJitter(browser) {
  const t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  const gaps = [];
  for (let i = 0; i < 4; i++) {
    const {route, elapsed} = await nextRequest(t, 200_000, 134_000);
    check(route && route.request().url().endsWith(`/v1/sessions/${TOKEN}/heartbeat`) && route.request().method() === "POST",
      `heartbeat ${i + 1} is a POST to /v1/sessions/{token}/heartbeat`);
    if (!route) break;
    gaps.push(elapsed);
    await route.fulfill(OK_BEAT);
    await settle(t);
  }
  check(gaps.every((ms) => within(ms, 135, 165)), "heartbeats come every 150 s ± 10%", gaps.join(", "));
  check(new Set(gaps).size > 1, "the interval is jittered", gaps.join(", "));
  const beats = (await events(t)).filter((e) => e[0] === "heartbeat");
  check(beats.length === 4 && beats[0][1] === "2026-11-28T12:10:00.000Z", "onHeartbeat reports the new expiry");
  await t.context.close();
}

async function transientFailuresBackOffWithoutEnding(browser) {
  const t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  const first = await nextRequest(t, 200_000, 134_000);
  // 503 with Retry-After 30: the next try waits for the hint.
  await first.route.fulfill(json(503, {error: "overloaded", message: "busy"}, {"Retry-After": "30"}));
  await failuresCounted(t, 1);
  let next = await nextRequest(t, 100_000, 26_000);
  check(within(next.elapsed, 27, 33), "a 503 is retried after its Retry-After (30 s)", next.elapsed);
  // Then a network error, 500, 502, 504, a timeout and more: exponential backoff, capped at 60 s.
  const answers = ["abort", 500, 502, 504, "abort", 500, 500, 503];
  // failures 2..9 → 2, 4, 8, 16, 32, 60 (cap), 60, 60 s
  const expected = [2, 4, 8, 16, 32, 60, 60, 60];
  const gaps = [];
  for (const answer of answers) {
    if (answer === "abort") await next.route.abort("failed");
    else await next.route.fulfill(json(answer, {error: "internal", message: "oops"}));
    // Simulated time may only move once the page has seen the failure and scheduled
    // its retry; otherwise the jump lands before the timer is set.
    await failuresCounted(t, gaps.length + 2);
    next = await nextRequest(t, 100_000, expected[gaps.length] * 900 - 1000);
    gaps.push(next.elapsed);
  }
  check(gaps.every((ms, i) => within(ms, expected[i] * 0.9, expected[i] * 1.1)),
    "retries back off exponentially to a 60 s cap", `${gaps.join(", ")} vs ${expected.join(", ")} s`);
  // A request that hangs is given up after 10 s and retried.
  const hung = next;
  next = await nextRequest(t, 100_000, 63_000);
  check(within(next.elapsed, 10 + 54, 10 + 66), "a hung heartbeat times out after 10 s and is retried", next.elapsed);
  void hung;
  await next.route.fulfill(OK_BEAT);
  await settle(t);
  check(!(await events(t)).some((e) => e[0] === "ended"), "transient failures never end the session");
  next = await nextRequest(t, 200_000, 134_000);
  check(within(next.elapsed, 135, 165), "after a success the normal interval resumes", next.elapsed);
  await t.context.close();
}

async function endedSessionsAreReported(browser) {
  for (const [status, body, reason] of [
    [410, {error: "session_ended", message: "ended", reason: "revoked"}, "revoked"],
    [410, {error: "session_ended", message: "ended", reason: "expired"}, "expired"],
    [404, {error: "session_not_found", message: "no session"}, "not_found"],
  ]) {
    const t = await openPage(browser);
    await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
    const {route} = await nextRequest(t, 200_000, 134_000);
    await route.fulfill(json(status, body));
    await settle(t);
    const ended = (await events(t)).filter((e) => e[0] === "ended");
    check(ended.length === 1 && ended[0][1] === reason, `a ${status} heartbeat calls onEnded("${reason}")`, JSON.stringify(ended));
    const after = await nextRequest(t, 400_000, 0, 10_000);
    check(after.route === null, `no heartbeat after onEnded("${reason}")`);
    await t.context.close();
  }
}

async function releaseAndLogoutEndTheSession(browser) {
  for (const [method, path, reason] of [["release", "/release", "released"], ["logout", "/logout", "logged_out"]]) {
    const t = await openPage(browser);
    await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
    const result = t.page.evaluate((m) => window.handle[m](), method);
    const {route} = await nextRequest(t, 5_000);
    check(route && route.request().method() === "POST" && route.request().url().endsWith(`/v1/sessions/${TOKEN}${path}`),
      `handle.${method}() POSTs to /v1/sessions/{token}${path}`);
    await route.fulfill({status: 204});
    check((await result) === reason, `handle.${method}() resolves to "${reason}"`);
    const ended = (await events(t)).filter((e) => e[0] === "ended");
    check(ended.length === 1 && ended[0][1] === reason, `handle.${method}() calls onEnded("${reason}") once`);
    check((await nextRequest(t, 400_000, 0, 10_000)).route === null, `no heartbeat after ${method}`);
    await t.context.close();
  }
}

async function aFailedReleaseKeepsTheSession(browser) {
  const t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  const result = t.page.evaluate(() => window.handle.release().then(() => "resolved", (e) => "rejected: " + e.message));
  const {route} = await nextRequest(t, 5_000);
  await route.abort("failed");
  check((await result).startsWith("rejected"), "a release that cannot reach the server rejects");
  const next = await nextRequest(t, 5_000);
  check(next.route && next.route.request().url().endsWith("/heartbeat"),
    "after a failed release the session is kept alive by a heartbeat at once");
  check(!(await events(t)).some((e) => e[0] === "ended"), "a failed release does not end the session");
  await t.context.close();
}

async function pagehideReleasesWithABeacon(browser) {
  const t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  await t.page.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: false})));
  let waited = 0;
  while (!t.seen.some((r) => r.path.endsWith("/release")) && waited < 3000) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    waited += 50;
  }
  const release = t.seen.find((r) => r.path.endsWith("/release"));
  check(release && release.method === "POST", "pagehide sends a POST beacon to …/release", JSON.stringify(t.seen));
  for (const route of t.pending.splice(0)) await route.fulfill({status: 204});
  check((await nextRequest(t, 400_000, 0, 10_000)).route === null, "no heartbeat after pagehide");
  await t.context.close();
}

async function theFenceComesFromTheLoginAndEachHeartbeat(browser) {
  let t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600, fence: 7});
  check((await t.page.evaluate(() => window.handle.state().fence)) === 7, "state() reports the login's fence");
  await t.context.close();

  t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  check((await t.page.evaluate(() => window.handle.state().fence)) === null, "no fence until the server tells one");
  const {route} = await nextRequest(t, 200_000, 134_000);
  await route.fulfill(json(200, {expires_at: "2026-11-28T12:10:00Z", idle_timeout_secs: 600, fence: 9}));
  await settle(t);
  const seen = await t.page.evaluate(() => window.fences);
  check(seen.length === 1 && seen[0] === 9, "onHeartbeat reports the heartbeat's fence", JSON.stringify(seen));
  check((await t.page.evaluate(() => window.handle.state().fence)) === 9, "state() reports it too");
  await t.context.close();
}

const BEAT_FRAME = {type: "heartbeat", expires_at: "2026-11-28T12:10:00Z", idle_timeout_secs: 600, fence: 3};

// Waits in real time, without moving the page's clock, for `condition(t)`.
async function until(t, condition, what) {
  for (let i = 0; i < 400; i++) {
    if (await condition(t)) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`never: ${what}`);
}

// Advances simulated time until socket `socket` has `n` frames from the page.
async function nextFrame(t, socket, n, limitMs, skipMs = 0) {
  let elapsed = 0;
  if (skipMs > 0) {
    await t.page.clock.runFor(skipMs);
    elapsed = skipMs;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  while (socket.frames.length < n) {
    if (elapsed > limitMs) throw new Error(`no frame within ${limitMs / 1000} s of simulated time`);
    await t.page.clock.runFor(STEP_MS);
    elapsed += STEP_MS;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return {frame: socket.frames[n - 1], elapsed};
}

// A page attached with the socket accepted and its first frame (the upgrade's heartbeat
// answer) sent.
async function attachLive(browser) {
  const t = await openPage(browser, {acceptSockets: true});
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  await until(t, (t) => t.sockets.length === 1, "the page opens its socket");
  t.sockets[0].ws.send(JSON.stringify(BEAT_FRAME));
  await until(t, async (t) => (await t.page.evaluate(() => window.handle.state().live)), "the socket is live");
  await settle(t);
  return t;
}

async function heartbeatsGoAsFramesOnTheSocketByDefault(browser) {
  const t = await attachLive(browser);
  const socket = t.sockets[0];
  check(socket.url === `ws://usher.test/v1/sessions/${TOKEN}/live`, "the socket is opened on /v1/sessions/{token}/live", socket.url);
  let beats = (await events(t)).filter((e) => e[0] === "heartbeat");
  check(beats.length === 1 && (await t.page.evaluate(() => window.handle.state().fence)) === 3,
    "the upgrade's answer counts as a heartbeat (onHeartbeat, the fence)", JSON.stringify(beats));
  const gaps = [];
  for (let n = 1; n <= 3; n++) {
    const {frame, elapsed} = await nextFrame(t, socket, n, 200_000, 134_000);
    check(frame.type === "heartbeat", `heartbeat ${n} is a {"type": "heartbeat"} frame`, JSON.stringify(frame));
    gaps.push(elapsed);
    socket.ws.send(JSON.stringify(BEAT_FRAME));
    await settle(t);
  }
  check(gaps.every((ms) => within(ms, 135, 165)), "frames come every 150 s ± 10%", gaps.join(", "));
  check(t.seen.length === 0, "no HTTP heartbeat while the socket is live", JSON.stringify(t.seen));
  beats = (await events(t)).filter((e) => e[0] === "heartbeat");
  check(beats.length === 4, "each answered frame calls onHeartbeat", beats.length);
  await t.context.close();
}

async function anEndedFrameEndsTheSessionAtOnce(browser) {
  for (const frame of [
    {type: "ended", reason: "revoked"},
    {type: "error", error: "session_ended", message: "ended", reason: "expired"},
    {type: "error", error: "session_not_found", message: "no session"},
  ]) {
    const t = await attachLive(browser);
    const reason = frame.type === "ended" ? frame.reason : frame.reason || "not_found";
    t.sockets[0].ws.send(JSON.stringify(frame));
    // Real time only: the page's clock does not move, so no timer can have fired.
    await until(t, async (t) => (await events(t)).some((e) => e[0] === "ended"), "onEnded is called");
    const ended = (await events(t)).filter((e) => e[0] === "ended");
    check(ended.length === 1 && ended[0][1] === reason, `a pushed ${JSON.stringify(frame)} calls onEnded("${reason}") at once`, JSON.stringify(ended));
    const after = await nextRequest(t, 400_000, 0, 10_000);
    check(after.route === null && t.sockets.length === 1 && t.sockets[0].frames.length === 0,
      "and nothing is sent after it, by HTTP or socket", JSON.stringify(t.seen));
    await t.context.close();
  }
}

async function aDroppedSocketFallsBackToHttpAndComesBack(browser) {
  const t = await attachLive(browser);
  t.sockets[0].ws.close({code: 1001, reason: "going away"});
  const {route, elapsed} = await nextRequest(t, 5_000);
  check(route.request().url().endsWith("/heartbeat") && elapsed <= STEP_MS,
    "a dropped socket is followed at once by an HTTP heartbeat", elapsed);
  await route.fulfill(OK_BEAT);
  await settle(t);
  check(!(await t.page.evaluate(() => window.handle.state().live)), "state().live is false without a socket");
  await t.page.clock.runFor(1_150);
  await until(t, (t) => t.sockets.length === 2, "the page tries the socket again about 1 s later");
  t.sockets[1].ws.send(JSON.stringify(BEAT_FRAME));
  await until(t, async (t) => (await t.page.evaluate(() => window.handle.state().live)), "the new socket is live");
  await settle(t);
  const {frame} = await nextFrame(t, t.sockets[1], 1, 200_000, 134_000);
  check(frame.type === "heartbeat" && t.seen.length === 1, "heartbeats go back to the socket once it is back", JSON.stringify(t.seen));
  await t.context.close();
}

async function aSocketThatStopsAnsweringFallsBack(browser) {
  const t = await attachLive(browser);
  await nextFrame(t, t.sockets[0], 1, 200_000, 134_000);
  // No answer: after 10 s the socket is given up and the heartbeat goes over HTTP.
  const {route, elapsed} = await nextRequest(t, 20_000);
  check(route.request().url().endsWith("/heartbeat") && within(elapsed, 10, 10),
    "an unanswered heartbeat frame is given up after 10 s and sent over HTTP", elapsed);
  await route.fulfill(OK_BEAT);
  await settle(t);
  check(!(await events(t)).some((e) => e[0] === "ended"), "a silent socket does not end the session");
  await t.context.close();
}

async function anOverloadedFrameIsRetriedAfterItsHint(browser) {
  const t = await attachLive(browser);
  const socket = t.sockets[0];
  await nextFrame(t, socket, 1, 200_000, 134_000);
  socket.ws.send(JSON.stringify({type: "error", error: "overloaded", message: "busy", retry_after_secs: 30}));
  await failuresCounted(t, 1);
  const {elapsed} = await nextFrame(t, socket, 2, 100_000, 26_000);
  check(within(elapsed, 27, 33), "an overloaded frame is retried on the socket after its retry_after_secs (30 s)", elapsed);
  check(t.seen.length === 0 && !(await events(t)).some((e) => e[0] === "ended"),
    "and neither ends the session nor leaves the socket", JSON.stringify(t.seen));
  await t.context.close();
}

// release() closes the session's socket before the release is answered: a socket that
// reconnected meanwhile would be refused. A release that fails keeps the session, and the
// next heartbeat opens the socket again.
async function releaseClosesTheSocketAtOnce(browser) {
  const t = await attachLive(browser);
  const result = t.page.evaluate(() => window.handle.release().catch((e) => `failed: ${e.status}`))
    .catch((e) => `page: ${e.message}`);
  const {route} = await nextRequest(t, 1_000);
  check(route.request().url().endsWith(`/v1/sessions/${TOKEN}/release`), "release() posts its release");
  await until(t, (t) => t.sockets[0].closed, "the socket closes");
  check(!(await t.page.evaluate(() => window.handle.state().live)),
    "release() closes the session's socket before the release is answered");
  await route.fulfill(json(503, {error: "unavailable", message: "try again"}, {"Retry-After": "1"}));
  check((await result) === "failed: 503", "a failed release rejects release()", await result);
  const beat = await nextRequest(t, 30_000);
  check(beat.route.request().url().endsWith(`/v1/sessions/${TOKEN}/heartbeat`), "the session, still held, heartbeats over HTTP");
  await beat.route.fulfill(OK_BEAT);
  await until(t, (t) => t.sockets.length === 2, "the page opens the session's socket again");
  check(!(await events(t)).some((e) => e[0] === "ended"), "a release that failed opens the socket again, the session kept");
  await t.context.close();
}

async function aRefusedSocketIsTriedAgainWithBackoff(browser) {
  const t = await openPage(browser);
  await attach(t, {heartbeatIntervalSecs: 150, idleTimeoutSecs: 600});
  await until(t, (t) => t.sockets.length === 1, "the page tries its socket");
  const times = [];
  let elapsed = 0;
  while (t.sockets.length < 7 && elapsed < 200_000) {
    const before = t.sockets.length;
    await t.page.clock.runFor(STEP_MS);
    elapsed += STEP_MS;
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (t.sockets.length > before) times.push(elapsed);
  }
  const gaps = times.map((ms, i) => ms - (i ? times[i - 1] : 0));
  const expected = [1, 2, 4, 8, 16, 32];
  check(gaps.length === 6 && gaps.every((ms, i) => within(ms, expected[i] * 0.9, expected[i] * 1.1)),
    "a refused socket is tried again after 1, 2, 4 … s", `${gaps.join(", ")} vs ${expected.join(", ")} s`);
  const {route, elapsed: rest} = await nextRequest(t, 200_000);
  check(t.seen.length === 1 && route.request().url().endsWith("/heartbeat") && within(elapsed + rest, 135, 165),
    "while heartbeats keep to the interval over HTTP", `${elapsed + rest} ms, ${JSON.stringify(t.seen)}`);
  await t.context.close();
}

// ---------------------------------------------------------------- the waitlist

const TICKET = "tkt_xyz";
const QUEUED = {ticket: TICKET, position: 3, tenant: "acme", user: "ann",
  expires_at: "2026-11-28T12:10:00Z", idle_timeout_secs: 600, heartbeat_interval_secs: 15};
const LOGIN = {session: TOKEN, user: "ann", tenant: "acme", expires_at: "2026-11-28T12:10:00Z",
  idle_timeout_secs: 600, heartbeat_interval_secs: 150, fence: 7};

// Usher.queue on the page, its callbacks recorded in window.events.
async function queue(t, ticket = QUEUED, options = {}) {
  await t.page.evaluate(([ticket, options]) => {
    window.events = [];
    window.wait = Usher.queue(ticket, {
      ...options,
      onPosition: (n) => window.events.push(["position", n]),
      onReady: (licence, login) => {
        window.licence = licence;
        window.events.push(["ready", login.session, typeof licence.release, licence.state().fence]);
      },
      onEnded: (reason) => window.events.push(["ended", reason]),
      attach: {live: false, onEnded: (reason) => window.events.push(["session ended", reason])},
    });
  }, [ticket, {server: ORIGIN, ...options}]);
}

const ticketPath = (action) => `/v1/tickets/${TICKET}${action ? "/" + action : ""}`;

async function aTicketReportsItsPositionAndClaimsWhenReady(browser) {
  const t = await openPage(browser);
  await queue(t);
  const gaps = [];
  const answers = [{position: 2}, {position: 2}, {position: 1},
    {position: 0, ready: true, claim_by: "2026-11-28T12:01:00Z"}];
  let next;
  for (const answer of answers) {
    next = await nextRequest(t, 30_000, 13_000);
    check(next.route.request().method() === "POST" && next.route.request().url().endsWith(ticketPath("heartbeat")),
      "the ticket is heartbeated with a POST to /v1/tickets/{ticket}/heartbeat");
    gaps.push(next.elapsed);
    await next.route.fulfill(json(200, {...answer, expires_at: "2026-11-28T12:10:00Z"}));
    await settle(t);
  }
  check(gaps.every((ms) => within(ms, 13.5, 16.5)), "ticket heartbeats come at the 202's interval (15 s ± 10%)",
    gaps.join(", "));
  const positions = (await events(t)).filter((e) => e[0] === "position").map((e) => e[1]);
  check(positions.join(",") === "3,2,1", "onPosition reports the first position, then each change once",
    JSON.stringify(positions));
  const claim = await nextRequest(t, 1_000);
  check(claim.route.request().method() === "POST" && claim.route.request().url().endsWith(ticketPath("claim")) &&
      claim.elapsed <= STEP_MS, "a ready ticket is claimed at once", `${claim.elapsed} ms`);
  await claim.route.fulfill(json(201, LOGIN));
  await settle(t);
  const ready = (await events(t)).filter((e) => e[0] === "ready");
  check(ready.length === 1 && ready[0][1] === TOKEN && ready[0][2] === "function" && ready[0][3] === 7,
    "onReady gets the session's Usher.attach handle (with the claim's fence) and the login answer",
    JSON.stringify(ready));
  const state = await t.page.evaluate(() => window.wait.state());
  check(state.ended === "claimed" && state.ready === true, "the queue handle says the ticket was claimed",
    JSON.stringify(state));
  const beat = await nextRequest(t, 200_000, 134_000);
  check(beat.route.request().url().endsWith(`/v1/sessions/${TOKEN}/heartbeat`) && within(beat.elapsed, 135, 165),
    "the claimed session then heartbeats as after a login (every 150 s)", beat.elapsed);
  await beat.route.fulfill(json(410, {error: "session_ended", message: "ended", reason: "revoked"}));
  await settle(t);
  const after = await events(t);
  check(after.some((e) => e[0] === "session ended" && e[1] === "revoked") && !after.some((e) => e[0] === "ended"),
    "the session's end goes to the attach options' onEnded, not to the ticket's", JSON.stringify(after));
  await t.context.close();
}

async function aTicketStringTakesItsIntervalFromTheOptions(browser) {
  const t = await openPage(browser);
  await queue(t, TICKET, {heartbeatIntervalSecs: 5, idleTimeoutSecs: 20});
  const first = await nextRequest(t, 10_000, 4_000);
  check(first.route.request().url().endsWith(ticketPath("heartbeat")) && within(first.elapsed, 4.5, 5.5),
    "Usher.queue(ticketString, {heartbeatIntervalSecs: 5}) heartbeats every 5 s", first.elapsed);
  await first.route.fulfill(json(200, {position: 4, expires_at: "2026-11-28T12:10:00Z"}));
  await settle(t);
  const positions = (await events(t)).filter((e) => e[0] === "position").map((e) => e[1]);
  check(positions.join(",") === "4", "with no position given, the first heartbeat's is reported",
    JSON.stringify(positions));
  await t.context.close();
}

async function aTicketThatIsNotReadyAfterAllGoesBackInLine(browser) {
  const t = await openPage(browser);
  await queue(t);
  let next = await nextRequest(t, 30_000, 13_000);
  await next.route.fulfill(json(200, {position: 0, ready: true, claim_by: "2026-11-28T12:01:00Z",
    expires_at: "2026-11-28T12:10:00Z"}));
  next = await nextRequest(t, 1_000);
  await next.route.fulfill(json(409, {error: "not_ready", message: "not yet", position: 1}));
  await settle(t);
  next = await nextRequest(t, 30_000);
  check(next.route.request().url().endsWith(ticketPath("heartbeat")) && next.elapsed <= 2_500,
    "a claim answered 409 not_ready goes back to heartbeating, soon", next.elapsed);
  const seen = await events(t);
  check(seen.some((e) => e[0] === "position" && e[1] === 1) && !seen.some((e) => e[0] === "ended"),
    "…reporting the position the 409 gives, without ending", JSON.stringify(seen));
  await t.context.close();
}

async function endedTicketsAreReported(browser) {
  for (const [status, body, reason] of [
    [410, {error: "ticket_ended", message: "ended", reason: "claim_missed"}, "claim_missed"],
    [410, {error: "ticket_ended", message: "ended", reason: "expired"}, "expired"],
    [404, {error: "ticket_not_found", message: "no ticket"}, "not_found"],
  ]) {
    const t = await openPage(browser);
    await queue(t);
    const {route} = await nextRequest(t, 30_000, 13_000);
    await route.fulfill(json(status, body));
    await settle(t);
    const ended = (await events(t)).filter((e) => e[0] === "ended");
    check(ended.length === 1 && ended[0][1] === reason, `a ${status} ticket heartbeat calls onEnded("${reason}")`,
      JSON.stringify(ended));
    check((await nextRequest(t, 100_000, 0, 10_000)).route === null, `no request after "${reason}"`);
    await t.context.close();
  }
}

async function ticketFailuresCounted(t, n) {
  for (let i = 0; i < 400; i++) {
    if ((await t.page.evaluate(() => window.wait.state().failures)) >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the ticket never counted ${n} failures`);
}

async function aTicketRidesOutTransientFailures(browser) {
  const t = await openPage(browser);
  await queue(t);
  let next = await nextRequest(t, 30_000, 13_000);
  await next.route.fulfill(json(503, {error: "overloaded", message: "busy"}, {"Retry-After": "8"}));
  // The retry is timed from when the page has read the answer, not from the fulfil.
  await ticketFailuresCounted(t, 1);
  next = await nextRequest(t, 30_000, 6_000);
  check(within(next.elapsed, 7.2, 8.8), "a 503 ticket heartbeat is retried after its Retry-After", next.elapsed);
  await next.route.abort("failed");
  await ticketFailuresCounted(t, 2);
  next = await nextRequest(t, 30_000);
  check(within(next.elapsed, 1.8, 2.2), "then a network error backs off (2 s)", next.elapsed);
  await next.route.fulfill(json(200, {position: 3, expires_at: "2026-11-28T12:10:00Z"}));
  await settle(t);
  check(!(await events(t)).some((e) => e[0] === "ended"), "transient failures never end the ticket");
  await t.context.close();
}

async function cancelLeavesTheLine(browser) {
  const t = await openPage(browser);
  await queue(t);
  const result = t.page.evaluate(() => window.wait.cancel());
  const {route} = await nextRequest(t, 5_000);
  check(route.request().method() === "DELETE" && route.request().url().endsWith(ticketPath("")),
    "cancel() sends DELETE /v1/tickets/{ticket}");
  await route.fulfill({status: 204});
  check((await result) === "cancelled", 'cancel() resolves to "cancelled"');
  const ended = (await events(t)).filter((e) => e[0] === "ended");
  check(ended.length === 1 && ended[0][1] === "cancelled", 'cancel() calls onEnded("cancelled") once');
  check((await nextRequest(t, 100_000, 0, 10_000)).route === null, "no heartbeat after cancel()");
  await t.context.close();
}

// cancel() while the claim is on its way: the claim's answer decides. A seat it took is
// released at once (only that answer holds its token); a ticket back in line is left.
async function aCancelWhileClaimingGivesBackTheSeat(browser) {
  for (const [answer, outcome] of [
    [json(201, LOGIN), "claimed"],
    [json(409, {error: "not_ready", message: "not yet", position: 1}), "not ready"],
  ]) {
    const t = await openPage(browser);
    await queue(t);
    const beat = await nextRequest(t, 30_000, 13_000);
    await beat.route.fulfill(json(200, {position: 0, ready: true, claim_by: "2026-11-28T12:01:00Z",
      expires_at: "2026-11-28T12:10:00Z"}));
    const claim = await nextRequest(t, 1_000);
    check(claim.route.request().url().endsWith(ticketPath("claim")), `the ready ticket is claimed (${outcome})`);
    await t.page.evaluate(() => { window.cancelled = window.wait.cancel().then((r) => r, (e) => "error " + e.message); });
    await settle(t);
    check(t.pending.length === 0, `cancel() sends nothing while the claim is on its way (${outcome})`,
      JSON.stringify(t.seen));
    await claim.route.fulfill(answer);
    const next = await nextRequest(t, 1_000);
    const request = next.route.request();
    const path = new URL(request.url()).pathname;
    if (outcome === "claimed") {
      check(request.method() === "POST" && path === `/v1/sessions/${TOKEN}/release`,
        "a cancel() while the claim was on its way releases the seat the claim took", `${request.method()} ${path}`);
      await next.route.fulfill({status: 204});
    } else {
      check(request.method() === "DELETE" && path === ticketPath(""),
        "a cancel() while a claim was on its way leaves the line once it is answered not_ready",
        `${request.method()} ${path}`);
      await next.route.fulfill({status: 204});
    }
    await settle(t);
    const seen = await events(t);
    check((await t.page.evaluate(() => window.cancelled)) === "cancelled" &&
        !seen.some((e) => e[0] === "ready") && seen.filter((e) => e[0] === "ended").length === 1 &&
        seen.some((e) => e[0] === "ended" && e[1] === "cancelled"),
      `…then cancel() resolves to "cancelled", onEnded("cancelled") once, no onReady (${outcome})`, JSON.stringify(seen));
    check((await nextRequest(t, 200_000, 0, 10_000)).route === null, `and nothing is sent after (${outcome})`);
    await t.context.close();
  }
}

async function pagehideCancelsTheTicket(browser) {
  const t = await openPage(browser);
  await queue(t);
  await t.page.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: false})));
  let waited = 0;
  while (!t.seen.some((r) => r.method === "DELETE") && waited < 3000) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    waited += 50;
  }
  const cancel = t.seen.find((r) => r.method === "DELETE");
  check(cancel && cancel.path === ticketPath(""), "pagehide sends DELETE /v1/tickets/{ticket}", JSON.stringify(t.seen));
  for (const route of t.pending.splice(0)) await route.fulfill({status: 204});
  check((await nextRequest(t, 100_000, 0, 10_000)).route === null, "no ticket heartbeat after pagehide");
  await t.context.close();
}

// ------------------------------------------------------- the waiting tab's socket

const PLACE = (position) => ({type: "position", position, expires_at: "2026-11-28T12:10:00Z"});
const READY_FRAME = {type: "ready", position: 0, claim_by: "2026-11-28T12:01:00Z", expires_at: "2026-11-28T12:10:00Z"};
const positionsOf = async (t) => (await events(t)).filter((e) => e[0] === "position").map((e) => e[1]);
const queueState = (t) => t.page.evaluate(() => window.wait.state());

// A waiting page with its socket accepted and the upgrade's answer (its place) sent.
async function queueLive(browser, options = {}) {
  const t = await openPage(browser, {acceptSockets: true});
  await queue(t, QUEUED, options);
  await until(t, (t) => t.sockets.length === 1, "the waiting page opens its socket");
  t.sockets[0].ws.send(JSON.stringify(PLACE(3)));
  await until(t, async (t) => (await queueState(t)).live, "the ticket's socket is live");
  await settle(t);
  return t;
}

async function aWaitingTabHeartbeatsOnItsSocket(browser) {
  const t = await queueLive(browser);
  const socket = t.sockets[0];
  check(socket.url === `ws://usher.test/v1/tickets/${TICKET}/live`, "the ticket's socket is opened on /v1/tickets/{ticket}/live",
    socket.url);
  const gaps = [];
  for (let n = 1; n <= 3; n++) {
    const {frame, elapsed} = await nextFrame(t, socket, n, 30_000, 13_000);
    check(frame.type === "heartbeat", `ticket heartbeat ${n} is a {"type": "heartbeat"} frame`, JSON.stringify(frame));
    gaps.push(elapsed);
    socket.ws.send(JSON.stringify(PLACE(3)));
    await settle(t);
  }
  check(gaps.every((ms) => within(ms, 13.5, 16.5)), "ticket frames come at the 202's interval (15 s ± 10%)", gaps.join(", "));
  check(t.seen.length === 0, "no HTTP heartbeat while the ticket's socket is live", JSON.stringify(t.seen));
  check((await positionsOf(t)).join(",") === "3", "an unchanged place is not reported again", JSON.stringify(await positionsOf(t)));
  await t.context.close();
}

async function pushedPositionsAreReportedAtOnce(browser) {
  const t = await queueLive(browser);
  const socket = t.sockets[0];
  for (const n of [2, 2, 1]) {
    socket.ws.send(JSON.stringify(PLACE(n)));
    // Real time only: the page's clock does not move, so no heartbeat can have gone.
    await until(t, async (t) => (await positionsOf(t)).includes(n), `position ${n} is reported`);
  }
  await settle(t);
  check((await positionsOf(t)).join(",") === "3,2,1" && socket.frames.length === 0,
    "pushed positions are reported at once, each change once, without a heartbeat", JSON.stringify(await positionsOf(t)));
  check((await queueState(t)).position === 1, "state().position follows the pushes");
  await t.context.close();
}

async function aPushedReadyIsClaimedAtOnce(browser) {
  const t = await queueLive(browser);
  const socket = t.sockets[0];
  socket.ws.send(JSON.stringify(READY_FRAME));
  const claim = await nextRequest(t, 1_000);
  check(claim.route.request().method() === "POST" && claim.route.request().url().endsWith(ticketPath("claim")) &&
      claim.elapsed <= STEP_MS, "a pushed ready is claimed at once over HTTP", `${claim.elapsed} ms`);
  check((await queueState(t)).ready === true && (await queueState(t)).claimBy !== null,
    "state() is ready with the pushed claim_by while the claim is on its way");
  // The server ends the ticket as claimed, and closes its socket, before the claim's
  // answer arrives; the answer takes 5 s, and the ticket's socket is not tried again.
  socket.ws.send(JSON.stringify({type: "ended", reason: "claimed"}));
  await settle(t);
  socket.ws.close({code: 1000, reason: "ended"});
  await until(t, (t) => socket.closed, "the server closes the claimed ticket's socket");
  await t.page.clock.runFor(5_000);
  await settle(t);
  check(t.sockets.length === 1 && t.pending.length === 0,
    "a ticket's socket closed after its end as claimed is not opened again while the claim is answered",
    JSON.stringify({sockets: t.sockets.length, requests: t.seen}));
  await claim.route.fulfill(json(201, LOGIN));
  await settle(t);
  const seen = await events(t);
  check(seen.some((e) => e[0] === "ready" && e[1] === TOKEN) && !seen.some((e) => e[0] === "ended"),
    "the claim's login goes to onReady; the ticket's own end as claimed is not reported", JSON.stringify(seen));
  await until(t, (t) => socket.closed, "the ticket's socket is closed once claimed");
  check((await queueState(t)).ended === "claimed" && !(await queueState(t)).live, "state(): claimed, no longer live");
  await t.context.close();
}

// The server drops the ticket's socket while the claim is on its way (the claim ends the
// ticket; a new socket would only be refused 410): it is not tried again before the answer,
// and a claim answered not_ready puts the ticket back in line, socket and all.
async function aTicketSocketLostWhileClaimingWaitsForTheAnswer(browser) {
  const t = await queueLive(browser);
  t.sockets[0].ws.send(JSON.stringify(READY_FRAME));
  const claim = await nextRequest(t, 1_000);
  check(claim.route.request().url().endsWith(ticketPath("claim")), "the pushed ready is claimed");
  t.sockets[0].ws.close({code: 1001, reason: "going away"});
  await until(t, (t) => t.sockets[0].closed, "the server drops the socket");
  await t.page.clock.runFor(5_000);
  await settle(t);
  check(t.sockets.length === 1 && t.pending.length === 0,
    "a ticket socket lost while the claim is on its way is not opened again meanwhile",
    JSON.stringify({sockets: t.sockets.length, requests: t.seen}));
  await claim.route.fulfill(json(409, {error: "not_ready", message: "not held", position: 2}));
  const beat = await nextRequest(t, 30_000);
  check(beat.route.request().url().endsWith(ticketPath("heartbeat")),
    "a claim answered not_ready heartbeats over HTTP, the socket being gone", beat.route.request().url());
  await beat.route.fulfill(json(200, {position: 2, expires_at: "2026-11-28T12:10:00Z"}));
  await until(t, (t) => t.sockets.length === 2, "the page opens the ticket's socket again");
  check((await positionsOf(t)).join(",") === "3,2", "and, back in line, opens its socket again",
    JSON.stringify(await positionsOf(t)));
  await t.context.close();
}

// cancel() closes the ticket's socket before the DELETE is answered: the line is being
// left, and a socket that reconnected meanwhile would be refused. A DELETE that fails
// keeps the place, and the next heartbeat opens the socket again.
async function cancelClosesTheTicketSocketAtOnce(browser) {
  const t = await queueLive(browser);
  const result = t.page.evaluate(() => window.wait.cancel().catch((e) => `failed: ${e.status}`))
    .catch((e) => `page: ${e.message}`);
  const {route} = await nextRequest(t, 1_000);
  check(route.request().method() === "DELETE", "cancel() sends its DELETE");
  await until(t, (t) => t.sockets[0].closed, "the socket closes");
  check(t.sockets[0].closed && !(await queueState(t)).live,
    "cancel() closes the ticket's socket before the DELETE is answered");
  await route.fulfill(json(503, {error: "unavailable", message: "try again"}, {"Retry-After": "1"}));
  check((await result) === "failed: 503", "a failed DELETE rejects cancel()", await result);
  const beat = await nextRequest(t, 30_000);
  check(beat.route.request().url().endsWith(ticketPath("heartbeat")), "the ticket, still in line, heartbeats over HTTP");
  await beat.route.fulfill(json(200, {position: 3, expires_at: "2026-11-28T12:10:00Z"}));
  await until(t, (t) => t.sockets.length === 2, "the page opens the ticket's socket again");
  check(!(await events(t)).some((e) => e[0] === "ended"), "a cancel that failed opens the socket again, the ticket kept");
  await t.context.close();
}

async function aPushedEndEndsTheTicketAtOnce(browser) {
  for (const [frame, reason] of [
    [{type: "ended", reason: "evicted"}, "evicted"],
    [{type: "ended", reason: "claim_missed"}, "claim_missed"],
    [{type: "error", error: "ticket_ended", message: "ended", reason: "expired"}, "expired"],
    [{type: "error", error: "ticket_not_found", message: "no ticket"}, "not_found"],
  ]) {
    const t = await queueLive(browser);
    t.sockets[0].ws.send(JSON.stringify(frame));
    await until(t, async (t) => (await events(t)).some((e) => e[0] === "ended"), "onEnded is called");
    const ended = (await events(t)).filter((e) => e[0] === "ended");
    check(ended.length === 1 && ended[0][1] === reason, `a pushed ${JSON.stringify(frame)} calls the ticket's onEnded("${reason}") at once`,
      JSON.stringify(ended));
    const after = await nextRequest(t, 100_000, 0, 10_000);
    check(after.route === null && t.sockets.length === 1 && t.sockets[0].frames.length === 0,
      "and nothing is sent after it, by HTTP or socket", JSON.stringify(t.seen));
    await t.context.close();
  }
}

async function aTicketWhoseSocketCannotConnectHeartbeatsOverHttp(browser) {
  const t = await openPage(browser); // sockets refused
  await queue(t);
  await until(t, (t) => t.sockets.length === 1, "the waiting page tries its socket");
  const {route, elapsed} = await nextRequest(t, 30_000);
  check(route.request().url().endsWith(ticketPath("heartbeat")) && within(elapsed, 13.5, 16.5),
    "a ticket whose socket cannot connect heartbeats over HTTP at its interval", elapsed);
  check(t.sockets.length >= 4 && !(await queueState(t)).live,
    "while the socket is tried again with backoff (1, 2, 4 … s), state().live false", t.sockets.length);
  await route.fulfill(json(200, {position: 2, expires_at: "2026-11-28T12:10:00Z"}));
  await settle(t);
  check((await positionsOf(t)).join(",") === "3,2", "the HTTP answer's position is reported");
  await t.context.close();
}

async function aDroppedTicketSocketFallsBackToHttpAndComesBack(browser) {
  const t = await queueLive(browser);
  t.sockets[0].ws.close({code: 1001, reason: "going away"});
  const {route, elapsed} = await nextRequest(t, 5_000);
  check(route.request().url().endsWith(ticketPath("heartbeat")) && elapsed <= STEP_MS,
    "a dropped ticket socket is followed at once by an HTTP heartbeat", elapsed);
  await route.fulfill(json(200, {position: 2, expires_at: "2026-11-28T12:10:00Z"}));
  await settle(t);
  check(!(await queueState(t)).live && (await positionsOf(t)).join(",") === "3,2",
    "state().live is false without the socket; the HTTP answer's position is reported");
  await t.page.clock.runFor(1_150);
  await until(t, (t) => t.sockets.length === 2, "the page tries the ticket's socket again about 1 s later");
  t.sockets[1].ws.send(JSON.stringify(PLACE(1)));
  await until(t, async (t) => (await queueState(t)).live, "the new socket is live");
  await settle(t);
  const {frame} = await nextFrame(t, t.sockets[1], 1, 30_000, 13_000);
  check(frame.type === "heartbeat" && t.seen.length === 1 && (await positionsOf(t)).join(",") === "3,2,1",
    "heartbeats go back to the socket once it is back, its first place reported", JSON.stringify(t.seen));
  await t.context.close();
}

async function anUnansweredTicketFrameFallsBackToHttp(browser) {
  const t = await queueLive(browser);
  await nextFrame(t, t.sockets[0], 1, 30_000, 13_000);
  const {route, elapsed} = await nextRequest(t, 20_000);
  check(route.request().url().endsWith(ticketPath("heartbeat")) && within(elapsed, 10, 10),
    "an unanswered ticket frame is given up after 10 s and sent over HTTP", elapsed);
  await route.fulfill(json(200, {position: 0, ready: true, claim_by: "2026-11-28T12:01:00Z",
    expires_at: "2026-11-28T12:10:00Z"}));
  const claim = await nextRequest(t, 1_000);
  check(claim.route.request().url().endsWith(ticketPath("claim")), "and a ready answered over HTTP is still claimed at once");
  check(!(await events(t)).some((e) => e[0] === "ended"), "a silent socket does not end the ticket");
  await t.context.close();
}

async function liveFalseKeepsTheTicketOnHttp(browser) {
  const t = await openPage(browser, {acceptSockets: true});
  await queue(t, QUEUED, {live: false});
  const {route, elapsed} = await nextRequest(t, 30_000, 13_000);
  check(route.request().url().endsWith(ticketPath("heartbeat")) && within(elapsed, 13.5, 16.5) && t.sockets.length === 0,
    "with live: false the ticket opens no socket and heartbeats over HTTP", `${elapsed} ms, ${t.sockets.length} sockets`);
  await route.fulfill(json(200, {position: 2, expires_at: "2026-11-28T12:10:00Z"}));
  await settle(t);
  check(!(await queueState(t)).live && t.sockets.length === 0, "and state().live stays false");
  await t.context.close();
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--no-first-run", "--disable-quic", "--disable-sync"],
  });
  try {
    await heartbeatsFollowTheIntervalWithJitter(browser);
    await transientFailuresBackOffWithoutEnding(browser);
    await endedSessionsAreReported(browser);
    await releaseAndLogoutEndTheSession(browser);
    await aFailedReleaseKeepsTheSession(browser);
    await pagehideReleasesWithABeacon(browser);
    await theFenceComesFromTheLoginAndEachHeartbeat(browser);
    await heartbeatsGoAsFramesOnTheSocketByDefault(browser);
    await anEndedFrameEndsTheSessionAtOnce(browser);
    await aDroppedSocketFallsBackToHttpAndComesBack(browser);
    await aSocketThatStopsAnsweringFallsBack(browser);
    await anOverloadedFrameIsRetriedAfterItsHint(browser);
    await aRefusedSocketIsTriedAgainWithBackoff(browser);
    await releaseClosesTheSocketAtOnce(browser);
    await aTicketReportsItsPositionAndClaimsWhenReady(browser);
    await aTicketStringTakesItsIntervalFromTheOptions(browser);
    await aTicketThatIsNotReadyAfterAllGoesBackInLine(browser);
    await endedTicketsAreReported(browser);
    await aTicketRidesOutTransientFailures(browser);
    await cancelLeavesTheLine(browser);
    await aCancelWhileClaimingGivesBackTheSeat(browser);
    await pagehideCancelsTheTicket(browser);
    await aWaitingTabHeartbeatsOnItsSocket(browser);
    await pushedPositionsAreReportedAtOnce(browser);
    await aPushedReadyIsClaimedAtOnce(browser);
    await aPushedEndEndsTheTicketAtOnce(browser);
    await aTicketSocketLostWhileClaimingWaitsForTheAnswer(browser);
    await cancelClosesTheTicketSocketAtOnce(browser);
    await aTicketWhoseSocketCannotConnectHeartbeatsOverHttp(browser);
    await aDroppedTicketSocketFallsBackToHttpAndComesBack(browser);
    await anUnansweredTicketFrameFallsBackToHttp(browser);
    await liveFalseKeepsTheTicketOnHttp(browser);
  } finally {
    await browser.close();
  }
}

main().then(
  () => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  },
  (error) => {
    console.error(`FAIL: ${error.stack || error}`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }
);
