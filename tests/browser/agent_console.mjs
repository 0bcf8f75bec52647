// The agent console in real Chromium (Debian's /usr/bin/chromium, driven by playwright-core),
// against a running local Parley system: a customer writes "Hilfe" through the signed Meta
// webhook, an agent signs in (sandbox form), sees the conversation waiting, opens and claims it,
// replies (the reply must reach the Graph stand-in), builds a cart from the catalog and sends the
// checkout link, adds a tag and a note; a second customer message appears in the open thread
// within 2 s (measured); the agent releases the conversation to the bot. Desktop 1280×800 in
// English, phone 390×844 in German; then, outside the 24-hour window, the composer offers only
// templates and the chosen one reaches the customer. Screenshots go to target/screenshots/.
//
// Usage: node tests/browser/agent_console.mjs <base_url>   (run by tests/browser.rs)
// Env: META_APP_SECRET, WHATSAPP_PHONE_NUMBER_ID (the harness's values by default),
//      PARLEY_CHROMIUM (default /usr/bin/chromium), PARLEY_SCREENSHOTS (default target/screenshots),
//      PARLEY_DOCS_SCREENSHOT=1 also writes docs/console.png (README's screenshot).
import { chromium } from "playwright-core";
import { createHmac, randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = (process.argv[2] || "").replace(/\/$/, "");
if (!base) {
  console.error("usage: node agent_console.mjs <base_url>");
  process.exit(2);
}
const APP_SECRET = process.env.META_APP_SECRET || "local-meta-app-secret";
const PHONE_NUMBER_ID = process.env.WHATSAPP_PHONE_NUMBER_ID || "100000000000001";
const CHROMIUM = process.env.PARLEY_CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.PARLEY_SCREENSHOTS || "target/screenshots";
const LIVE_LIMIT_MS = 2000;
const WAIT = 20_000;

let passed = 0;
const step = (what) => {
  passed += 1;
  console.log(`ok ${passed} - ${what}`);
};

// ---------------------------------------------------------------------------------------------
// The customer's side: signed WhatsApp webhook deliveries, and what the Graph stand-in received.
const customerNumber = () => `49151${String(randomInt(0, 100_000_000)).padStart(8, "0")}`;

async function customerSays(from, text, name = "Erika Muster", at = Math.floor(Date.now() / 1000)) {
  const body = JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{
      id: "900000000000001",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550000001", phone_number_id: PHONE_NUMBER_ID },
          contacts: [{ profile: { name }, wa_id: from }],
          messages: [{
            from, id: `wamid.B${Date.now()}${randomInt(0, 1e9)}`, timestamp: String(at),
            type: "text", text: { body: text },
          }],
        },
      }],
    }],
  });
  const signature = "sha256=" + createHmac("sha256", APP_SECRET).update(body).digest("hex");
  const r = await fetch(`${base}/webhooks/meta`, {
    method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": signature }, body,
  });
  if (r.status !== 200) throw new Error(`the webhook answered ${r.status} to the customer's message`);
}

async function sentTo(to) {
  const r = await fetch(`${base}/sandbox/messages?to=${to}`);
  if (r.status !== 200) throw new Error(`GET /sandbox/messages answered ${r.status}`);
  return r.json();
}

