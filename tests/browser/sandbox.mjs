// The sandbox page in real Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// against a running local Parley system, playing README's journey as a customer: a question and
// the bot's answer, a line sent with curl straight to the signed webhook, the double opt-in, a
// cart built by typing, the checkout link, the order paid with that cart, its confirmation and
// shipment with tracking, read and failed ticks, shop events (product, sell-out, abandoned
// checkout, cart reminder, reconciler), a hand-over to a person. After each step the state panel
// must show what the store now holds. Desktop 1280×800, then the phone (390×844) where the panel
// sits behind a tab and the chat keeps the full width. Screenshots go to target/screenshots/;
// PARLEY_DOCS_SCREENSHOT=1 also writes docs/sandbox.png (README's).
//
// Usage: node tests/browser/sandbox.mjs <base_url>   (run by tests/browser.rs)
// Env: META_APP_SECRET, WHATSAPP_PHONE_NUMBER_ID (the harness's values by default),
//      PARLEY_CHROMIUM (default /usr/bin/chromium), PARLEY_SCREENSHOTS (default target/screenshots).
import { chromium } from "playwright-core";
import { createHmac, randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = (process.argv[2] || "").replace(/\/$/, "");
if (!base) {
  console.error("usage: node sandbox.mjs <base_url>");
  process.exit(2);
}
const APP_SECRET = process.env.META_APP_SECRET || "local-meta-app-secret";
const PHONE_NUMBER_ID = process.env.WHATSAPP_PHONE_NUMBER_ID || "100000000000001";
const CHROMIUM = process.env.PARLEY_CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.PARLEY_SCREENSHOTS || "target/screenshots";
const WAIT = 30_000;

let passed = 0;
const step = (what) => {
  passed += 1;
  console.log(`ok ${passed} - ${what}`);
};

const customerNumber = () => `49151${String(randomInt(0, 100_000_000)).padStart(8, "0")}`;

// README's curl: a signed WhatsApp delivery straight to the webhook, past the sandbox page.
async function curlSays(from, text) {
  const body = JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{
      id: "900000000000001",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550000001", phone_number_id: PHONE_NUMBER_ID },
          contacts: [{ profile: { name: "Erika" }, wa_id: from }],
          messages: [{
            from, id: `wamid.demo${Date.now()}${randomInt(0, 1e9)}`, timestamp: String(Math.floor(Date.now() / 1000)),
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
  if (r.status !== 200) throw new Error(`the webhook answered ${r.status} to the curl message`);
}

async function stateOf(address) {
  const r = await fetch(`${base}/sandbox/state?channel=whatsapp&address=${address}`);
  if (r.status !== 200) throw new Error(`GET /sandbox/state answered ${r.status}`);
  return r.json();
}

async function scenario(opts) {
  const { viewport, phone } = opts;
  // A fresh profile per run; no network of Chromium's own (updates, sync, QUIC probes).
  const profile = mkdtempSync(join(tmpdir(), "parley-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport, locale: "de-DE", isMobile: phone, hasTouch: phone, deviceScaleFactor: phone ? 2 : 1,
  });
  try {
    await journey(context, opts);
  } catch (e) {
    await diagnose(opts).catch((d) => console.log(`# (no diagnosis: ${d.message})`));
    throw e;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

// What a failed run leaves behind to tell why: a screenshot, and the conversation and queues as
// the store and the sandbox see them (demo data only: the customer is a random test number).
async function diagnose({ name, to, page }) {
  if (page) await page.screenshot({ path: join(SHOTS, `${name}-failure.png`) });
  if (!to) return;
  const s = await stateOf(to);
  console.log(`# ${name}: the conversation at the failure (${s.conversation.length} lines, oldest first):`);
  for (const m of s.conversation) {
    const text = String(m.text ?? m.shown?.text ?? m.template?.name ?? "").slice(0, 48);
    const hook = m.webhook_status ? ` webhook ${m.webhook_status}` : "";
    console.log(`#   ${m.at} ${m.direction} ${m.author ?? ""} [${m.status ?? ""}; ${m.source}${hook}] ${JSON.stringify(text)}`);
  }
  console.log(`# ${name}: consent ${JSON.stringify(s.consent?.purposes)}; queues ${JSON.stringify(s.queues)}`);
}

async function shotOf(page, name, file, width) {
  await page.screenshot({ path: join(SHOTS, `${name}-${file}.png`) });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`${file}: the page is ${overflow} px wider than the ${width} px screen`);
}

async function journey(context, opts) {
  const { name, phone, docsShot } = opts;
  const page = context.pages()[0] || (await context.newPage());
  opts.page = page;
  const width = page.viewportSize().width;
  page.setDefaultTimeout(WAIT);
  // Any script error or content-security-policy violation fails the run; so does a dialog the
  // page did not ask for (an injected script would open one).
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  let failCode = null;
  page.on("dialog", async (d) => {
    if (d.type() === "prompt" && failCode) { await d.accept(failCode); failCode = null; }
    else { problems.push(`unexpected dialog: ${d.message()}`); await d.dismiss(); }
  });
  const shot = (file) => shotOf(page, name, file, width);
  const tab = async (t) => { if (phone) await page.locator(`nav.tabs button[data-tab="${t}"]`).click(); };
  const panel = (sel) => page.locator(`#panel ${sel}`);
  const msgs = page.locator("#log .msg");
  const botMsgs = page.locator("#log .msg:not(.me)");
  const say = async (text) => {
    await tab("chat");
    await page.locator("#text").fill(text);
    await page.locator("#text").press("Enter");
    // Submitted (the composer empties itself), not silently dropped.
    await page.waitForFunction(() => document.getElementById("text").value === "", null, { timeout: WAIT });
  };
  const botCountAbove = async (n) => {
    await page.waitForFunction((n) => document.querySelectorAll("#log .msg:not(.me)").length > n, n, { timeout: WAIT });
    return botMsgs.count();
  };

  await page.goto(`${base}/sandbox/`);
  const to = customerNumber();
  opts.to = to;
  await tab("setup");
  await page.locator("#address").fill(to);
  await page.locator("#name").fill("Erika");
  await tab("chat");
  await page.locator("#log .empty").waitFor();
  await tab("state");
  await panel("#state-contact").getByText("Nothing stored yet").waitFor();
  step(`${name}: a new customer ${to.slice(0, 5)}…: empty chat, the panel says nothing is stored`);

  // 1. A question; the bot's answer with its reply buttons.
  await say("Lieferzeit");
  await page.locator("#log .msg.me", { hasText: "Lieferzeit" }).waitFor();
  let bots = await botCountAbove(0);
  const answer = botMsgs.nth(bots - 1);
  if ((await answer.locator(".buttons button").count()) === 0) throw new Error("the answer has no reply buttons");
  await tab("state");
  await panel("#window-countdown").waitFor();
  const countdown = await panel("#window-countdown").textContent();
  if (!/^2[34]:\d\d:\d\d$/.test(countdown)) throw new Error(`window countdown ${countdown}`);
  await panel("#state-handover").getByText("bot").waitFor();
  step(`${name}: "Lieferzeit" answered with buttons; the window is open (${countdown} left), the bot has the chat`);

  // Status webhooks come back from the Graph stand-in: the answer's ticks turn to delivered.
  await tab("chat");
  await answer.locator('.ticks[data-status="delivered"]').waitFor();
  step(`${name}: the answer shows delivered ticks (✓✓)`);

  // 2. Sent with curl, past the page: shown from the store.
  const curlText = "Wie lange ist die Lieferzeit?";
  await curlSays(to, curlText);
  const curlLine = page.locator("#log .msg.me", { hasText: curlText });
  await curlLine.locator(".via").getByText("via the webhook").waitFor();
  bots = await botCountAbove(bots);
  step(`${name}: a message sent with curl shows as the customer's (via the webhook) with its answer`);

  // 3. Texts from customers are text: markup is shown, never run.
  const markup = `<img src=x onerror="alert('xss')"><b>fett</b>`;
  await say(markup);
  await page.locator("#log .msg.me .text", { hasText: "<b>fett</b>" }).waitFor();
  if ((await page.locator("#log img, #log b").count()) !== 0) throw new Error("customer markup became elements");
  bots = await botCountAbove(bots);
  step(`${name}: a customer's markup is shown as text`);

  // 3b. Typed back to back: the second Enter comes while the first line is still on its way to
  // the webhook; both go out, in the order typed, and each gets its answer.
  const [firstLine, secondLine] = ["Erste Frage", "Zweite Frage"];
  await say(firstLine);
  await say(secondLine);
  bots = await botCountAbove(bots + 1);
  const mine = await page.locator("#log .msg.me .text").allTextContents();
  if (mine.indexOf(firstLine) < 0 || mine.indexOf(secondLine) < mine.indexOf(firstLine)) {
    throw new Error(`back-to-back lines: ${JSON.stringify(mine.slice(-3))}`);
  }
  step(`${name}: two lines typed back to back both reach the webhook, in order, and both are answered`);

  // 4. Double opt-in: START, then "Ja"; the panel shows both purposes confirmed and the audit trail.
  await say("START");
  bots = await botCountAbove(bots);
  await botMsgs.nth(bots - 1).locator(".buttons button", { hasText: /^Ja/ }).first().click();
  await tab("state");
  await panel('#state-consent .chip[data-purpose="marketing"]').getByText("confirmed").waitFor();
  await panel("#state-consent .events li").first().waitFor();
  const events = await panel("#state-consent .events li").count();
  step(`${name}: double opt-in confirmed in the chat; the panel shows marketing confirmed and ${events} audit events`);
  await tab("chat");
  bots = await botCountAbove(bots);

  // 5. A cart by typing (README's "Selling in chat").
  await say("add TSHIRT-M 2");
  bots = await botCountAbove(bots);
  await tab("state");
  await panel("#state-cart .lines li", { hasText: "TSHIRT-M" }).waitFor();
  const total = await panel("#state-cart dl").textContent();
  if (!total.includes("39,80")) throw new Error(`cart total: ${total}`);
  step(`${name}: "add TSHIRT-M 2" fills the cart; the panel shows 2× T-Shirt – M, 39,80 €`);

  // 6. The checkout link: the same in the chat and in the panel.
  await say("kasse");
  await page.locator("#log .msg:not(.me) .text a", { hasText: "/cart/" }).waitFor();
  const chatLink = await page.locator("#log .msg:not(.me) .text a", { hasText: "/cart/" }).last().getAttribute("href");
  await tab("state");
  await panel("#cart-checkout").waitFor();
  const panelLink = await panel("#cart-checkout").getAttribute("href");
  if (chatLink !== panelLink) throw new Error(`checkout link differs:\n chat  ${chatLink}\n panel ${panelLink}`);
  step(`${name}: "kasse" sends the checkout link; the panel shows the same link`);
  bots = await botMsgs.count();

  // 7. The shop's order for that cart: its confirmation, a converted cart, the order's timeline.
  await tab("setup");
  await page.locator("#shop-order").click();
  await page.locator("#shop-current").getByText("Last order").waitFor();
  await tab("state");
  const order = panel("#state-orders .order").first();
  await order.locator(".stage", { hasText: "confirmed" }).waitFor();
  await panel("#cart-status").getByText("converted").waitFor();
  await order.locator('.timeline li .ticks[data-status="delivered"]').first().waitFor();
  const orderName = await order.locator(".title").textContent();
  step(`${name}: order ${orderName.split(" ·")[0]} placed: confirmation delivered in its timeline, the cart converted`);
  await tab("chat");
  bots = await botCountAbove(bots - 1);

  // 8. Shipped with a tracking number.
  await tab("setup");
  await page.locator("#shop-ship").click();
  await tab("state");
  await order.locator(".stage", { hasText: "shipped" }).waitFor();
  await order.locator(".hint", { hasText: "Parcel" }).waitFor();
  await order.locator(".timeline li").nth(1).waitFor();
  step(`${name}: shipped: the panel shows the stage, the parcel number and a second notification`);
  await tab("chat");
  await page.locator("#log .msg:not(.me) .text", { hasText: /00340434/ }).waitFor();
  step(`${name}: the tracking message reached the chat`);

  // 9. Ticks: read, and a failure with Graph's code and a plain reason.
  const confirmation = botMsgs.filter({ hasText: orderName.split(" ·")[0] }).first();
  await confirmation.locator(".meta a", { hasText: "read" }).click();
  await confirmation.locator('.ticks[data-status="read"]').waitFor();
  step(`${name}: a read status webhook turns the confirmation's ticks blue`);
  if (!phone) {
    const last = botMsgs.last();
    failCode = "131026";
    await last.locator(".meta a", { hasText: "fail" }).click();
    await last.locator('.ticks[data-status="failed"]').waitFor();
    const why = await last.locator(".meta .why").textContent();
    if (!why.includes("131026")) throw new Error(`failure shown as ${why}`);
    step(`${name}: a failed status shows ✗ with "${why}"`);
  }

  // 10. Shop events and the scheduled functions (desktop: the phone run keeps to the journey).
  if (!phone) {
    await page.locator("#product-create").click();
    await page.locator("#status", { hasText: "New product: products/create, webhook answered 200" }).waitFor();
    await page.locator("#product-price").click();
    await page.locator("#status", { hasText: "Price: products/update, webhook answered 200" }).waitFor();
    await page.locator("#product-soldout").click();
    await page.locator("#status", { hasText: "Sell out: products/update, webhook answered 200" }).waitFor();
    const sku = (await page.locator("#product-current").textContent()).match(/CAP-\d+/)[0];
    const title = (await page.locator("#product-current").textContent()).match(/Cap \d+/)[0];
    await say(`add ${sku}`);
    try {
      await page.locator("#log .msg:not(.me) .text", { hasText: title }).waitFor();
    } catch (e) {
      const texts = await page.locator("#log .msg .text").allTextContents();
      throw new Error(`no answer naming ${title}; the chat ends with:\n  ${texts.slice(-6).join("\n  ")}`);
    }
    step(`${name}: new product, new price and sell-out reach the catalog: adding ${sku} is refused by name`);
    await page.locator("#checkout-abandon").click();
    await page.locator("#status", { hasText: "Checkout: checkouts/create, webhook answered 200" }).waitFor();
    await page.locator("#run-reminder").click();
    await page.locator("#status", { hasText: /cart-reminder: \d+ reminder/ }).waitFor();
    await page.locator("#run-reconciler").click();
    await page.locator("#status", { hasText: /shop-reconciler: \d+ shop/ }).waitFor();
    step(`${name}: abandoned checkout posted, cart reminder and reconciler ran from their buttons`);
  }

  // 11. Queues and metrics, from the local runtime.
  await tab("state");
  for (const q of ["outbound", "inbound", "campaign", "bridge"]) await panel(`#state-queues tr[data-queue="${q}"]`).waitFor();
  await panel("#state-metrics dt").first().waitFor();
  const metrics = await panel("#state-metrics dt").count();
  step(`${name}: the panel lists 4 queues with their DLQ depths and ${metrics} metric totals`);

  // 12. A person takes over.
  await say("Hilfe");
  await tab("state");
  await panel("#state-handover").getByText("with a person").waitFor();
  step(`${name}: "Hilfe" hands the chat to a person; the panel says so`);

  // The panel's figures match the store's own answer.
  const s = await stateOf(to);
  if (s.consent.purposes.marketing !== "confirmed" || s.cart.status !== "converted" || !s.handover) {
    throw new Error(`the store's state disagrees with the panel: ${JSON.stringify(s).slice(0, 300)}`);
  }

  await tab("chat");
  if (phone) {
    // The chat keeps the screen's width: not squeezed beside the panel.
    const chatWidth = await page.locator("#log").evaluate((e) => e.getBoundingClientRect().width);
    if (chatWidth < width - 2) throw new Error(`the chat is ${chatWidth} px wide on a ${width} px screen`);
    step(`${name}: the chat uses the full ${chatWidth} px width`);
  }
  await page.locator("#log").evaluate((e) => { e.scrollTop = e.scrollHeight; });
  await shot("1-chat");
  if (phone) {
    await tab("state");
    // One pane at a time: the panel replaces the chat, it does not stack under it.
    if (await page.locator("#log").isVisible()) throw new Error("the chat shows behind the State tab");
    await shot("2-state");
    await page.locator("#state-orders").scrollIntoViewIfNeeded();
    await shot("3-orders");
    await tab("setup");
    await shot("4-setup");
  } else if (docsShot) {
    // README's picture: a taller window, so the panel shows the order timeline too.
    await page.setViewportSize({ width: 1440, height: 1000 });
    await page.locator("#setup").evaluate((e) => { e.scrollTop = 0; });
    const confirmationBox = botMsgs.filter({ hasText: orderName.split(" ·")[0] }).first();
    await confirmationBox.evaluate((e) => e.scrollIntoView({ block: "start" }));
    await panel("#state-window").evaluate((e) => e.scrollIntoView({ block: "start" }));
    mkdirSync("docs", { recursive: true });
    await page.screenshot({ path: "docs/sandbox.png" });
  }
  if (problems.length) throw new Error(`the page reported problems:\n  ${problems.join("\n  ")}`);
  step(`${name}: no script errors or policy violations`);
}

mkdirSync(SHOTS, { recursive: true });
let failed = 0;
try {
  await scenario({ name: "sandbox-desktop", viewport: { width: 1280, height: 800 }, phone: false,
    docsShot: process.env.PARLEY_DOCS_SCREENSHOT === "1" });
  await scenario({ name: "sandbox-phone", viewport: { width: 390, height: 844 }, phone: true });
} catch (e) {
  failed = 1;
  console.log(`not ok ${passed + 1} - ${e.message}`);
}
console.log(failed ? `# browser: failed after ${passed} steps` : `# browser: all ${passed} steps ok`);
process.exit(failed ? 1 : 0);
