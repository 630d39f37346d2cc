// End-to-end browser scenario against a running `usher serve --demo`, in a real
// headless Chromium (Debian's /usr/bin/chromium; playwright-core downloads no browser).
//
//   node tests/browser/scenario.mjs <base-url> <admin-token> <screenshot-path>
//
// The demo tenant `demo` has a 2-seat concurrent licence. Three people open the demo
// CRM in separate browser contexts: two are admitted, the third is refused. One of the
// admitted closes the tab, whose pagehide beacon frees the seat; the third then gets
// in. In the admin dashboard, the licence editor previews a change (a dry run: nothing
// changes) and saves seat policies, then puts the licence back; releasing a holder ends
// that tab's session, and the tab shows "revoked". Exits non-zero with a message on the
// first failed check.
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

// Types the name into the demo's sign-in form; resolves to "held" or the refusal code.
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
  await tab.page.locator('[data-testid="licence-state"][data-state="held"]:visible, [data-testid="refusal"]:visible')
    .first().waitFor();
  if (await held.isVisible()) {
    tab.session = (await response.json()).session;
    tab.heartbeatSecs = (await response.json()).heartbeat_interval_secs;
    return "held";
  }
  return (await refusal.getAttribute("data-code")) || "refused";
}

async function main() {
  // --- the demo tenant, clean and quick to notice ends
  const tenant = await admin("GET", `/v1/tenants/${TENANT}`);
  check(tenant.model === "concurrent" && tenant.seats === 2,
    "the demo tenant has a 2-seat concurrent licence", JSON.stringify(tenant));
  const leftovers = (await admin("GET", `/v1/tenants/${TENANT}/sessions`)).sessions;
  for (const s of leftovers) await admin("DELETE", `/v1/tenants/${TENANT}/sessions/${encodeURIComponent(s.id)}`);
  let restoreLicence = null;
  if (tenant.idle_timeout_secs > SCENARIO_IDLE_SECS) {
    restoreLicence = {
      model: tenant.model, seats: tenant.seats, seat_per: tenant.seat_per || "user",
      idle_timeout_secs: tenant.idle_timeout_secs, max_users: tenant.max_users,
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

  // --- two seats: two admitted, the third refused
  check((await demoLogin(ann, "ann")) === "held", "ann is admitted and the page shows the licence held");
  check((await demoLogin(bob, "bob")) === "held", "bob is admitted");
  const refused = await demoLogin(cara, "cara");
  check(refused === "licence_limit_reached", "cara is refused with licence_limit_reached", refused);
  const refusalText = await cara.page.getByTestId("refusal").innerText();
  check(/All licences are in use/.test(refusalText) && /2 of 2/.test(refusalText),
    "cara sees a clear refusal naming the limit", refusalText);
  check(/A seat may free at \d{2}:\d{2}:\d{2} \(in /.test(refusalText) && !/at most/.test(refusalText),
    "cara's refusal states the moment a seat may free", refusalText);
  await cara.page.screenshot({path: shot("demo-refusal.png")});
  check((await seatsInUse()) === 2, "the server counts 2 seats in use");
  check(/Licence held — session expires at/.test(await ann.page.getByTestId("licence-state").innerText()),
    "ann's page says the licence is held and when it expires");

  // --- closing bob's tab frees the seat through the pagehide beacon
  await bob.page.close({runBeforeUnload: true});
  await waitUntil("the seat of bob's closed tab frees within 5 s (before any idle expiry)", 5000, async () => {
    const seen = await seatsInUse();
    return {done: seen === 1, seen};
  });
  ok("closing bob's tab frees his seat");
  const probe = await fetch(`${base}/v1/sessions/${encodeURIComponent(bob.session)}/heartbeat`, {method: "POST"});
  const probeBody = await probe.json().catch(() => ({}));
  check(probe.status === 410 && probeBody.reason === "released",
    "bob's session ended as released (by the beacon), not by expiry", `${probe.status} ${JSON.stringify(probeBody)}`);

  check((await demoLogin(cara, "cara")) === "held", "cara can now log in");
  check((await seatsInUse()) === 2, "the server counts 2 seats in use again");

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
  await admin("PATCH", `/v1/tenants/${TENANT}`, {reload_grace_secs: 60});
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
  const erin = await openContext(browser, "erin");
  check((await demoLogin(erin, "erin")) === "licence_limit_reached",
    "meanwhile erin is refused: the kept seat is nobody else's");
  dan = await openContext(browser, "dan-again");
  check((await demoLogin(dan, "dan")) === "held", "dan's reloaded page gets his seat back at a full tenant");
  await admin("PATCH", `/v1/tenants/${TENANT}`, {reload_grace_secs: null});
  await dan.page.close({runBeforeUnload: true});
  await erin.context.close();
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
  check((await seatsInUse()) === 0, "no seat is in use at the end");

  check(problems.length === 0, "no page error and no request to another host", problems.join("; "));
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
    idle_timeout_secs: before.idle_timeout_secs, max_users: before.max_users,
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

  // --- Save policies: the seats back to 2, a minimum hold and a cap on sessions
  await form.getByLabel("Seats", {exact: true}).fill("2");
  check(await result.isHidden(), "a change in the editor takes the stale preview away");
  await form.getByLabel("Min hold (s)").fill("120");
  await form.getByLabel("Max sessions per user").fill("3");
  await form.getByLabel("Reserved seats").fill("support=1");
  const policies = {min_hold_secs: 120, max_sessions_per_user: 3, reserve: {support: 1}};
  const saveBody = await put("#licence-save", false);
  check(canonical(saveBody) === canonical({...licence, ...policies}),
    "Save sends the policies filled in", JSON.stringify(saveBody));
  const saved = await admin("GET", `/v1/tenants/${TENANT}`);
  check(canonical(saved) === canonical({...before, ...policies}),
    "the saved policies read back through the API: min hold 120 s, at most 3 sessions per user, a seat for support",
    JSON.stringify(saved));
  await page.waitForFunction((notice) => document.getElementById("notice-text").textContent === notice &&
    document.getElementById("licence-min-hold").value === "120" &&
    document.getElementById("licence-reserve").value === "support=1" &&
    document.getElementById("licence-max-sessions").value === "3", `Licence of ${TENANT} saved.`);
  ok("the dashboard says the licence is saved and fills the policy fields from the tenant view");

  // --- Clearing the fields puts the defaults back
  await form.getByLabel("Min hold (s)").fill("");
  await form.getByLabel("Max sessions per user").fill("");
  await form.getByLabel("Reserved seats").fill("");
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
