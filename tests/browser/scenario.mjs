// End-to-end browser scenario against a running `usher serve --demo`, in a real
// headless Chromium (Debian's /usr/bin/chromium; playwright-core downloads no browser).
//
//   node tests/browser/scenario.mjs <base-url> <admin-token> <screenshot-path>
//
// The demo tenant `demo` has a 2-seat concurrent licence that queues at its limit. Five
// people open the demo CRM in separate browser contexts: two are admitted, three wait
// in line and see their places; one leaves the line and those behind move up. One of
// the admitted closes the tab, whose pagehide beacon frees the seat; the first in line
// is then signed in by herself, and the last closes her tab, which leaves the line. In
// the admin dashboard, the line shows and empties as people join and leave it; the licence editor previews a change (a dry run: nothing
// changes) and saves seat policies, then puts the licence back; releasing a holder ends
// that tab's session, and the tab shows "revoked". With the licence set to refuse, a
// login at the limit is refused and the page says when a seat may free. Last, Usher.queue
// against the real server on tenants of its own: positions, a claim that gives a working
// session, a claim missed, a ticket expired, a ticket cancelled, and a waiting tab told
// its new place and signed in by pushes on its socket. Exits non-zero with a
// message on the first failed check.
//
// To see the revocation within seconds rather than minutes, the scenario shortens the
// demo tenant's idle timeout (so the heartbeat interval, a quarter of it) for its
// duration and restores it at the end. CHROMIUM overrides the browser path.

import path from "node:path";
import {chromium} from "playwright-core";

const [baseArg, adminToken, screenshotPath] = process.argv.slice(2);
if (!baseArg || !adminToken || !screenshotPath) {
  console.error("usage: node tests/browser/scenario.mjs <base-url> <admin-token> <screenshot-path>");
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, "");
const origin = new URL(base).origin;
const TENANT = "demo";
const SCENARIO_IDLE_SECS = 20; // heartbeat every 5 s while the scenario runs
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--no-first-run", "--disable-quic", "--disable-sync",
];

let passed = 0;
const problems = []; // things seen in the pages (errors, foreign requests), checked at the end

class CheckFailed extends Error {}

function ok(description) {
  passed += 1;
  console.log(`ok ${passed} - ${description}`);
}

function check(condition, description, detail) {
  if (!condition) throw new CheckFailed(`${description}${detail ? `: ${detail}` : ""}`);
  ok(description);
}

async function admin(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: {
      Authorization: `Bearer ${adminToken}`,
      ...(body === undefined ? {} : {"Content-Type": "application/json"}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    throw new CheckFailed(`${method} ${path} answered ${response.status}: ${text.slice(0, 300)}`);
  }
  return json;
}

async function waitUntil(description, timeoutMs, probe) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last.done) return last;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new CheckFailed(`${description} (waited ${timeoutMs / 1000} s; last seen: ${JSON.stringify(last.seen)})`);
}

async function seatsInUse() {
  return (await admin("GET", `/v1/tenants/${TENANT}`)).seats_in_use;
}

// The users in the demo tenant's line, head first, with their places.
async function line(tenant = TENANT) {
  return (await admin("GET", `/v1/tenants/${tenant}/queue`)).queue.map((q) => `${q.user}@${q.position}`).join(" ");
}

// A ticket's heartbeat from outside the page: its status and body.
async function ticketProbe(ticket) {
  const response = await fetch(`${base}/v1/tickets/${encodeURIComponent(ticket)}/heartbeat`, {method: "POST"});
  return {status: response.status, body: await response.json().catch(() => ({}))};
}

// Waits until the demo page of `tab` says it is at `place` in line.
async function placeShown(tab, place, timeoutMs = 20000) {
  const box = tab.page.getByTestId("queue");
  await waitUntil(`${tab.label}'s page shows "${place} in line"`, timeoutMs, async () => {
    const seen = (await box.isVisible()) ? (await tab.page.locator("#queue-place").innerText()).trim() : "(no place shown)";
    return {done: seen === `All licences are in use — you are ${place} in line`, seen};
  });
}

// A browser context of its own, watched for page errors and requests to other hosts.
async function openContext(browser, label, options = {}) {
  const context = await browser.newContext({viewport: {width: 1280, height: 800}, ...options});
  context.setDefaultTimeout(15000);
  context.on("request", (request) => {
    const url = request.url();
    if (url.startsWith("data:") || url.startsWith("about:") || url.startsWith("blob:")) return;
    if (new URL(url).origin !== origin) problems.push(`${label}: request to another host: ${url}`);
  });
  const page = await context.newPage();
  // The frames of the tab's licence socket, as JSON.
  const frames = {sent: [], received: []};
  page.on("websocket", (ws) => {
    if (new URL(ws.url()).origin.replace(/^ws/, "http") !== origin) {
      problems.push(`${label}: socket to another host: ${ws.url()}`);
    }
    const parse = (payload) => { try { return JSON.parse(payload); } catch (e) { return {payload}; } };
    ws.on("framesent", (f) => frames.sent.push(parse(f.payload)));
    ws.on("framereceived", (f) => frames.received.push(parse(f.payload)));
  });
  // Resolves when the socket next answers a heartbeat.
  const answered = () => new Promise((resolve, reject) => {
    const seen = frames.received.length;
    const started = Date.now();
    const poll = setInterval(() => {
      if (frames.received.slice(seen).some((f) => f.type === "heartbeat")) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - started > 15000) {
        clearInterval(poll);
        reject(new CheckFailed(`${label}: no heartbeat answered on the socket within 15 s`));
      }
    }, 20);
  });
  page.on("pageerror", (error) => problems.push(`${label}: uncaught error in the page: ${error.message}`));
  page.on("console", (message) => {
    // A refused login or an ended session shows up as a failed resource load; that is expected.
    if (message.type() === "error" && !/Failed to load resource/.test(message.text())) {
      problems.push(`${label}: console error: ${message.text()}`);
    }
  });
  return {context, page, label, frames, answered};
}

// Types the name into the demo's sign-in form; resolves to "held", "queued" or the
// refusal code.
async function demoLogin(tab, user) {
  if (!(await tab.page.locator("#login-form").isVisible().catch(() => false))) {
    await tab.page.goto(`${base}/demo/`);
  }
  await tab.page.getByLabel("Your name").fill(user);
  const answer = tab.page.waitForResponse((r) => r.url().endsWith("/demo/api/login"));
  await tab.page.locator("#login").click();
  const response = await answer;
  const held = tab.page.locator('[data-testid="licence-state"][data-state="held"]');
  const refusal = tab.page.getByTestId("refusal");
  const queued = tab.page.locator('[data-testid="queue"][data-position]');
  await tab.page.locator('[data-testid="licence-state"][data-state="held"]:visible, [data-testid="refusal"]:visible, ' +
    '[data-testid="queue"][data-position]:visible').first().waitFor();
  if (await held.isVisible()) {
    tab.session = (await response.json()).session;
    tab.heartbeatSecs = (await response.json()).heartbeat_interval_secs;
    return "held";
  }
  if (await queued.isVisible()) {
    tab.ticket = (await response.json()).ticket;
    check(response.status() === 202, `${tab.label}'s login is answered 202 with a ticket`, String(response.status()));
    return "queued";
  }
  return (await refusal.getAttribute("data-code")) || "refused";
}