async function waitForSent(to, predicate, what) {
  const until = Date.now() + WAIT;
  for (;;) {
    const msgs = await sentTo(to);
    const found = msgs.find(predicate);
    if (found) return found;
    if (Date.now() > until) throw new Error(`${what} never reached /sandbox/messages (saw ${JSON.stringify(msgs.map((m) => m.text))})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------------------------------------
// The agent's side.
async function scenario(opts, body = run) {
  const { viewport, locale, phone } = opts;
  // A fresh profile per run; no network of Chromium's own (updates, sync, QUIC probes).
  const profile = mkdtempSync(join(tmpdir(), "parley-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport, locale, isMobile: phone, hasTouch: phone, deviceScaleFactor: phone ? 2 : 1,
  });
  try {
    await body(context, opts);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function run(context, { name, locale, agent, phone, docsShot }) {
  const page = context.pages()[0] || (await context.newPage());
  const viewportWidth = page.viewportSize().width;
  page.setDefaultTimeout(WAIT);
  // Any script error or content-security-policy violation fails the run.
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[19]|Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  // Every view that is photographed must also fit the screen's width (no sideways scrolling).
  const shot = (file) => shotOf(page, name, file, viewportWidth);
  const de = locale.startsWith("de");

  const customer = customerNumber();
  await customerSays(customer, "Hilfe");
  // A second customer waits too (on the desktop run), so the list shows the order: waiting first.
  const other = phone ? null : customerNumber();
  if (other) await customerSays(other, "Hilfe", "Jonas Becker");
  step(`${name}: customer ${customer.slice(0, 5)}… wrote "Hilfe" through the signed webhook`);

  if (!phone) {
    // The sandbox page links to the console in a new tab, so a newcomer plays both sides.
    await page.goto(`${base}/sandbox/`);
    const link = page.locator('a[href="/agent/"][target="_blank"]', { hasText: "Open the agent console" });
    const [tab] = await Promise.all([context.waitForEvent("page"), link.click()]);
    await tab.locator("#signin-email").waitFor();
    if (!(await tab.locator("#signin-email").inputValue())) throw new Error("the console opened from the sandbox has no demo agent");
    await tab.close();
    step(`${name}: the sandbox page's link opens the console in a new tab`);
  }

  // Sign in with the sandbox form (pre-filled with a demo agent locally).
  await page.goto(`${base}/agent/`);
  const email = page.locator("#signin-email");
  await email.waitFor();
  if (!(await email.inputValue())) throw new Error("the local sign-in form is not pre-filled with a demo agent");
  if ((await page.locator("#signin-submit").textContent()) !== (de ? "Anmelden" : "Sign in")) {
    throw new Error(`the console did not pick ${locale} from the browser`);
  }
  await shot("1-signin");
  await email.fill(agent);
  await page.locator("#signin-submit").click();
  await page.locator("#app:not([hidden]), #signin-error:not(:empty)").first().waitFor();
  const signinError = await page.locator("#signin-error").textContent();
  if (signinError) throw new Error(`sign-in refused: ${signinError}`);
  await page.locator("#me", { hasText: agent }).waitFor({ state: "attached" });
  step(`${name}: ${agent} signed in through POST /sandbox/agent-token`);

  // The conversation is waiting (filter: waiting).
  await page.locator("#f-state").selectOption("waiting");
  const item = page.locator(`#conv-list li[data-key="whatsapp/${customer}"]`);
  await item.waitFor();
  if (!(await item.getAttribute("class")).includes("waiting")) throw new Error("the conversation is not shown as waiting");
  await page.locator(`#conv-list li[data-key="whatsapp/${customer}"] .waited`).waitFor();
  await shot("2-list");
  step(`${name}: the conversation is listed as waiting, with its waiting time`);

  // Open it from the keyboard, claim it.
  await item.focus();
  await page.keyboard.press("Enter");
  await page.locator("#msg-list li.msg.in", { hasText: "Hilfe" }).waitFor();
  await page.locator("#act-claim").click();
  await page.locator("#t-state", { hasText: de ? "Zugewiesen" : "Assigned" }).waitFor();
  await page.locator("#act-claim").waitFor({ state: "hidden" });
  step(`${name}: opened with Enter and claimed`);
  if (other) {
    // All states again: the other customer, still waiting, comes before the claimed conversation.
    await page.locator("#f-state").selectOption("");
    await page.locator(`#conv-list li.assigned[data-key="whatsapp/${customer}"]`).waitFor();
    const keys = await page.locator("#conv-list li").evaluateAll((lis) => lis.map((li) => li.dataset.key));
    if (!(keys.indexOf(`whatsapp/${other}`) >= 0 && keys.indexOf(`whatsapp/${other}`) < keys.indexOf(`whatsapp/${customer}`))) {
      throw new Error(`the waiting conversation is not listed before the assigned one: ${keys.join(", ")}`);
    }
    step(`${name}: with all states shown, the waiting conversation comes first`);
    // Keyboard: Esc back to the list, k / j open the previous / next conversation.
    await page.keyboard.press("Escape");
    await page.keyboard.press("k");
    await page.locator("#t-name", { hasText: "Jonas Becker" }).waitFor();
    await page.keyboard.press("j");
    await page.locator("#t-name", { hasText: "Erika Muster" }).waitFor();
    await page.locator("#msg-list li.msg.in", { hasText: "Hilfe" }).waitFor();
    step(`${name}: k / j move through the conversations from the keyboard`);
  }

  // Reply; Enter sends. The reply must reach the customer (the Graph stand-in).
  const reply = de ? `Hallo, hier ist ${agent.split("@")[0]}. Wie kann ich helfen?` : `Hi, ${agent.split("@")[0]} here. How can I help?`;
  await page.locator("#reply-text").fill(reply);
  await page.locator("#reply-text").press("Enter");
  await waitForSent(customer, (m) => m.text === reply, "the agent's reply");
  await page.locator("#msg-list li.msg.out", { hasText: reply }).waitFor();
  await page.locator("#msg-list li.msg.out", { hasText: reply }).locator(".tick").waitFor();
  step(`${name}: the reply reached /sandbox/messages and shows in the thread with its status`);

  // Cart from the catalog, then the checkout link.
  if (phone) {
    await page.locator("#to-panel").click();
    await page.locator("#panel-pane #cat-search").waitFor({ state: "visible" });
  }
  const before = (await sentTo(customer)).length;
  await page.locator("#cat-search").fill("shirt");
  const m = page.locator('#cat-results li[data-sku="TSHIRT-M"] button');
  await m.click();
  await m.click();
  await page.locator('#cat-results li[data-sku="TSHIRT-L"] button').click();
  const qtyM = page.locator('#draft li[data-sku="TSHIRT-M"] input');
  if ((await qtyM.inputValue()) !== "2") throw new Error("adding TSHIRT-M twice did not make quantity 2");
  await page.locator("#cart-send").click();
  const link = page.locator("#cart-result a");
  await link.waitFor();
  const checkoutUrl = await link.getAttribute("href");
  if (!checkoutUrl || !/^https?:\/\//.test(checkoutUrl)) throw new Error(`no checkout link in the answer: ${checkoutUrl}`);
  await page.locator("#p-cart", { hasText: "TSHIRT-M" }).waitFor();
  await page.locator("#p-cart", { hasText: "TSHIRT-L" }).waitFor();
  const linkMessage = await waitForSent(customer, (msg, i) => i >= before && JSON.stringify(msg).includes(checkoutUrl), "the checkout link");
  step(`${name}: cart 2 × TSHIRT-M + 1 × TSHIRT-L built from the catalog; checkout link sent (${linkMessage.type})`);
  await shot("3-cart");
  if (!phone) {
    // Tags and notes from the panel.
    await page.locator("#tag-input").fill("vip");
    await page.locator("#tag-input").press("Enter");
    await page.locator("#p-tags li", { hasText: "vip" }).waitFor();
    await page.locator("#note-input").fill("Wants it in blue; call back tomorrow.");
    await page.locator("#note-form button[type=submit]").click();
    await page.locator("#p-notes li", { hasText: "call back tomorrow" }).waitFor();
    await page.locator("#p-notes li", { hasText: agent }).waitFor();
    step(`${name}: tag and note added from the contact panel`);
  }

  // Live: a new customer message shows in the open thread within 2 s, without a reload.
  if (phone) {
    await page.locator("#back-to-thread").click();
    await page.locator("#reply-text").waitFor({ state: "visible" });
  }
  const second = de ? "Gibt es das T-Shirt auch in Blau?" : "Does the T-shirt come in blue too?";
  const t0 = Date.now();
  await customerSays(customer, second);
  const accepted = Date.now() - t0;
  await page.locator("#msg-list li.msg.in", { hasText: second }).waitFor({ timeout: 10_000 });
  const latency = Date.now() - t0;
  console.log(`# ${name}: new customer message visible in the open console after ${latency} ms (the webhook answered after ${accepted} ms; limit ${LIVE_LIMIT_MS} ms)`);
  if (latency > LIVE_LIMIT_MS) throw new Error(`the new message took ${latency} ms to appear (limit ${LIVE_LIMIT_MS} ms)`);
  step(`${name}: the second customer message appeared in ${latency} ms`);
  await page.locator("#toast").waitFor({ state: "hidden" });
  await page.locator("#panel-pane").evaluate((el) => { el.scrollTop = 0; });
  await shot("4-thread");
  if (phone) {
    // Hand the conversation back to the bot.
    await page.locator("#act-release").click();
    await page.locator("#t-state", { hasText: "Bot" }).waitFor();
    await page.locator("#act-release").waitFor({ state: "hidden" });
    await page.locator("#back-to-list").click();
    await page.locator("#conv-list").waitFor({ state: "visible" });
    await page.locator("#f-state").selectOption("");
    await page.locator(`#conv-list li.bot[data-key="whatsapp/${customer}"]`).waitFor();
    step(`${name}: released to the bot`);
    await shot("5-list");
  }
  if (docsShot) {
    mkdirSync("docs", { recursive: true });
    copyFileSync(join(SHOTS, `${name}-4-thread.png`), "docs/console.png");
  }
  if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join("\n  ")}`);
  step(`${name}: no script errors or policy violations`);
}

// ---------------------------------------------------------------------------------------------
// Outside the 24-hour window: the composer offers the approved templates instead of free text,
// says why, and the chosen template reaches the customer. The customer opted in (START, JA) and
// asked for help, all more than 24 hours ago (the channel's timestamps date the window).
async function windowClosed(context, { name }) {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const customer = customerNumber();
  const dayAgo = Math.floor(Date.now() / 1000) - 25 * 3600;
  for (const [i, text] of ["START", "JA", "Hilfe"].entries()) await customerSays(customer, text, "Erika Muster", dayAgo + i * 60);
  step(`${name}: customer ${customer.slice(0, 5)}… opted in and wrote "Hilfe" 25 hours ago`);

  await page.goto(`${base}/agent/`);
  await page.locator("#signin-email").fill("anna@example.com");
  await page.locator("#signin-submit").click();
  await page.locator("#app:not([hidden])").waitFor();
  await page.locator(`#conv-list li[data-key="whatsapp/${customer}"]`).click();
  await page.locator("#act-claim").click();
  await page.locator("#act-claim").waitFor({ state: "hidden" });
  await page.locator("#compose-template").waitFor({ state: "visible" });
  if (await page.locator("#compose-text").isVisible()) throw new Error("free text is offered although the window is closed");
  const reason = await page.locator("#window-reason").textContent();
  if (!reason) throw new Error("the composer does not say why only templates are possible");
  await page.locator('#p-consent dd[data-purpose="order_updates"]', { hasText: "confirmed" }).waitFor();
  step(`${name}: window closed: the composer offers templates only ("${reason}")`);

  const option = page.locator("#tpl-select option", { hasText: "service_followup" }).first();
  await page.locator("#tpl-select").selectOption(await option.getAttribute("value"));
  for (const [i, input] of (await page.locator("#tpl-params input").all()).entries()) await input.fill(`Wert ${i + 1}`);
  await shotOf(page, name, "template", 1280);
  const before = (await sentTo(customer)).length;
  // The bot's own replies outside the window went out as this template too: count the agent's.
  const agentTemplates = () => page.locator("#msg-list li.msg.out", { hasText: "anna@example.com" }).locator(".kind", { hasText: "service_followup" });
  const shown = await agentTemplates().count();
  await page.locator("#send-template").click();
  const sent = await waitForSent(customer, (m, i) => i >= before && m.template === "service_followup", "the agent's template");
  for (const until = Date.now() + WAIT; (await agentTemplates().count()) <= shown;) {
    if (Date.now() > until) throw new Error("the sent template does not show in the thread");
    await new Promise((r) => setTimeout(r, 100));
  }
  step(`${name}: the template went out (${sent.type} ${sent.template}) and shows in the thread`);
  if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join("\n  ")}`);
}

async function shotOf(page, name, file, width) {
  await page.screenshot({ path: join(SHOTS, `${name}-${file}.png`) });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`${file}: the page is ${overflow} px wider than the ${width} px screen`);
}

// ---------------------------------------------------------------------------------------------
mkdirSync(SHOTS, { recursive: true });
let failed = 0;
try {
  await scenario({
    name: "desktop", viewport: { width: 1280, height: 800 }, locale: "en-US", agent: "anna@example.com",
    phone: false, docsShot: process.env.PARLEY_DOCS_SCREENSHOT === "1",
  });
  await scenario({
    name: "phone", viewport: { width: 390, height: 844 }, locale: "de-DE", agent: "ben@example.com", phone: true,
  });
  await scenario({ name: "desktop-window-closed", viewport: { width: 1280, height: 800 }, locale: "en-US", phone: false }, windowClosed);
} catch (e) {
  failed = 1;
  console.log(`not ok ${passed + 1} - ${e.message}`);
}
console.log(failed ? `# browser: failed after ${passed} steps` : `# browser: all ${passed} steps ok`);
process.exit(failed ? 1 : 0);
