// The operators' console in a real browser: Debian's chromium, headless, driven by
// playwright-core (no browser download). Run by tests/integration/console_test.cc against a live
// stack whose hub has had a tag send with two failing handles and has one scheduled send:
//   sign in (a wrong key refused first), see a new send's numbers appear and match /metrics,
//   open the failing notification and see its failures, cancel the scheduled send, look up an
//   installation, sign out; requests without the session, or without the CSRF token, refused.
// Prints one JSON line of what it did for the C++ side to check further.
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const consoleUrl = env("PUSHHUB_CONSOLE_URL"); // https://127.0.0.1:<admin port>/
const restUrl = env("PUSHHUB_REST_URL"); // https://127.0.0.1:<rest port>/
const hub = env("PUSHHUB_HUB");
const keyName = env("PUSHHUB_KEY_NAME");
const key = env("PUSHHUB_KEY");
const failedSend = env("PUSHHUB_FAILED_SEND");
const scheduledSend = env("PUSHHUB_SCHEDULED_SEND");
const installationId = env("PUSHHUB_INSTALLATION");
const screenshots = process.env.PUSHHUB_SCREENSHOTS || "";

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// Azure's SharedAccessSignature, as the SDKs make it.
function sas(resource) {
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const encoded = encodeURIComponent(resource);
  const signature = createHmac("sha256", key).update(`${encoded}\n${expiry}`).digest("base64");
  return `SharedAccessSignature sr=${encoded}&sig=${encodeURIComponent(signature)}&se=${expiry}&skn=${keyName}`;
}