async function main() {
  // --- the demo tenant, clean and quick to notice ends
  const tenant = await admin("GET", `/v1/tenants/${TENANT}`);
  check(tenant.model === "concurrent" && tenant.seats === 2 && tenant.on_limit === "queue",
    "the demo tenant has a 2-seat concurrent licence that queues at its limit", JSON.stringify(tenant));
  const leftovers = (await admin("GET", `/v1/tenants/${TENANT}/sessions`)).sessions;
  for (const s of leftovers) await admin("DELETE", `/v1/tenants/${TENANT}/sessions/${encodeURIComponent(s.id)}`);
  let restoreLicence = null;
  if (tenant.idle_timeout_secs > SCENARIO_IDLE_SECS) {
    restoreLicence = {
      model: tenant.model, seats: tenant.seats, seat_per: tenant.seat_per || "user",
      idle_timeout_secs: tenant.idle_timeout_secs, max_users: tenant.max_users, on_limit: tenant.on_limit,
    };
    await admin("PUT", `/v1/tenants/${TENANT}`, {...restoreLicence, idle_timeout_secs: SCENARIO_IDLE_SECS});
  }
  check((await seatsInUse()) === 0, "the demo tenant starts with no seat in use");

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    await scenario(browser);
  } finally {
    await browser.close().catch(() => {});
    if (restoreLicence) await admin("PUT", `/v1/tenants/${TENANT}`, restoreLicence).catch(() => {});
  }
}

