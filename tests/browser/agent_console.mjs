// The agent console in real Chromium (Debian's /usr/bin/chromium, driven by playwright-core),
// against a running local Parley system: a customer writes "Hilfe" through the signed Meta
// webhook, an agent signs in (sandbox form), sees the conversation waiting, opens and claims it,
// replies (the reply must reach the Graph stand-in), builds a cart from the catalog and sends the
// checkout link, adds a tag and a note; a second customer message appears in the open thread
// within 2 s (measured); the agent releases the conversation to the bot. Desktop 1280×800 in
// English, phone 390×844 in German; then, outside the 24-hour window, the composer offers only
// templates and the chosen one reaches the customer. Screenshots go to target/screenshots/.
//
// `campaigns`: an agent has no Campaigns tab (and the campaign API refuses their token); an admin
// creates a campaign from the approved newsletter for a small seeded segment (opted-in customers
// with a tag of their own), sees the live count preview, starts it, watches it reach done, and
// reads the report (sent matches what the Graph stand-in received; the recipient list shows each
// status, a 131026 failure with its plain reason on the desktop run). Desktop in English, phone
// in German.
//
// Usage: node tests/browser/agent_console.mjs <base_url> [inbox|campaigns]   (run by tests/browser.rs)
// Env: META_APP_SECRET, WHATSAPP_PHONE_NUMBER_ID, PARLEY_ADMIN_KEY (the harness's values by default),
//      PARLEY_CHROMIUM (default /usr/bin/chromium), PARLEY_SCREENSHOTS (default target/screenshots),
//      PARLEY_DOCS_SCREENSHOT=1 also writes docs/console.png and docs/campaigns.png (README's).
import { chromium } from "playwright-core";
import { createHmac, randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = (process.argv[2] || "").replace(/\/$/, "");
const mode = process.argv[3] || "inbox";
if (!base || !["inbox", "campaigns"].includes(mode)) {
  console.error("usage: node agent_console.mjs <base_url> [inbox|campaigns]");
  process.exit(2);
}
const APP_SECRET = process.env.META_APP_SECRET || "local-meta-app-secret";
const PHONE_NUMBER_ID = process.env.WHATSAPP_PHONE_NUMBER_ID || "100000000000001";
const CHROMIUM = process.env.PARLEY_CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.PARLEY_SCREENSHOTS || "target/screenshots";
const ADMIN_KEY = process.env.PARLEY_ADMIN_KEY || "local-admin-key";
const LIVE_LIMIT_MS = 2000;
const WAIT = 20_000;
// A campaign of a few recipients is done in seconds; a loaded machine gets a generous margin.
const CAMPAIGN_WAIT = 120_000;

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
// Campaigns.

async function sandboxChat(body) {
  const r = await fetch(`${base}/sandbox/chat`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  const v = r.status === 200 ? await r.json() : null;
  if (!v || v.status !== 200) throw new Error(`/sandbox/chat answered ${r.status} (webhook ${v && v.status})`);
}

/** A customer who confirmed marketing twice (START, then the "Ja" button), with `tags`. */
async function optedInCustomer(tags) {
  const to = customerNumber();
  await sandboxChat({ channel: "whatsapp", from: to, text: "START" });
  await waitForSent(to, () => true, "the consent question");
  await sandboxChat({ channel: "whatsapp", from: to, payload: "consent:yes", title: "Ja" });
  await waitForSent(to, (m, i) => i >= 1, "the consent confirmation");
  const r = await fetch(`${base}/contacts/whatsapp/${to}/tags`, {
    method: "POST", headers: { "content-type": "application/json", "x-api-key": ADMIN_KEY }, body: JSON.stringify({ add: tags }),
  });
  if (r.status !== 200) throw new Error(`tagging a customer answered ${r.status}`);
  return to;
}

async function signInAs(page, email, role) {
  await page.goto(`${base}/agent/`);
  await page.locator("#signin-email").fill(email);
  await page.locator("#signin-role").selectOption(role);
  await page.locator("#signin-submit").click();
  await page.locator("#app:not([hidden]), #signin-error:not(:empty)").first().waitFor();
  const signinError = await page.locator("#signin-error").textContent();
  if (signinError) throw new Error(`sign-in refused: ${signinError}`);
  await page.locator("#me", { hasText: email }).waitFor({ state: "attached" });
}

/** Polls `check` (which returns a value, or null to go on) until it holds or `ms` pass. */
async function eventually(what, check, ms = WAIT) {
  const until = Date.now() + ms;
  let last = null;
  for (;;) {
    try {
      const v = await check();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`${what}${last ? ` (${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function campaigns(context, { name, locale, phone, admin, agent, recipients, failures, docsShot }) {
  const page = context.pages()[0] || (await context.newPage());
  const viewportWidth = page.viewportSize().width;
  page.setDefaultTimeout(WAIT);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[1-9]|Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const shot = (file) => shotOf(page, name, file, viewportWidth);
  const de = locale.startsWith("de");
  const text = (en, deText) => (de ? deText : en);

  // A small segment of its own: customers who confirmed marketing, with a tag nobody else has.
  const tag = `bt-${randomInt(0, 1e9)}`;
  const customers = [];
  for (let i = 0; i < recipients; i++) customers.push(await optedInCustomer([tag]));
  step(`${name}: ${recipients} customers confirmed marketing and were tagged ${tag}`);

  if (agent) {
    // An agent sees no Campaigns tab, and the campaign API refuses the agent's token.
    await signInAs(page, agent, "agent");
    await page.locator("#tab-inbox").waitFor();
    if (await page.locator("#tab-campaigns").isVisible()) throw new Error("an agent sees the Campaigns tab");
    const status = await page.evaluate(async () => (await fetch("/campaigns", {
      headers: { authorization: `Bearer ${sessionStorage.getItem("parley.token")}` },
    })).status);
    if (status !== 403) throw new Error(`GET /campaigns with an agent's token answered ${status}, not 403`);
    await page.locator("#signout").click();
    await page.locator("#signin-email").waitFor();
    step(`${name}: ${agent} (agent) has no Campaigns tab; GET /campaigns answers the agent's token 403`);
  }

  await signInAs(page, admin, "admin");
  await page.locator("#tab-campaigns").click();
  await page.locator("#camp-new").waitFor();
  step(`${name}: ${admin} (admin) opened the Campaigns tab`);

  // The new campaign: the newsletter in the console's language, the first name with a fallback,
  // the button's collection handle as text, the tagged segment.
  await page.locator("#camp-new").click();
  await page.locator('#cf-template option[value="newsletter"]').waitFor({ state: "attached" });
  const campaignName = text("Summer sale", "Sommer-Sale");
  await page.locator("#cf-name").fill(campaignName);
  await page.locator("#cf-template").selectOption("newsletter");
  await page.locator("#cf-language").selectOption(de ? "de" : "en");
  await page.locator("#cf-p1-source").selectOption("contact.first_name");
  await page.locator("#cf-p1").fill(text("there", "du"));
  await page.locator("#cf-p2").fill(text("summer", "sommer"));
  const preview = await page.locator("#cf-preview").textContent();
  if (!preview.includes(text("summer", "sommer"))) throw new Error(`the template preview does not show the button's value: ${preview}`);
  await page.locator("#camp-detail-pane").evaluate((el) => { el.scrollTop = 0; });
  await shot("c1-new");
  if (!phone) {
    // The API's own words when a filter or a parameter is wrong.
    await page.locator("#sg-locale").fill("x1");
    await page.locator("#cf-count.error", { hasText: "locale must be a two-letter language code" }).waitFor();
    await page.locator("#sg-locale").fill("");
    await page.locator("#cf-p2").fill("{{contact.email}}");
    await page.locator("#cf-submit").click();
    await page.locator("#cf-error", { hasText: "parameter 2: unknown field" }).waitFor();
    await page.locator("#cf-p2").fill(text("summer", "sommer"));
    step(`${name}: a wrong filter and a wrong parameter show the API's reasons`);
  }
  await page.locator("#sg-tags-any").fill(tag);
  await page.locator(`#cf-count[data-matched="${recipients}"]`).waitFor();
  const count = await page.locator("#cf-count").textContent();
  step(`${name}: the segment preview counts the ${recipients} tagged customers ("${count}")`);
  await page.locator("#cf-rate").fill(phone ? "80" : "2");
  // Quiet hours off, so the test does not depend on the hour it runs at.
  await page.locator("#cf-quiet-on").uncheck();
  await page.locator("#cf-count").scrollIntoViewIfNeeded();
  await shot("c1-segment");
  await page.locator("#cf-submit").click();
  await page.locator("#cr-state", { hasText: text("draft", "Entwurf") }).waitFor();
  await page.locator("#cr-name", { hasText: campaignName }).waitFor();
  await page.locator("#cr-start").waitFor();
  step(`${name}: created as a draft`);

  if (failures) {
    // Graph answers the next send "message undeliverable" (131026): one recipient fails.
    const r = await fetch(`${base}/sandbox/faults`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ status: 400, code: 131026, count: failures }),
    });
    if (r.status !== 200) throw new Error(`POST /sandbox/faults answered ${r.status}`);
  }
  await page.locator("#cr-start").click();
  await page.locator("#cr-start").waitFor({ state: "hidden" });
  await page.locator("#cr-progress-text").waitFor();
  await shot("c2-started");
  step(`${name}: started`);

  // Progress until done: every recipient handled, the sends counted.
  const sent = recipients - failures;
  const started = Date.now();
  await page.locator("#cr-state", { hasText: text("done", "fertig") }).waitFor({ timeout: CAMPAIGN_WAIT });
  const stat = (k, n) => page.locator(`#cr-stats dd[data-stat="${k}"] .v`, { hasText: new RegExp(`^${n}$`) });
  await stat("sent", sent).waitFor({ timeout: CAMPAIGN_WAIT });
  await stat("failed", failures).waitFor({ timeout: CAMPAIGN_WAIT });
  const progress = await page.locator("#cr-progress").evaluate((el) => [el.value, el.max]);
  if (progress[0] !== progress[1] || progress[1] !== recipients) throw new Error(`the progress bar is at ${progress[0]} of ${progress[1]}`);
  step(`${name}: done after ${Date.now() - started} ms; progress ${progress[0]}/${progress[1]}`);

  // The report's sent count matches what the Graph stand-in received: one newsletter each.
  let got = 0;
  for (const to of customers) {
    const msgs = (await sentTo(to)).filter((m) => m.template === "newsletter");
    if (msgs.length > 1) throw new Error(`${to.slice(0, 5)}… got the newsletter ${msgs.length} times`);
    got += msgs.length;
  }
  if (got !== sent) throw new Error(`the report says ${sent} sent, the Graph stand-in received ${got}`);
  const recipientsShown = await page.locator(`#cr-stats dd[data-stat="recipients"] .v`).textContent();
  if (recipientsShown !== String(recipients)) throw new Error(`the report matched ${recipientsShown}, not ${recipients}`);
  step(`${name}: the report says ${sent} sent, as /sandbox/messages received`);

  // The recipient list: every recipient with its status; a failure with its code and reason.
  const rows = page.locator("#cr-recipients li.rcpt");
  const statuses = await eventually("every recipient listed with a final status", async () => {
    const s = await rows.evaluateAll((lis) => lis.map((li) => li.dataset.status));
    return s.length === recipients && s.every((x) => ["sent", "delivered", "read", "failed"].includes(x)) ? s : null;
  }, CAMPAIGN_WAIT);
  if (statuses.filter((s) => s === "failed").length !== failures) throw new Error(`recipient statuses: ${statuses.join(", ")}`);
  if (failures) {
    const detail = await page.locator("#cr-recipients li.rcpt.failed .detail").first().textContent();
    if (!detail.includes("131026") || detail.length < 20) throw new Error(`the failed recipient shows no reason: ${detail}`);
    await page.locator('#cr-failed li[data-code="131026"]').waitFor();
  }
  step(`${name}: the recipient list shows ${statuses.join(", ")}`);
  if (!phone) {
    // Delivered ticks arrive as status webhooks: wait for them, for the report's screenshot.
    await stat("delivered", sent).waitFor({ timeout: CAMPAIGN_WAIT });
    // A recipient orders two T-shirts in the shop: the order, its revenue and the revenue per
    // recipient show up in the open report without a reload.
    let buyer = null;
    for (const to of customers) if (!buyer && (await sentTo(to)).some((m) => m.template === "newsletter")) buyer = to;
    const r = await fetch(`${base}/sandbox/shop/orders`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ platform: "shopify", phone: `+${buyer}`, items: [{ sku: "TSHIRT-M", title: "T-Shirt – M", quantity: 2, price: "19.90" }] }),
    });
    const order = r.status === 200 ? await r.json() : null;
    if (!order || order.webhook_status !== 200) throw new Error(`the sandbox shop's order answered ${r.status} (webhook ${order && order.webhook_status})`);
    await stat("orders", 1).waitFor({ timeout: CAMPAIGN_WAIT });
    const revenue = await page.locator(`#cr-stats dd[data-stat="revenue"] .v`).textContent();
    const perRecipient = await page.locator(`#cr-stats dd[data-stat="revenue_per_recipient"] .v`).textContent();
    if (!revenue.includes("39.80") || !perRecipient.includes("19.90")) throw new Error(`revenue ${revenue}, per recipient ${perRecipient}`);
    step(`${name}: a recipient's order shows in the report: revenue ${revenue}, ${perRecipient} per recipient`);
  }
  await page.locator("#toast").waitFor({ state: "hidden" });
  await page.locator("#camp-detail-pane").evaluate((el) => { el.scrollTop = 0; });
  await shot("c3-report");
  await page.locator("#cr-recipients").scrollIntoViewIfNeeded();
  await shot("c4-recipients");

  // Back to the list: the campaign is listed as done with its progress.
  if (phone) {
    await page.locator("#cr-back").click();
    await page.locator("#camp-list").waitFor({ state: "visible" });
  }
  await page.locator(`#camp-list li[data-state="done"] .name`, { hasText: campaignName }).waitFor();
  step(`${name}: the list shows the campaign as done`);
  await shot("c5-list");
  if (docsShot) {
    mkdirSync("docs", { recursive: true });
    copyFileSync(join(SHOTS, `${name}-c3-report.png`), "docs/campaigns.png");
  }
  if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join("\n  ")}`);
  step(`${name}: no script errors or policy violations`);
}

// ---------------------------------------------------------------------------------------------
mkdirSync(SHOTS, { recursive: true });
let failed = 0;
const docsShot = process.env.PARLEY_DOCS_SCREENSHOT === "1";
try {
  if (mode === "inbox") {
    await scenario({
      name: "desktop", viewport: { width: 1280, height: 800 }, locale: "en-US", agent: "anna@example.com",
      phone: false, docsShot,
    });
    await scenario({
      name: "phone", viewport: { width: 390, height: 844 }, locale: "de-DE", agent: "ben@example.com", phone: true,
    });
    await scenario({ name: "desktop-window-closed", viewport: { width: 1280, height: 800 }, locale: "en-US", phone: false }, windowClosed);
  } else {
    await scenario({
      name: "campaigns-desktop", viewport: { width: 1280, height: 800 }, locale: "en-US", phone: false,
      admin: "carla@example.com", agent: "anna@example.com", recipients: 3, failures: 1, docsShot,
    }, campaigns);
    await scenario({
      name: "campaigns-phone", viewport: { width: 390, height: 844 }, locale: "de-DE", phone: true,
      admin: "david@example.com", recipients: 2, failures: 0,
    }, campaigns);
  }
} catch (e) {
  failed = 1;
  console.log(`not ok ${passed + 1} - ${e.message}`);
}
console.log(failed ? `# browser: failed after ${passed} steps` : `# browser: all ${passed} steps ok`);
process.exit(failed ? 1 : 0);