async function metric(request, labels) {
  const text = await (await request.get(new URL("/metrics", consoleUrl).href)).text();
  const line = text.split("\n").find((l) => l.startsWith(`pushhub_deliveries_total{${labels}} `));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function countOn(page, test) {
  const text = await page.locator(`[data-test="${test}"]`).textContent();
  return Number(text.split(" ").pop());
}

async function waitFor(what, probe, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function shot(page, name) {
  if (screenshots) await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"], // tests run as root
});
const result = {};
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  // No session: the page asks to sign in, and the API refuses.
  check((await context.request.get(new URL("/console/api/overview", consoleUrl).href)).status() === 401,
        "overview without a session");
  await page.goto(consoleUrl);
  await page.locator("#signin-view").waitFor({ state: "visible" });

  // A wrong key is refused, and no session is made.
  await page.fill("#signin-hub", hub);
  await page.fill("#signin-key-name", keyName);
  await page.fill("#signin-key", `${key}-wrong`);
  await page.click("#signin-form button[type=submit]");
  await waitFor("the refusal", async () => (await page.textContent("#signin-error")).includes("wrong"));
  check((await context.cookies()).length === 0, "a cookie after a wrong key");
  await shot(page, "console-signin");

  // The right connection string signs in; the cookie is HttpOnly, Secure, SameSite=Strict.
  await page.fill("#signin-connection", `Endpoint=sb://127.0.0.1/;SharedAccessKeyName=${keyName};SharedAccessKey=${key}`);
  await page.click("#signin-form button[type=submit]");
  await page.locator("#overview-view").waitFor({ state: "visible" });
  const [cookie] = await context.cookies();
  check(cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict", `cookie ${JSON.stringify(cookie)}`);
  check(!cookie.value.includes(key), "the key in the cookie");
  check(await page.evaluate(() => document.cookie) === "", "the page can read the session cookie");
  await waitFor("live updates", async () => (await page.textContent("#live-state")) === "live");
  await waitFor("the failed send listed", async () => page.locator(`[data-test="latest-${failedSend}"]`).count());

  // A new send through the Azure REST API: its numbers appear, equal to /metrics.
  const before = await countOn(page, "deliveries-apns-Success");
  const sent = await fetch(new URL(`${hub}/messages/?api-version=2015-01`, restUrl), {
    method: "POST",
    headers: {
      Authorization: sas(restUrl),
      "Content-Type": "application/json;charset=utf-8",
      "ServiceBusNotification-Format": "apple",
      "ServiceBusNotification-Tags": "console",
    },
    body: JSON.stringify({ aps: { alert: "from the browser test" } }),
  });
  check(sent.status === 201, `REST send answered ${sent.status}`);
  const location = sent.headers.get("location") || "";
  result.browserSend = location.split("/messages/")[1].split("?")[0];
  await waitFor("the new send's deliveries", async () => (await countOn(page, "deliveries-apns-Success")) >= before + 3);
  await waitFor("the new send listed", async () => page.locator(`[data-test="latest-${result.browserSend}"]`).count());
  const labels = `hub="${hub}",platform="apns",outcome=`;
  for (const outcome of ["Success", "ExpiredChannel", "WrongToken"]) {
    // The page refreshes every second; /metrics answers now: compare at a moment both agree on.
    await waitFor(`${outcome} equal to /metrics`, async () =>
      (await countOn(page, `deliveries-apns-${outcome}`)) === await metric(context.request, `${labels}"${outcome}"`));
  }
  result.success = await countOn(page, "deliveries-apns-Success");
  check(result.success === before + 3, `Success went from ${before} to ${result.success}`);
  await page.waitForTimeout(1500); // a few chart points
  await shot(page, "console-overview");

  // The failing send: its failures, each with the provider's reason.
  await page.click(`[data-test="latest-${failedSend}"] a`);
  await page.locator("#notification-view").waitFor({ state: "visible" });
  await waitFor("failures", async () => (await page.locator('[data-test="failure"]').count()) === 2);
  const reasons = (await page.locator('[data-test="failure"] td:nth-child(6)').allTextContents()).sort();
  check(JSON.stringify(reasons) === JSON.stringify(["BadDeviceToken", "Unregistered"]), `reasons ${reasons}`);
  check((await page.textContent("#n-audience")) === "tag:console", "audience");
  await shot(page, "console-notification");

  // Cancel the scheduled send: a POST without the page's CSRF token is refused, the button works.
  await page.click('a[href="#/"]');
  await page.locator(`[data-test="scheduled-${scheduledSend}"]`).waitFor({ state: "visible" });
  const forged = await context.request.post(new URL(`/console/api/notifications/${scheduledSend}/cancel`, consoleUrl).href,
    { headers: { "Content-Type": "application/json", Origin: new URL(consoleUrl).origin }, data: "{}" });
  check(forged.status() === 403, `cancel without CSRF answered ${forged.status()}`);
  await page.click(`[data-test="cancel-${scheduledSend}"]`);
  await page.locator(`[data-test="scheduled-${scheduledSend}"]`).waitFor({ state: "detached" });
  await page.waitForTimeout(1500); // the next live update still lists none
  check((await page.locator(`[data-test="scheduled-${scheduledSend}"]`).count()) === 0, "scheduled send back");
  result.cancelled = scheduledSend;

  // An installation by id.
  await page.fill("#lookup-id", installationId);
  await page.click("#lookup-form button[type=submit]");
  await page.locator("#installation-view").waitFor({ state: "visible" });
  check((await page.textContent("#i-platform")) === "apns", "installation platform");
  check((await page.textContent("#i-tags")).includes("console"), "installation tags");
  check((await page.textContent("#i-handle")).includes("..."), "handle not masked");
  await shot(page, "console-installation");

  // Sign out: back to the form, and the old cookie, replayed, is refused.
  await page.click('a[href="#/"]');
  await page.click("#signout");
  await page.locator("#signin-view").waitFor({ state: "visible" });
  const replay = await browser.newContext({ ignoreHTTPSErrors: true });
  await replay.addCookies([cookie]);
  check((await replay.request.get(new URL("/console/api/overview", consoleUrl).href)).status() === 401,
        "a signed-out cookie replayed");
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