async function scenario(browser) {
  const ann = await openContext(browser, "ann");
  const bob = await openContext(browser, "bob");
  const cara = await openContext(browser, "cara");
  // Cara's licence sockets go through a relay the scenario can cut.
  cara.relays = [];
  await cara.context.routeWebSocket(/\/live$/, (ws) => {
    cara.relays.push({page: ws, server: ws.connectToServer()});
  });

  // --- two seats: two admitted, the next three wait in line
  check((await demoLogin(ann, "ann")) === "held", "ann is admitted and the page shows the licence held");
  check((await demoLogin(bob, "bob")) === "held", "bob is admitted");
  const dora = await openContext(browser, "dora");
  const erin = await openContext(browser, "erin");
  check((await demoLogin(cara, "cara")) === "queued", "cara, at the limit, is put in line");
  await placeShown(cara, "1st");
  check((await demoLogin(dora, "dora")) === "queued", "dora is put in line");
  await placeShown(dora, "2nd");
  check((await demoLogin(erin, "erin")) === "queued", "erin is put in line");
  await placeShown(erin, "3rd");
  ok("the three waiting pages show 1st, 2nd and 3rd in line");
  const caraBox = await cara.page.getByTestId("queue").innerText();
  check(/signed in\s+automatically/.test(caraBox) && await cara.page.getByRole("button", {name: "Leave the line"}).isVisible(),
    "cara's page says she will be signed in automatically, and offers to leave the line", caraBox);
  await cara.page.screenshot({path: shot("demo-queue.png")});
  check((await line()) === "cara@1 dora@2 erin@3", "the server's line is cara, dora, erin", await line());
  check((await seatsInUse()) === 2, "the server counts 2 seats in use");
  check(/Licence held — session expires at/.test(await ann.page.getByTestId("licence-state").innerText()),
    "ann's page says the licence is held and when it expires");

  // --- dora leaves the line: erin moves up
  await dora.page.getByRole("button", {name: "Leave the line"}).click();
  await dora.page.locator('[data-testid="refusal"][data-code="cancelled"]').waitFor();
  check(/You left the line/.test(await dora.page.getByTestId("refusal").innerText()),
    "dora's page says she left the line");
  const doraTicket = await ticketProbe(dora.ticket);
  check(doraTicket.status === 410 && doraTicket.body.reason === "cancelled",
    "dora's ticket ended as cancelled", JSON.stringify(doraTicket));
  await placeShown(erin, "2nd");
  ok("erin's page moves up to 2nd in line");
  await dora.context.close();

  // --- closing bob's tab frees the seat through the pagehide beacon; cara gets it by herself
  await bob.page.close({runBeforeUnload: true});
  const probe = await waitUntil("bob's session ends within 5 s (before any idle expiry)", 5000, async () => {
    const response = await fetch(`${base}/v1/sessions/${encodeURIComponent(bob.session)}/heartbeat`, {method: "POST"});
    const body = await response.json().catch(() => ({}));
    return {done: response.status === 410, seen: {status: response.status, body}};
  });
  check(probe.seen.body.reason === "released",
    "bob's session ended as released (by the beacon), not by expiry", JSON.stringify(probe.seen));
  await cara.page.locator('[data-testid="licence-state"][data-state="held"]').waitFor({timeout: 20000});
  const caraUser = (await cara.page.locator("#current-user").innerText()).trim();
  check(caraUser === "cara" && await cara.page.getByTestId("queue").isHidden(),
    "cara's waiting page signs her in by itself: the CRM shows, signed in as cara", caraUser);
  const holding = (await admin("GET", `/v1/tenants/${TENANT}/sessions`)).sessions.map((x) => x.user).sort().join(" ");
  check(holding === "ann cara", "the server's sessions are ann's and cara's", holding);
  check((await seatsInUse()) === 2, "the server counts 2 seats in use again");
  await placeShown(erin, "1st");
  ok("erin's page moves up to 1st in line");

  // --- closing erin's waiting tab leaves the line (a keepalive DELETE on pagehide)
  await erin.page.close({runBeforeUnload: true});
  await waitUntil("erin's ticket leaves the line within 5 s of her tab closing", 5000, async () => {
    const seen = await line();
    return {done: seen === "", seen};
  });
  const erinTicket = await ticketProbe(erin.ticket);
  check(erinTicket.status === 410 && erinTicket.body.reason === "cancelled",
    "closing erin's tab cancelled her ticket", JSON.stringify(erinTicket));
  await erin.context.close();

  // --- the dashboard lists the holders; releasing ann there ends ann's tab
  const dash = await openContext(browser, "dashboard", {viewport: {width: 1440, height: 900}});
  const streamRequests = [];
  dash.page.on("request", (r) => {
    if (r.url().endsWith("/v1/events/stream")) streamRequests.push(r.headers()["authorization"] || "");
  });
  await dash.page.goto(`${base}/`);
  await dash.page.getByLabel("Admin token or tenant API key").fill(adminToken);
  await dash.page.locator("#signin-submit").click();
  await dash.page.getByTestId(`select-tenant-${TENANT}`).click();
  const holders = dash.page.locator("#holders-body");
  await holders.locator('tr[data-user="ann"]').waitFor();
  await holders.locator('tr[data-user="cara"]').waitFor();
  check((await holders.locator("tr").count()) === 2 && (await holders.locator('tr[data-user="bob"]').count()) === 0,
    "the dashboard lists ann and cara as the demo tenant's holders");
  await dash.page.locator('#live[data-mode="stream"]').waitFor({state: "attached"});
  check(streamRequests.length === 1 && streamRequests[0] === `Bearer ${adminToken}`,
    "the dashboard follows the admin event stream, with its token", JSON.stringify(streamRequests.length));
  const fenceOf = async (user) => Number((await holders.locator(`tr[data-user="${user}"] .c-fence`).innerText()).trim());
  const [annFence, caraFence] = [await fenceOf("ann"), await fenceOf("cara")];
  check(Number.isInteger(annFence) && annFence > 0 && caraFence > annFence,
    "the dashboard shows each holder's fence, larger for the later login", `ann ${annFence}, cara ${caraFence}`);
  const meter = dash.page.locator(`#tenants-body tr[data-tenant="${TENANT}"] .meter-text`);
  await waitUntil("the tenants table shows 2 / 2 seats", 5000, async () => {
    const seen = (await meter.innerText()).trim();
    return {done: seen === "2 / 2", seen};
  });
  ok("the tenants table shows the demo tenant's seats in use against its seats");
  await checkDashboardLine(browser, dash.page);

  await checkLicencePreview(dash.page);
  await checkDashboardLayout(dash.page);
  await checkPhoneLayout(browser);
  await checkEveryPageIsListed(dash.page);

  // Ann's tab heartbeats over its socket; the revoke is pushed on it. Right after a
  // heartbeat is answered the next is seconds away, so an `ended` frame that comes
  // before any frame is sent was pushed, not the answer to a heartbeat.
  await waitUntil("ann's tab heartbeats over its socket", 5000, async () => {
    const live = await ann.page.evaluate(() => window.demoLicence && window.demoLicence.state().live);
    return {done: live === true, seen: live};
  });
  await ann.answered();
  const sentBefore = ann.frames.sent.length;
  const revokedAt = Date.now();
  await holders.locator('tr[data-user="ann"] [data-action="release"]').click();
  const revokeWaitMs = Math.ceil((ann.heartbeatSecs || 150) * 1.1 + 10) * 1000;
  await ann.page.locator('[data-testid="session-ended"][data-reason="revoked"]')
    .waitFor({state: "visible", timeout: revokeWaitMs});
  const revokeMs = Date.now() - revokedAt;
  const pushed = ann.frames.received.find((f) => f.type === "ended");
  check(pushed && pushed.reason === "revoked" && ann.frames.sent.length === sentBefore,
    `the revoke reached ann's tab as an "ended" frame on its socket, before any heartbeat (${revokeMs} ms from the click)`,
    JSON.stringify({pushed, sent: ann.frames.sent.length - sentBefore}));
  const endedText = await ann.page.getByTestId("session-ended").innerText();
  check(/administrator released your licence/i.test(endedText),
    "ann's tab reports that an administrator released the licence (onEnded: revoked)", endedText);
  await holders.locator('tr[data-user="ann"]').waitFor({state: "detached"});
  ok("the dashboard drops ann from the holders");
  check((await seatsInUse()) === 1, "the server counts 1 seat in use");

  // --- a cut socket: cara's tab heartbeats over HTTP at once, then gets its socket back
  const caraLive = () => cara.page.evaluate(() => window.demoLicence && window.demoLicence.state().live);
  await waitUntil("cara's tab heartbeats over its socket", 5000, async () => {
    const live = await caraLive();
    return {done: live === true, seen: live};
  });
  const httpBeats = [];
  cara.page.on("response", (r) => {
    if (r.url().endsWith("/heartbeat")) httpBeats.push(r.status());
  });
  const relays = cara.relays.length;
  const cut = cara.relays[relays - 1];
  await cut.server.close({code: 1001, reason: "going away"}).catch(() => {});
  await cut.page.close({code: 1001, reason: "going away"}).catch(() => {});
  await waitUntil("cara's tab heartbeats over HTTP once its socket is cut", 5000, async () => (
    {done: httpBeats.length > 0, seen: httpBeats}));
  check(httpBeats[0] === 200, "the server answers that HTTP heartbeat 200: cara keeps her seat", httpBeats);
  await waitUntil("cara's tab gets its socket back", 10000, async () => {
    const live = await caraLive();
    return {done: live === true && cara.relays.length > relays, seen: {live, relays: cara.relays.length}};
  });
  await cara.answered();
  ok("cara's tab reconnects and heartbeats on its socket again");
  check((await seatsInUse()) === 1 && httpBeats.length === 1,
    "the cut changed nothing on the server: 1 seat in use, one HTTP heartbeat", httpBeats);

  // --- a licence changed elsewhere shows on the dashboard at once: the stream brings it
  // (it polls only every 30 s while the stream is up; 10 s leaves room for a slow machine)
  await admin("PATCH", `/v1/tenants/${TENANT}`, {seats: 3});
  await waitUntil("the dashboard shows a licence changed through the API within 10 s", 10000, async () => {
    const seen = (await meter.innerText()).trim();
    return {done: seen === "1 / 3", seen};
  });
  ok("the dashboard shows a licence changed through the API at once");
  await admin("PATCH", `/v1/tenants/${TENANT}`, {seats: 2});
  await waitUntil("the dashboard shows the licence put back", 10000, async () => {
    const seen = (await meter.innerText()).trim();
    return {done: seen === "1 / 2", seen};
  });

  // --- a dashboard that cannot open the stream polls instead
  const polled = await openContext(browser, "dashboard-polling");
  await polled.context.route("**/events/stream", (route) => route.abort("failed"));
  await polled.page.goto(`${base}/`);
  await polled.page.getByLabel("Admin token or tenant API key").fill(adminToken);
  await polled.page.locator("#signin-submit").click();
  await polled.page.locator('#live[data-mode="poll"]').waitFor({state: "attached"});
  await waitUntil("a dashboard without its stream says it polls", 5000, async () => {
    const seen = await polled.page.locator("#live-text").innerText();
    return {done: /^Live · .* · polling$/.test(seen), seen};
  });
  ok("a dashboard whose stream cannot open polls, and says so");
  await polled.context.close();

  // --- the screenshot: the dashboard with its charts drawn
  await dash.page.locator("#chart-seats canvas").waitFor();
  await dash.page.locator("#chart-refusals canvas").waitFor();
  await dash.page.screenshot({path: screenshotPath, fullPage: true});
  ok(`the dashboard screenshot is saved to ${screenshotPath}`);

  // --- with a reload grace, a reload at a full tenant keeps the seat
  // (with the licence set to refuse at its limit, so that a login there is refused)
  await admin("PATCH", `/v1/tenants/${TENANT}`, {reload_grace_secs: 60, on_limit: "refuse"});
  let dan = await openContext(browser, "dan");
  check((await demoLogin(dan, "dan")) === "held", "dan takes the second seat");
  check((await seatsInUse()) === 2, "both seats are held");
  // Dan's page goes away (its pagehide beacon releases the session) and comes back.
  await dan.page.close({runBeforeUnload: true});
  await waitUntil("dan's released tab leaves one session live within 5 s", 5000, async () => {
    const view = await admin("GET", `/v1/tenants/${TENANT}`);
    return {done: view.sessions === 1, seen: view.sessions};
  });
  check((await seatsInUse()) === 2, "dan's released seat is kept for him: 2 seats still held");
  const kept = await admin("GET", `/v1/tenants/${TENANT}`);
  check(kept.held_for_reload === 1, "the tenant view counts dan's seat as kept for a reload", JSON.stringify(kept));
  const gail = await openContext(browser, "gail");
  check((await demoLogin(gail, "gail")) === "licence_limit_reached",
    "meanwhile gail is refused: the kept seat is nobody else's");
  const refusalText = await gail.page.getByTestId("refusal").innerText();
  check(/All licences are in use/.test(refusalText) && /2 of 2/.test(refusalText),
    "gail sees a clear refusal naming the limit", refusalText);
  check(/A seat may free at \d{2}:\d{2}:\d{2} \(in /.test(refusalText) && !/at most/.test(refusalText),
    "gail's refusal states the moment a seat may free", refusalText);
  await gail.page.screenshot({path: shot("demo-refusal.png")});
  dan = await openContext(browser, "dan-again");
  check((await demoLogin(dan, "dan")) === "held", "dan's reloaded page gets his seat back at a full tenant");
  await admin("PATCH", `/v1/tenants/${TENANT}`, {reload_grace_secs: null, on_limit: "queue"});
  await dan.page.close({runBeforeUnload: true});
  await gail.context.close();
  await waitUntil("dan's seat frees within 5 s once the licence keeps none", 5000, async () => {
    const seen = await seatsInUse();
    return {done: seen === 1, seen};
  });
  ok("without the grace, closing dan's tab frees his seat again");

  // --- "? → Release licence" in cara's tab ends her session as released
  await cara.page.getByRole("button", {name: "Help"}).click();
  await cara.page.getByRole("menuitem", {name: "Release licence"}).click();
  await cara.page.locator('[data-testid="session-ended"][data-reason="released"]').waitFor({state: "visible"});
  ok("cara's ? → Release licence ends her session as released");
  check((await seatsInUse()) === 0 && (await line()) === "", "no seat is in use and nobody waits at the end");

  await checkQueueClient(browser);
  await checkQueueSocket(browser);

  check(problems.length === 0, "no page error and no request to another host", problems.join("; "));
}

// The dashboard's view of the line: fay waits at the full demo tenant, the tenants
// table and the tenant's waitlist show her, and both empty when she leaves the line
// (brought by the event stream, as the rest of the dashboard).
async function checkDashboardLine(browser, page) {
  const fay = await openContext(browser, "fay");
  try {
    const queueCell = page.locator(`#tenants-body tr[data-tenant="${TENANT}"] .c-queue`);
    check((await queueCell.innerText()).trim() === "0", "the tenants table shows nobody in line for the demo tenant",
      await queueCell.innerText());
    check((await demoLogin(fay, "fay")) === "queued", "fay, at the limit, is put in line");
    const row = page.locator('#queue-body tr[data-user="fay"]');
    await row.waitFor({timeout: 10000});
    const cells = await Promise.all([".c-place", ".c-client", ".c-waiting", ".c-claim"]
      .map((q) => row.locator(q).innerText()));
    check(cells[0].trim() === "1" && cells[1].trim() === "demo" && /^\d+ s$/.test(cells[2].trim()) &&
        cells[3].trim() === "—",
      "the dashboard lists fay in the demo tenant's line: 1st, from the demo client, waiting seconds, no seat held yet",
      JSON.stringify(cells));
    await waitUntil("the tenants table shows 1 in line", 10000, async () => {
      const seen = (await queueCell.innerText()).trim();
      return {done: seen === "1", seen};
    });
    ok("the tenants table shows the demo tenant's line: 1 waiting");
    check(/^1 waiting/.test(await page.locator("#queue-summary").innerText()),
      "the waitlist's summary says 1 waiting", await page.locator("#queue-summary").innerText());
    await page.locator("#queue-panel").screenshot({path: shot("dashboard-queue.png")});
    await fay.page.getByRole("button", {name: "Leave the line"}).click();
    await row.waitFor({state: "detached", timeout: 10000});
    await waitUntil("the tenants table shows nobody in line again", 10000, async () => {
      const seen = (await queueCell.innerText()).trim();
      return {done: seen === "0", seen};
    });
    check(await page.locator("#queue-empty").isVisible(), "when fay leaves the line, the dashboard's line empties");
  } finally {
    await fay.context.close();
  }
}

// Usher.queue on a page of the server, against the real server, on tenants of its own:
// positions reported, a claim on ready that gives a working session handle, a claim
// missed by a tab heartbeating slower than the claim window, a ticket expired by a tab
// heartbeating slower than the idle timeout, and a ticket cancelled.
async function checkQueueClient(browser) {
  const CLAIM = "queue-claim";
  const EXPIRY = "queue-expiry";
  const claimKey = (await admin("PUT", `/v1/tenants/${CLAIM}`,
    {model: "concurrent", seats: 1, on_limit: "queue", queue_claim_secs: 4, idle_timeout_secs: 60})).api_key;
  const expiryKey = (await admin("PUT", `/v1/tenants/${EXPIRY}`,
    {model: "concurrent", seats: 1, on_limit: "queue", idle_timeout_secs: 6})).api_key;
  const tab = await openContext(browser, "queue-client");
  try {
    const login = async (tenant, key, user) => {
      const response = await fetch(`${base}/v1/tenants/${tenant}/sessions`, {
        method: "POST",
        headers: {Authorization: `Bearer ${key}`, "Content-Type": "application/json"},
        body: JSON.stringify({user, client: "queue-client"}),
      });
      return {status: response.status, body: await response.json()};
    };
    const deletes = [];
    tab.page.on("response", (r) => {
      if (r.request().method() === "DELETE" && r.url().includes("/v1/tickets/")) deletes.push(r.status());
    });
    await tab.page.goto(`${base}/demo/`);
    await tab.page.addScriptTag({url: `${base}/usher.js`});
    await tab.page.evaluate(() => {
      window.seen = {};
      window.waits = {};
      window.licences = {};
      window.enqueue = (name, ticket, options) => {
        const log = window.seen[name] = [];
        window.waits[name] = Usher.queue(ticket, {
          ...options,
          onPosition: (n) => log.push(["position", n]),
          onReady: (licence, login) => {
            window.licences[name] = licence;
            log.push(["ready", login.user, login.tenant]);
          },
          onEnded: (reason) => log.push(["ended", reason]),
          attach: {onEnded: (reason) => log.push(["session ended", reason])},
        });
      };
    });
    const seen = (name) => tab.page.evaluate((n) => window.seen[n], name);
    const until = (description, name, predicate, timeoutMs = 20000) => waitUntil(description, timeoutMs, async () => {
      const log = await seen(name);
      return {done: predicate(log), seen: log};
    });

    // --- positions, and a claim on ready that gives a working session
    const ann = await login(CLAIM, claimKey, "ann");
    check(ann.status === 201, "ann takes the one seat of the queueing tenant", JSON.stringify(ann));
    const bob = await login(CLAIM, claimKey, "bob");
    const cara = await login(CLAIM, claimKey, "cara");
    check(bob.status === 202 && bob.body.position === 1 && cara.status === 202 && cara.body.position === 2,
      "bob and cara are put in line, 1st and 2nd", JSON.stringify([bob, cara]));
    check(bob.body.heartbeat_interval_secs === 1,
      "a 4 s claim window asks the ticket to heartbeat every second", JSON.stringify(bob.body));
    await tab.page.evaluate(([b, c]) => {
      window.enqueue("bob", b, {});
      // A tab that heartbeats slower than the claim window, over HTTP only (on its socket
      // it would be told at once that a seat is held for it): it will miss its seat.
      window.enqueue("cara", c, {heartbeatIntervalSecs: 10, live: false});
    }, [bob.body, cara.body]);
    check(JSON.stringify(await seen("bob")) === '[["position",1]]' &&
        JSON.stringify(await seen("cara")) === '[["position",2]]',
      "Usher.queue reports each ticket's place at once", JSON.stringify([await seen("bob"), await seen("cara")]));
    const caraBeats = [];
    tab.page.on("response", (r) => {
      if (r.url().endsWith(`/v1/tickets/${cara.body.ticket}/heartbeat`)) caraBeats.push(Date.now());
    });
    const released = await fetch(`${base}/v1/sessions/${ann.body.session}/release`, {method: "POST"});
    check(released.status === 204, "ann releases her seat", String(released.status));
    await until("bob's ticket is claimed and onReady called", "bob", (log) => log.some((e) => e[0] === "ready"));
    const bobLog = await seen("bob");
    check(JSON.stringify(bobLog) === `[["position",1],["ready","bob","${CLAIM}"]]`,
      "bob's onReady gets his session, once, after his place", JSON.stringify(bobLog));
    const sessions = (await admin("GET", `/v1/tenants/${CLAIM}/sessions`)).sessions;
    check(sessions.length === 1 && sessions[0].user === "bob", "the server's session list has bob's session",
      JSON.stringify(sessions));
    const beat = await tab.page.evaluate(() => window.licences.bob.state());
    check(beat.ended === null && beat.fence > 0, "bob's session handle is live, with its fence", JSON.stringify(beat));
    await until("cara moves up to 1st", "cara", (log) => log.some((e) => e[0] === "position" && e[1] === 1));
    ok("cara's onPosition reports 1st once bob has claimed");

    // --- a claim missed: bob releases right after one of cara's heartbeats, so her next
    // comes some 10 s later, long after the 4 s claim window
    const beats = caraBeats.length;
    await waitUntil("cara's tab heartbeats her ticket", 15000, async () => ({done: caraBeats.length > beats,
      seen: caraBeats.length}));
    const result = await tab.page.evaluate(() => window.licences.bob.release());
    check(result === "released", "bob's claimed session releases through its handle", result);
    await until("cara's ticket ends as claim_missed", "cara", (log) => log.some((e) => e[0] === "ended"), 30000);
    const caraLog = await seen("cara");
    check(caraLog[caraLog.length - 1][1] === "claim_missed" && !caraLog.some((e) => e[0] === "ready"),
      'a tab too slow to claim its seat gets onEnded("claim_missed")', JSON.stringify(caraLog));

    // --- a ticket cancelled: 204, then 410 cancelled
    const dan = await login(CLAIM, claimKey, "dan");
    const eve = await login(CLAIM, claimKey, "eve");
    check(dan.status === 201 && eve.status === 202, "dan takes the seat and eve waits", JSON.stringify([dan, eve]));
    await tab.page.evaluate((e) => window.enqueue("eve", e, {}), eve.body);
    const cancelled = await tab.page.evaluate(() => window.waits.eve.cancel());
    check(cancelled === "cancelled" && deletes.join() === "204",
      "eve's cancel() is answered 204 and resolves to \"cancelled\"", JSON.stringify({cancelled, deletes}));
    const eveTicket = await ticketProbe(eve.body.ticket);
    check(eveTicket.status === 410 && eveTicket.body.reason === "cancelled",
      "eve's ticket then answers 410 cancelled", JSON.stringify(eveTicket));
    check(JSON.stringify(await seen("eve")) === '[["position",1],["ended","cancelled"]]',
      'eve\'s onEnded("cancelled") is called once', JSON.stringify(await seen("eve")));

    // --- a ticket expired: a tab heartbeating slower than the 6 s idle timeout
    const fay = await login(EXPIRY, expiryKey, "fay");
    await tab.page.evaluate((f) => {
      window.fay = Usher.attach({session: f.session, heartbeatIntervalSecs: f.heartbeat_interval_secs,
        idleTimeoutSecs: f.idle_timeout_secs});
    }, fay.body);
    const gus = await login(EXPIRY, expiryKey, "gus");
    check(fay.status === 201 && gus.status === 202, "fay holds the seat (her tab heartbeating) and gus waits",
      JSON.stringify([fay.status, gus.status]));
    await tab.page.evaluate((g) => window.enqueue("gus", g, {heartbeatIntervalSecs: 12}), gus.body);
    await until("gus's ticket ends as expired", "gus", (log) => log.some((e) => e[0] === "ended"), 30000);
    check(JSON.stringify(await seen("gus")) === '[["position",1],["ended","expired"]]',
      'a ticket not heartbeated within the idle timeout gets onEnded("expired")', JSON.stringify(await seen("gus")));
    check((await tab.page.evaluate(() => window.fay.state().ended)) === null, "while fay's heartbeating tab keeps her seat");
    await tab.page.evaluate(() => window.fay.release());
  } finally {
    await tab.context.close();
    await admin("DELETE", `/v1/tenants/${CLAIM}`).catch(() => {});
    await admin("DELETE", `/v1/tenants/${EXPIRY}`).catch(() => {});
  }
}

// A waiting tab on its socket (GET /v1/tickets/{ticket}/live), against the real server:
// told its new place the moment the one ahead leaves, and signed in by itself the moment
// a seat frees, long before its next heartbeat (every 15 s under a 60 s claim window)
// would have said so; it sends no heartbeat meanwhile, by HTTP or socket.
async function checkQueueSocket(browser) {
  const LIVE = "queue-live";
  const key = (await admin("PUT", `/v1/tenants/${LIVE}`,
    {model: "concurrent", seats: 1, on_limit: "queue", idle_timeout_secs: 600})).api_key;
  const tab = await openContext(browser, "queue-socket");
  try {
    const login = async (user) => {
      const response = await fetch(`${base}/v1/tenants/${LIVE}/sessions`, {
        method: "POST",
        headers: {Authorization: `Bearer ${key}`, "Content-Type": "application/json"},
        body: JSON.stringify({user, client: "queue-socket"}),
      });
      return {status: response.status, body: await response.json()};
    };
    const httpBeats = [];
    tab.page.on("request", (r) => {
      if (/\/v1\/tickets\/[^/]+\/heartbeat$/.test(r.url())) httpBeats.push(r.url());
    });
    await tab.page.goto(`${base}/demo/`);
    await tab.page.addScriptTag({url: `${base}/usher.js`});

    const ann = await login("ann");
    const bob = await login("bob");
    const cara = await login("cara");
    check(ann.status === 201 && bob.status === 202 && cara.status === 202 && cara.body.position === 2,
      "ann holds the one seat; bob and cara wait, 1st and 2nd", JSON.stringify([ann.status, bob.body, cara.body]));
    check(cara.body.heartbeat_interval_secs === 15, "a 60 s claim window asks a ticket to heartbeat every 15 s",
      JSON.stringify(cara.body));
    const started = Date.now();
    await tab.page.evaluate((c) => {
      window.caraLog = [];
      window.cara = Usher.queue(c, {
        onPosition: (n) => window.caraLog.push(["position", n]),
        onReady: (licence, login) => {
          window.caraLicence = licence;
          window.caraLog.push(["ready", login.user]);
        },
        onEnded: (reason) => window.caraLog.push(["ended", reason]),
        attach: {onEnded: (reason) => window.caraLog.push(["session ended", reason])},
      });
    }, cara.body);
    const caraLog = () => tab.page.evaluate(() => window.caraLog);
    await waitUntil("cara's ticket socket is live", 5000, async () => {
      const state = await tab.page.evaluate(() => window.cara.state());
      return {done: state.live === true, seen: state};
    });
    ok("cara's waiting tab is on its socket: state().live is true");

    // bob leaves the line: cara is told she is 1st, pushed on her socket.
    const left = await fetch(`${base}/v1/tickets/${encodeURIComponent(bob.body.ticket)}`, {method: "DELETE"});
    check(left.status === 204, "bob leaves the line", String(left.status));
    const leftAt = Date.now();
    await waitUntil("cara is told she is 1st", 5000, async () => {
      const log = await caraLog();
      return {done: log.some((e) => e[0] === "position" && e[1] === 1), seen: log};
    });
    const movedMs = Date.now() - leftAt;
    check(movedMs < 3000 && JSON.stringify(await caraLog()) === '[["position",2],["position",1]]',
      "cara's tab is told its new place within 3 s, pushed on the socket", `${movedMs} ms, ${JSON.stringify(await caraLog())}`);

    // ann's seat frees: cara's ticket is made ready, pushed, and her tab claims it.
    const released = await fetch(`${base}/v1/sessions/${ann.body.session}/release`, {method: "POST"});
    check(released.status === 204, "ann releases her seat", String(released.status));
    const releasedAt = Date.now();
    await waitUntil("cara's tab claims her seat", 5000, async () => {
      const log = await caraLog();
      return {done: log.some((e) => e[0] === "ready"), seen: log};
    });
    const claimedMs = Date.now() - releasedAt;
    check(claimedMs < 3000, "cara's tab is signed in by itself within 3 s of the seat freeing", `${claimedMs} ms`);
    const sent = tab.frames.sent.filter((f) => f.type === "heartbeat").length;
    check(Date.now() - started < 13000 && httpBeats.length === 0 && sent === 0,
      "before her first heartbeat was due: no ticket heartbeat went, by HTTP or socket",
      JSON.stringify({ms: Date.now() - started, http: httpBeats.length, frames: sent}));
    const state = await tab.page.evaluate(() => window.cara.state());
    check(state.ended === "claimed" && state.live === false, "the queue handle says claimed, its socket closed",
      JSON.stringify(state));
    const sessions = (await admin("GET", `/v1/tenants/${LIVE}/sessions`)).sessions;
    check(sessions.length === 1 && sessions[0].user === "cara", "the server's session list has cara's session",
      JSON.stringify(sessions));
    const log = await caraLog();
    check(!log.some((e) => e[0] === "ended"), "and the ticket's onEnded is not called", JSON.stringify(log));
    await tab.page.evaluate(() => window.caraLicence.release());
  } finally {
    await tab.context.close();
    await admin("DELETE", `/v1/tenants/${LIVE}`).catch(() => {});
  }
}

// JSON with its keys in order, so two answers compare whatever order their fields are in.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

// The licence editor's Preview asks for a dry run and shows what the change would do
// without saving it; Save sends the seat policies filled in, and only those. The
// licence is as it was at the end, so the later steps see the two seats.
async function checkLicencePreview(page) {
  const before = await admin("GET", `/v1/tenants/${TENANT}`);
  check(before.seats === 2 && before.seats_in_use === 2 && !("min_hold_secs" in before) &&
      !("max_sessions_per_user" in before),
    "before the preview the demo tenant holds 2 of its 2 seats, with no seat policy", JSON.stringify(before));
  const licence = {
    model: "concurrent", seats: 2, seat_per: "user",
    idle_timeout_secs: before.idle_timeout_secs, max_users: before.max_users, on_limit: "queue",
  };
  const form = page.locator("#licence-form");
  const editor = () => page.evaluate(() => ["licence-model", "licence-seats", "licence-min-hold", "licence-max-sessions"]
    .map((id) => document.getElementById(id).value));
  await page.waitForFunction((shown) => ["licence-model", "licence-seats", "licence-min-hold", "licence-max-sessions"]
    .map((id) => document.getElementById(id).value).join("|") === shown, "concurrent|2||");
  check(await page.locator("#licence-concurrent-policies").isVisible() &&
      await page.locator("#licence-min-hold").isVisible() && await page.locator("#licence-max-sessions").isVisible(),
    "the licence editor shows the demo tenant's licence and the concurrent model's seat policies",
    JSON.stringify(await editor()));

  // A PUT of the demo tenant's licence from the editor: its body, once answered.
  const put = async (button, dryRun) => {
    const url = `${base}/v1/tenants/${TENANT}${dryRun ? "?dry_run=true" : ""}`;
    const answered = page.waitForResponse((r) => r.request().method() === "PUT" && r.url() === url);
    await page.locator(button).click();
    const response = await answered;
    check(response.status() === 200, `${dryRun ? "the dry run" : "the save"} is answered 200`, await response.text());
    return response.request().postDataJSON();
  };

  // --- Preview: seats 2 → 1 while two are held
  await form.getByLabel("Seats", {exact: true}).fill("1");
  const previewBody = await put("#licence-preview", true);
  check(canonical(previewBody) === canonical({...licence, seats: 1}),
    "Preview sends the licence in the editor, only the fields that are set, with ?dry_run=true",
    JSON.stringify(previewBody));
  const result = page.getByTestId("licence-preview-result");
  await result.waitFor({state: "visible"});
  const effect = async (id) => [(await page.getByTestId(id).innerText()).trim(),
    await page.getByTestId(id).getAttribute("data-count")];
  const effects = [await effect("preview-seats-over"), await effect("preview-users-over"),
    await effect("preview-named-lost")];
  check(canonical(effects) === canonical([["1 seat held past the new limit", "1"],
    ["No account past max users", "0"], ["No named seat lost", "0"]]),
  "the preview shows 1 seat held past the new limit, no account past max users, no named seat lost",
  JSON.stringify(effects));
  const [headline, wouldBe, held] = await Promise.all(["preview-headline", "preview-licence", "preview-held"]
    .map((id) => page.locator(`#${id}`).innerText()));
  check(headline === "nothing changed. Saving would make it:" &&
      wouldBe.startsWith("Concurrent users · 1 seat · a seat per user · idle timeout ") &&
      held === `Under it: 2 seats in use · 2 sessions · ${before.users} user accounts` && (await result.getAttribute("data-creates")) === "false",
    "the preview shows the tenant as it would be (1 seat, 2 in use) and that nothing changed",
    JSON.stringify({headline, wouldBe, held}));
  await page.locator("#licence-panel").screenshot({path: shot("licence-preview.png")});
  const after = await admin("GET", `/v1/tenants/${TENANT}`);
  check(canonical(after) === canonical(before), "after the preview the tenant reads exactly as before",
    JSON.stringify(after));
  const holding = (await admin("GET", `/v1/tenants/${TENANT}/sessions`)).sessions.map((s) => s.user).sort();
  check(canonical(holding) === canonical(["ann", "cara"]), "ann and cara still hold their seats",
    JSON.stringify(holding));

  // --- Save policies: the seats back to 2, a minimum hold, a cap on sessions and a
  // reserved seat (which a licence that queues does not take: it refuses at the limit)
  await form.getByLabel("Seats", {exact: true}).fill("2");
  check(await result.isHidden(), "a change in the editor takes the stale preview away");
  await form.getByLabel("At the limit").selectOption("refuse");
  await form.getByLabel("Min hold (s)").fill("120");
  await form.getByLabel("Max sessions per user").fill("3");
  await form.getByLabel("Reserved seats").fill("support=1");
  const policies = {min_hold_secs: 120, max_sessions_per_user: 3, reserve: {support: 1}};
  const {on_limit: _queue, ...refusing} = licence;
  const {on_limit: _queued, ...refusingBefore} = before;
  const saveBody = await put("#licence-save", false);
  check(canonical(saveBody) === canonical({...refusing, ...policies}),
    "Save sends the policies filled in", JSON.stringify(saveBody));
  const saved = await admin("GET", `/v1/tenants/${TENANT}`);
  check(canonical(saved) === canonical({...refusingBefore, ...policies, group_seats: {support: 0}}),
    "the saved policies read back through the API: min hold 120 s, at most 3 sessions per user, a seat for support (none of its seats held)",
    JSON.stringify(saved));
  const holdersSummary = async () => (await page.locator("#holders-summary").innerText()).trim();
  await page.waitForFunction(() => document.getElementById("holders-summary").textContent.endsWith(" · support 0 (1 reserved)"));
  ok(`the holders' summary counts the reserved group's seats: ${await holdersSummary()}`);
  await page.waitForFunction((notice) => document.getElementById("notice-text").textContent === notice &&
    document.getElementById("licence-min-hold").value === "120" &&
    document.getElementById("licence-reserve").value === "support=1" &&
    document.getElementById("licence-max-sessions").value === "3", `Licence of ${TENANT} saved.`);
  ok("the dashboard says the licence is saved and fills the policy fields from the tenant view");

  // --- Back to the line, with a claim window of its own
  await form.getByLabel("Min hold (s)").fill("");
  await form.getByLabel("Max sessions per user").fill("");
  await form.getByLabel("Reserved seats").fill("");
  check(await page.locator("#licence-queue-claim-field").isHidden(), "the claim window is offered only for a line");
  await form.getByLabel("At the limit").selectOption("queue");
  await form.getByLabel("Claim window (s)").fill("30");
  const claimBody = await put("#licence-save", false);
  check(canonical(claimBody) === canonical({...licence, queue_claim_secs: 30}),
    "Save sends the line and its claim window", JSON.stringify(claimBody));
  const claimed = await admin("GET", `/v1/tenants/${TENANT}`);
  check(canonical(claimed) === canonical({...before, queue_claim_secs: 30}),
    "the licence reads back queueing, with a 30 s claim window", JSON.stringify(claimed));
  await page.waitForFunction(() => document.getElementById("licence-queue-claim").value === "30" &&
    !document.getElementById("licence-save").disabled);

  // --- Clearing the fields puts the defaults back
  await form.getByLabel("Claim window (s)").fill("");
  const restoreBody = await put("#licence-save", false);
  check(canonical(restoreBody) === canonical(licence), "Save leaves out the fields left empty",
    JSON.stringify(restoreBody));
  const restored = await admin("GET", `/v1/tenants/${TENANT}`);
  check(canonical(restored) === canonical(before), "with the fields cleared, the licence reads exactly as before",
    JSON.stringify(restored));
  await page.waitForFunction(() => document.getElementById("licence-min-hold").value === "" &&
    document.getElementById("licence-max-sessions").value === "" && !document.getElementById("licence-save").disabled);

  // --- A new tenant: the policies shown are the model's, and a preview creates nothing
  const NEW = "preview-check";
  await page.locator("#new-tenant").click();
  await form.getByLabel("Tenant id").fill(NEW);
  const shown = async () => Promise.all(["#licence-concurrent-policies", "#licence-min-hold-field", "#licence-max-sessions"]
    .map((q) => page.locator(q).isVisible()));
  await form.getByLabel("Model").selectOption("named");
  const named = await shown();
  await form.getByLabel("Model").selectOption("records");
  const records = await shown();
  check(canonical([named, records]) === canonical([[false, false, true], [false, false, true]]),
    "for the named and records models the editor offers only the cap on sessions per user",
    JSON.stringify({named, records}));
  await form.getByLabel("Max sessions per user").fill("2");
  const answered = page.waitForResponse((r) => r.url() === `${base}/v1/tenants/${NEW}?dry_run=true`);
  await page.getByTestId("licence-preview").click();
  const created = await answered;
  check(canonical(created.request().postDataJSON()) ===
      canonical({model: "records", idle_timeout_secs: 600, max_sessions_per_user: 2}),
    "a new tenant's preview sends the records licence with its cap", created.request().postData());
  await page.getByTestId("licence-preview-result").waitFor({state: "visible"});
  const createText = await page.getByTestId("licence-preview-result").innerText();
  check(createText.includes(`would create the tenant ${NEW}`) &&
      createText.includes("Records-based · no seat limit · idle timeout 10 min · at most 999 users · at most 2 sessions per user") &&
      (await page.getByTestId("licence-preview-result").getAttribute("data-creates")) === "true",
    "the preview of a new tenant says it would create the tenant, and with what licence", createText);
  const missing = await fetch(`${base}/v1/tenants/${NEW}`, {headers: {Authorization: `Bearer ${adminToken}`}});
  check(missing.status === 404, "the preview created no tenant", String(missing.status));
  await page.locator("#licence-cancel").click();
  check(await page.getByTestId("licence-preview-result").isHidden(), "Cancel takes the preview away");
  await page.getByTestId(`select-tenant-${TENANT}`).click();
  await page.locator('#holders-body tr[data-user="ann"]').waitFor();
}

// The lists are paged at most 1000 a page: the dashboard follows next_cursor to the
// end, for sessions and for users.
async function checkEveryPageIsListed(page) {
  const PAGED = "paging-check";
  const COUNT = 1003;
  const created = await admin("PUT", `/v1/tenants/${PAGED}`, {model: "records", max_users: 2000});
  try {
    for (let from = 0; from < COUNT; from += 100) {
      const logins = [];
      for (let i = from; i < Math.min(COUNT, from + 100); i++) {
        logins.push(fetch(`${base}/v1/tenants/${PAGED}/sessions`, {
          method: "POST",
          headers: {Authorization: `Bearer ${created.api_key}`, "Content-Type": "application/json"},
          body: JSON.stringify({user: `user-${String(i).padStart(4, "0")}`}),
        }).then((r) => { if (r.status !== 201) throw new CheckFailed(`login ${i} answered ${r.status}`); }));
      }
      await Promise.all(logins);
    }
    await page.getByTestId(`select-tenant-${PAGED}`).click();
    await waitUntil(`the dashboard lists all ${COUNT} sessions and users`, 20000, async () => {
      const seen = [await page.locator("#holders-body tr").count(), await page.locator("#users-body tr").count()];
      return {done: seen[0] === COUNT && seen[1] === COUNT, seen};
    });
    ok(`the dashboard lists every page of sessions and users (${COUNT} of each)`);
  } finally {
    await admin("DELETE", `/v1/tenants/${PAGED}`).catch(() => {});
    await page.getByTestId(`select-tenant-${TENANT}`).click();
    await page.locator('#holders-body tr[data-user="ann"]').waitFor();
  }
}

function shot(name) {
  return path.join(path.dirname(screenshotPath), name);
}

const TIME_FORMAT = /^(\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2}$/;

// The days since the tenant was created, its first day first (UTC days, as the report).
async function daysSinceCreation(tenant) {
  const first = (await admin("GET", `/v1/tenants/${tenant}/events?limit=1`)).events[0];
  const created = Date.parse(first.at.slice(0, 10) + "T00:00:00Z");
  const today = Date.parse(new Date().toISOString().slice(0, 10) + "T00:00:00Z");
  return {first: first.at.slice(0, 10), count: Math.round((today - created) / 86400000) + 1};
}

// At 1440 px: the usage report starts at the tenant's creation day, its table fits
// its card, and every time on the page is written the same way.
async function checkDashboardLayout(page) {
  const {first, count} = await daysSinceCreation(TENANT);
  const panel = page.locator("#usage-panel");
  await page.waitForFunction(() => document.querySelector("#usage-panel").dataset.days);
  check((await panel.getAttribute("data-days")) === String(count) &&
      (await panel.getAttribute("data-first-day")) === first,
    `the usage chart starts at the tenant's creation day (${first}, ${count} day(s))`,
    `${await panel.getAttribute("data-first-day")}, ${await panel.getAttribute("data-days")} day(s)`);
  await page.locator(".usage-details summary").click();
  const days = await page.locator("#usage-body tr .c-day").allInnerTexts();
  check(days.length === count && days[days.length - 1] === first,
    "the usage table lists the days since the tenant's creation, no earlier", JSON.stringify(days));
  const fit = await page.evaluate(() => {
    const card = document.querySelector("#usage-panel").getBoundingClientRect();
    const wrap = document.querySelector("#usage-table").parentElement;
    const table = document.querySelector("#usage-table").getBoundingClientRect();
    return {card: [card.left, card.right], table: [table.left, table.right],
      scroll: wrap.scrollWidth, client: wrap.clientWidth};
  });
  check(fit.table[0] >= fit.card[0] && fit.table[1] <= fit.card[1] && fit.scroll <= fit.client,
    "the usage table fits its card at 1440 px, without scrolling sideways", JSON.stringify(fit));
  await page.screenshot({path: shot("dashboard-usage-1440.png"), fullPage: true});

  const times = await page.locator("[data-time]").allInnerTexts();
  const live = (await page.locator("#live-text").innerText()).trim();
  check(times.length >= 6 && times.every((t) => TIME_FORMAT.test(t.trim())) &&
      /^Live · \d{2}:\d{2}:\d{2}$/.test(live),
    "every time on the dashboard is written HH:MM:SS (with YYYY-MM-DD before it on other days)",
    JSON.stringify({times, live}));
  await page.locator(".usage-details summary").click();
}

// At 390 px: the header stays on one line, and every holder's Release and Log out are
// in view without scrolling sideways.
async function checkPhoneLayout(browser) {
  const phone = await openContext(browser, "dashboard-390", {viewport: {width: 390, height: 844}});
  try {
    await phone.page.goto(`${base}/`);
    await phone.page.getByLabel("Admin token or tenant API key").fill(adminToken);
    await phone.page.locator("#signin-submit").click();
    await phone.page.getByTestId(`select-tenant-${TENANT}`).click();
    await phone.page.locator('#holders-body tr[data-user="ann"]').waitFor();
    await phone.page.locator('#holders-body tr[data-user="cara"]').waitFor();
    const header = await phone.page.evaluate(() => {
      const box = (q) => document.querySelector(q).getBoundingClientRect();
      const bar = box(".topbar"), brand = box(".brand"), out = box("#sign-out"), live = box("#live");
      const line = (b) => Math.round(b.top + b.height / 2);
      return {height: bar.height, lines: [line(brand), line(live), line(out)], right: out.right,
        width: window.innerWidth};
    });
    const [a, b, c] = header.lines;
    check(Math.max(a, b, c) - Math.min(a, b, c) <= 6 && header.height <= 60 && header.right <= header.width,
      "at 390 px the header stays on one line", JSON.stringify(header));
    const holders = await phone.page.evaluate(() => {
      const width = window.innerWidth;
      const wrap = document.querySelector("#holders-table").parentElement;
      const buttons = Array.from(document.querySelectorAll("#holders-body button")).map((button) => {
        const r = button.getBoundingClientRect();
        return {text: button.textContent, left: r.left, right: r.right, width: r.width};
      });
      return {width, buttons, page: document.documentElement.scrollWidth,
        wrap: [wrap.scrollWidth, wrap.clientWidth]};
    });
    const inView = holders.buttons.every((b) => b.width > 0 && b.left >= 0 && b.right <= holders.width);
    check(holders.buttons.filter((b) => /Release|Log out/.test(b.text)).length === 4 && inView &&
        holders.page <= holders.width && holders.wrap[0] <= holders.wrap[1],
      "at 390 px every holder's Release and Log out are in view without scrolling sideways",
      JSON.stringify(holders));
    await phone.page.screenshot({path: shot("dashboard-390.png"), fullPage: true});
    ok("the 390 px screenshot is saved");
  } finally {
    await phone.context.close();
  }
}

main().then(
  () => {
    console.log(`${passed} passed, 0 failed`);
  },
  (error) => {
    console.error(`FAIL: ${error instanceof CheckFailed ? error.message : error.stack || error}`);
    if (problems.length) console.error(`also seen in the pages: ${problems.join("; ")}`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
);
