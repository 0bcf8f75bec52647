"use strict";
const DEFAULT_ADDRESS = { whatsapp: "4915123456789", messenger: "24000000000000001", instagram: "17800000000000001" };
const $ = (id) => document.getElementById(id);
const saved = JSON.parse(localStorage.getItem("parley-sandbox") || "{}");
const ui = {
  channel: saved.channel || "whatsapp",
  addresses: Object.assign({}, DEFAULT_ADDRESS, saved.addresses || {}),
  name: saved.name || "Erika",
  // The last order; its id is kept as a string (Shopify ids exceed 2^53).
  shop: Object.assign({ platform: "shopify", order: null }, saved.shop || {}),
  // The product the shop-event buttons change: { id, title, skus }.
  product: saved.product || null,
};
const SHOP_ITEMS = [
  { sku: "TSHIRT-M", title: "T-Shirt M", quantity: 2, price: "19.90" },
  { sku: "MUG-WHITE", title: "Coffee Mug", quantity: 1, price: "12.50" },
];
let lastShopRender = "";
let lastRender = "";

function save() { localStorage.setItem("parley-sandbox", JSON.stringify(ui)); }
function address() { return ui.addresses[ui.channel].trim().replace(/^\+/, ""); }

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
  const res = await fetch(path, init);
  const raw = await res.text();
  let data = null;
  try { data = raw ? JSON.parse(raw) : null; } catch (_) { data = raw; }
  if (!res.ok) throw new Error((data && data.error) || ("HTTP " + res.status));
  return data;
}

function time(iso) { return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }

// Text with clickable http(s) links, built as nodes so nothing is parsed as HTML.
function textNode(text) {
  const div = document.createElement("div");
  div.className = "text";
  const re = /https?:\/\/[^\s<>"]+/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    div.append(text.slice(last, m.index));
    const a = document.createElement("a");
    a.href = m[0]; a.target = "_blank"; a.rel = "noopener"; a.textContent = m[0];
    div.append(a);
    last = m.index + m[0].length;
  }
  div.append(text.slice(last));
  return div;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Delivery status as a phone shows it: ✓ sent, ✓✓ delivered, blue ✓✓ read, ✗ failed.
const TICKS = { queued: "🕓", sending: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "✗" };

function ticks(m) {
  const span = el("span", "ticks " + m.status, TICKS[m.status] || m.status);
  span.title = m.status;
  span.dataset.status = m.status;
  return span;
}

function renderInbound(m) {
  const box = el("div", "msg me" + (m.status === "pending" || m.status === "retrying" ? " pending" : ""));
  box.dataset.id = m.id;
  box.append(textNode(m.text || ""));
  const rejected = m.status === "rejected";
  const meta = el("div", rejected ? "meta bad" : "meta", clock(m.at));
  if (rejected) meta.append(el("span", "", "webhook answered " + m.webhook_status));
  else if (m.status === "retrying") meta.append(el("span", "", "webhook answered " + m.webhook_status + ", retrying"));
  else if (m.status === "pending") meta.append(el("span", "", "accepted, not handled yet"));
  // A line sent with curl straight to the webhook: only the store knows it.
  if (m.via === "webhook") meta.append(el("span", "via", "via the webhook"));
  box.append(meta);
  return box;
}

function renderOutbound(m) {
  const shown = m.shown || {};
  const box = el("div", "msg");
  box.dataset.id = m.id;
  const template = shown.template || m.template;
  if (template) box.append(el("span", "badge", "template · " + template));
  if (m.author && m.author.startsWith("agent:")) box.append(el("span", "badge", "agent"));
  box.append(textNode(shown.text || m.text || ""));
  if (shown.buttons && shown.buttons.length) {
    const row = el("div", "buttons");
    shown.buttons.forEach((title, i) => {
      const b = el("button", "", title);
      b.type = "button";
      b.onclick = () => send({ payload: (shown.button_ids || [])[i] || title, title });
      row.append(b);
    });
    box.append(row);
  }
  if (shown.url_buttons && shown.url_buttons.length) {
    // A template's URL buttons open their link, as on a phone.
    const row = el("div", "buttons");
    shown.url_buttons.forEach((b) => {
      const a = el("a", "link", "↗ " + b.text);
      if (/^https?:\/\//.test(b.url)) a.href = b.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.title = b.url;
      row.append(a);
    });
    box.append(row);
  }
  const meta = el("div", m.status === "failed" ? "meta bad" : "meta");
  meta.append(el("span", "", clock(m.at)), ticks(m));
  if (m.error) {
    const why = el("span", "why", (m.error.code ? "code " + m.error.code + ": " : "") + m.error.reason);
    meta.append(why);
  }
  if (shown.id && shown.channel === "whatsapp") {
    for (const [label, status] of [["delivered", "delivered"], ["read", "read"], ["fail…", "failed"]]) {
      const a = el("a", "", label);
      a.title = "Post a signed '" + status + "' status webhook for " + shown.id;
      a.onclick = () => postStatus(shown.id, status);
      meta.append(a);
    }
  }
  box.append(meta);
  return box;
}

async function postStatus(id, status) {
  const body = { id, status };
  if (status === "failed") {
    const code = prompt("Graph error code for the failed status", "131047");
    if (code === null) return;
    body.code = Number(code) || 131000;
  }
  try {
    const r = await api("POST", "/sandbox/status", body);
    setStatus("Status '" + status + "' posted; webhook answered " + r.status + ".", r.status >= 300);
  } catch (e) { setStatus(e.message, true); }
}

function clock(unix) { return time(new Date(unix * 1000).toISOString()); }

let lastState = null;

async function refresh() {
  const addr = address();
  if (!addr) return;
  const q = "channel=" + ui.channel + "&address=" + encodeURIComponent(addr);
  const [state, fault] = await Promise.all([api("GET", "/sandbox/state?" + q), api("GET", "/sandbox/faults")]);
  renderFault(fault);
  lastState = state;
  state.receivedAt = Date.now();
  renderPanel(state);
  const items = state.conversation;
  const signature = JSON.stringify([ui.channel, addr, items]);
  if (signature === lastRender) return;
  lastRender = signature;
  const log = $("log");
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  const nodes = items.map((m) => (m.direction === "in" ? renderInbound(m) : renderOutbound(m)));
  log.replaceChildren(...(nodes.length ? nodes : [el("div", "empty", "No messages yet. Say hi.")]));
  if (nearBottom || nodes.length <= 1) log.scrollTop = log.scrollHeight;
}

// --- The state panel: what Parley keeps about the contact, from the store ---------------------

function section(id, children) {
  const box = $(id);
  box.replaceChildren(box.querySelector("h2"), ...children);
}

function chip(text, kind) { return el("span", "chip" + (kind ? " " + kind : ""), text); }

function kv(pairs) {
  const dl = el("dl", "kv");
  for (const [k, v] of pairs) {
    const dd = el("dd");
    if (v instanceof Node) dd.append(v); else dd.textContent = v;
    dl.append(el("dt", "", k), dd);
  }
  return dl;
}

function money(m) {
  if (!m) return "";
  try { return new Intl.NumberFormat("de-DE", { style: "currency", currency: m.currency }).format(m.minor / 100); }
  catch (_) { return (m.minor / 100).toFixed(2) + " " + m.currency; }
}

function stamp(ms) { return new Date(ms).toLocaleString([], { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }); }

const CONSENT_KIND = { confirmed: "ok", pending: "warn", revoked: "bad", none: "" };

function renderPanel(s) {
  const inbox = s.handover ? chip("with a person (" + s.inbox_state + ")", "warn") : chip("bot (" + s.inbox_state + ")", "ok");
  inbox.id = "state-handover";
  section("state-contact", s.known
    ? [kv([["Name", s.name || "—"], ["Locale", s.locale || "—"], ["Handled by", inbox],
           ["Assignee", s.assignee || "—"], ["Tags", s.tags.length ? s.tags.join(", ") : "—"]])]
    : [el("p", "hint top", "Nothing stored yet: the customer has not written.")]);
  renderWindow();
  const purposes = Object.entries(s.consent.purposes).map(([p, st]) => {
    const c = chip(st, CONSENT_KIND[st]);
    c.dataset.purpose = p;
    return [p.replace("_", " "), c];
  });
  const events = el("ul", "events");
  for (const e of s.consent.events.slice().reverse()) {
    const li = el("li");
    li.append(el("span", "", stamp(e.at_ms)), el("span", "", e.purpose + ": " + e.from + " → " + e.to),
      el("span", "", e.source + (e.words ? " “" + e.words + "”" : "") + (e.detail ? " (" + e.detail + ")" : "")));
    events.append(li);
  }
  section("state-consent", [kv([["Overall", chip(String(s.consent.overall), CONSENT_KIND[s.consent.overall])], ...purposes]),
    el("h3", "mt", "Audit trail (" + s.consent.events.length + ")"), events]);
  section("state-cart", s.cart ? cartNodes(s.cart) : [el("p", "hint top", "No cart.")]);
  section("state-orders", s.orders.length ? s.orders.map(orderNode) : [el("p", "hint top", "No orders.")]);
  section("state-queues", queueNodes(s.queues));
  const metrics = Object.entries(s.metrics);
  section("state-metrics", metrics.length ? [kv(metrics.map(([k, v]) => [k, String(v)]))]
    : [el("p", "hint top", "Nothing counted yet.")]);
}

// Ticks between refreshes: the server's `now` plus the time since it answered.
function renderWindow() {
  const s = lastState;
  if (!s) return;
  const w = s.window;
  const now = s.now + Math.floor((Date.now() - s.receivedAt) / 1000);
  const left = w.closes_at ? Math.max(0, w.closes_at - now) : 0;
  const nodes = [];
  if (!w.last_inbound_at) {
    nodes.push(chip("closed", "bad"), el("p", "hint", "Opens when the customer writes; until then only approved templates go out."));
  } else if (left > 0) {
    const h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), sec = left % 60;
    const pad = (n) => String(n).padStart(2, "0");
    const cd = el("span", "countdown", h + ":" + pad(m) + ":" + pad(sec));
    cd.id = "window-countdown";
    nodes.push(kv([["State", chip("open", "ok")], ["Closes in", cd], ["Last message", stamp(w.last_inbound_at * 1000)]]));
  } else {
    nodes.push(kv([["State", chip("closed", "bad")], ["Closed at", stamp(w.closes_at * 1000)]]),
      el("p", "hint", "Replies go out as the approved fallback template until the customer writes again."));
  }
  section("state-window", nodes);
}

function cartNodes(c) {
  const lines = el("ul", "lines");
  for (const l of c.lines) {
    const li = el("li");
    li.append(el("span", "", l.quantity + "× " + l.title + " (" + l.sku + ")"), el("span", "", money({ minor: l.unit_price.minor * l.quantity, currency: l.unit_price.currency })));
    lines.append(li);
  }
  const status = chip(c.status.replace("_", " "), c.status === "converted" ? "ok" : "");
  status.id = "cart-status";
  const nodes = [kv([["Status", status], ["Total", c.totals.map(money).join(" + ") || "—"]]), lines];
  if (c.checkout_url) {
    const a = el("a", "checkout", "Checkout link ↗");
    if (/^https?:\/\//.test(c.checkout_url)) a.href = c.checkout_url;
    a.id = "cart-checkout";
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.title = c.checkout_url;
    nodes.push(a);
  }
  if (c.reminded_at) nodes.push(el("p", "hint", "Reminder sent " + stamp(c.reminded_at * 1000) + "."));
  return nodes;
}

function orderNode(o) {
  const box = el("div", "order");
  box.dataset.order = o.order_id;
  box.append(el("div", "title", (o.name || o.order_id) + " · " + o.platform + " · " + (o.total ? money(o.total) : "")));
  const stage = chip(o.stage, o.stage === "cancelled" ? "bad" : "ok");
  stage.className += " stage";
  box.append(kv([["Stage", stage]]));
  for (const t of o.tracking) {
    const p = el("p", "hint", "Parcel " + (t.carrier ? t.carrier + " " : "") + t.number + (t.delivered ? " · delivered" : ""));
    box.append(p);
  }
  const tl = el("ul", "timeline");
  for (const n of o.notifications) {
    const li = el("li");
    li.dataset.key = n.key;
    const what = el("span", "", n.at ? clock(n.at) : "");
    const right = el("span");
    right.append(ticks(n));
    if (n.error) right.append(" " + (n.error.code ? n.error.code + ": " : "") + n.error.reason);
    li.append(what, el("span", "", n.key), right);
    tl.append(li);
  }
  box.append(tl);
  return box;
}

function queueNodes(q) {
  if (!Array.isArray(q)) return [el("p", "hint top", (q && q.error) || "Unavailable.")];
  const table = el("table", "queues");
  const head = el("tr");
  for (const h of ["Queue", "Waiting", "In flight", "Delayed", "DLQ"]) head.append(el("th", "", h));
  table.append(head);
  for (const main of q.filter((x) => !x.dlq)) {
    const dlq = q.find((x) => x.dlq && x.queue === main.queue);
    const tr = el("tr");
    tr.dataset.queue = main.queue;
    const dlqCell = el("td", dlq && dlq.visible > 0 ? "bad" : "", dlq ? String(dlq.visible) : "—");
    dlqCell.dataset.dlq = main.queue;
    tr.append(el("td", "", main.queue), el("td", "", String(main.visible)), el("td", "", String(main.in_flight)),
      el("td", "", String(main.delayed)), dlqCell);
    table.append(tr);
  }
  return [table];
}

function renderFault(f) {
  const box = $("fault");
  if (f && f.remaining > 0) {
    box.textContent = "Next " + f.remaining + " send(s) fail: HTTP " + f.status + ", code " + f.code + ".";
    box.className = "fault active";
  } else {
    box.textContent = "No faults pending.";
    box.className = "fault";
  }
}

// Sends go out one after the other, in the order they were typed or tapped, and the composer
// never blocks: a disabled send button would make the browser drop a message submitted with
// Enter while the previous one is still on its way (implicit submission needs an enabled
// default button), and the customer would not notice.
let sending = Promise.resolve();

function send(content) {
  const addr = address();
  if (!addr) { setStatus("Enter the customer's address first.", true); return Promise.resolve(); }
  const body = Object.assign({ channel: ui.channel, from: addr, name: ui.name }, content);
  const run = sending.then(() => deliver(body));
  sending = run;
  return run;
}

async function deliver(body) {
  try {
    const r = await api("POST", "/sandbox/chat", body);
    if (r.status >= 200 && r.status < 300) setStatus("Delivered to the webhook (" + r.status + ").");
    else if (r.retrying) setStatus("The webhook answered " + r.status + "; retrying as Meta would.", true);
    else setStatus("The webhook answered " + r.status + ".", true);
  } catch (e) {
    setStatus(e.message, true);
  }
  refresh().catch(() => {});
}

function applyChannel() {
  document.body.dataset.channel = ui.channel;
  $("channel").value = ui.channel;
  $("address").value = ui.addresses[ui.channel];
  lastRender = "";
}

$("channel").onchange = (e) => { ui.channel = e.target.value; save(); applyChannel(); refresh().catch(() => {}); };
$("address").oninput = (e) => { ui.addresses[ui.channel] = e.target.value; save(); lastRender = ""; };
$("name").value = ui.name;
$("name").oninput = (e) => { ui.name = e.target.value; save(); };
$("composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  $("text").value = "";
  send({ text });
};
$("fault-set").onclick = async () => {
  const body = { status: Number($("fault-status").value), count: Number($("fault-count").value) || 1 };
  const code = $("fault-code").value.trim();
  if (code) body.code = Number(code);
  try { const r = await api("POST", "/sandbox/faults", body); renderFault(r.fault); setStatus("Fault armed."); }
  catch (e) { setStatus(e.message, true); }
};
$("fault-clear").onclick = async () => {
  try { await api("DELETE", "/sandbox/faults"); renderFault(null); setStatus("Faults cleared."); }
  catch (e) { setStatus(e.message, true); }
};

// --- Shop: orders and shipments as the shop platforms' webhooks ---------------------------------

// Shop orders carry a phone: the WhatsApp number, whichever channel is being chatted on.
function orderPhone() {
  const wa = (ui.channel === "whatsapp" ? address() : (ui.addresses.whatsapp || "").trim().replace(/^\+/, ""));
  return wa ? "+" + wa : "";
}

function webhookText(r) {
  if (r.webhook_status) return "webhook answered " + r.webhook_status;
  return r.webhook_error || "no webhook sent";
}

async function shopAction(label, path, body) {
  try {
    const r = await api("POST", path, body);
    const ok = r.webhook_status >= 200 && r.webhook_status < 300;
    setStatus(label + ": " + r.topic + ", " + webhookText(r) + ".", !ok);
    lastShopRender = "";
    await refreshShop();
    return r;
  } catch (e) {
    setStatus(label + ": " + e.message, true);
    return null;
  }
}

function renderShop() {
  const o = ui.shop.order;
  $("shop-platform").value = ui.shop.platform;
  $("shop-current").textContent = o ? "Last order: " + (o.platform === "shopify" ? "" : "#") + o.name + " (" + o.platform + ")" : "No order yet.";
  for (const id of ["shop-ship", "shop-delivered", "shop-cancel"]) $(id).disabled = !o;
  // WooCommerce has no shipment status to advance.
  if (o && o.platform !== "shopify") $("shop-delivered").disabled = true;
}

async function refreshShop() {
  const o = ui.shop.order;
  if (!o) { $("shop-log").replaceChildren(); return; }
  const list = await api("GET", "/sandbox/shop/deliveries?order_id=" + encodeURIComponent(o.id));
  const signature = JSON.stringify([o.id, list.map((d) => [d.delivery_id, d.status, d.withheld, d.redelivery])]);
  if (signature === lastShopRender) return;
  lastShopRender = signature;
  const items = list.slice(-6).map((d) => {
    const ok = d.status >= 200 && d.status < 300;
    const li = el("li", ok || d.withheld ? "" : "bad");
    const what = d.topic + (d.redelivery ? " (retry)" : "");
    const result = d.withheld ? "held back" : (d.status ? String(d.status) : (d.error ? "unreachable" : "…"));
    li.title = d.error || ("delivery " + d.delivery_id);
    li.append(el("span", "", what), el("span", "", result));
    return li;
  });
  $("shop-log").replaceChildren(...items);
}

$("shop-platform").onchange = (e) => { ui.shop.platform = e.target.value; save(); };
$("shop-order").onclick = async () => {
  const phone = orderPhone();
  if (!phone) { setStatus("Enter the customer's WhatsApp number first.", true); return; }
  $("shop-order").disabled = true;
  // With a cart in the chat, the order is that cart paid through its checkout link (it carries
  // the cart id back, as the link's attribute does on Shopify).
  const cart = lastState && ui.channel === "whatsapp" && lastState.cart && lastState.cart.status !== "converted" ? lastState.cart : null;
  const items = cart ? cart.lines.map((l) => ({ sku: l.sku, title: l.title, quantity: l.quantity, price: (l.unit_price.minor / 100).toFixed(2) })) : SHOP_ITEMS;
  const order = { platform: ui.shop.platform, phone, first_name: ui.name || "Erika", items, currency: "EUR", country: "DE", status: "paid" };
  if (cart) order.attributes = { parley_cart: cart.id };
  const r = await shopAction("Order", "/sandbox/shop/orders", order);
  $("shop-order").disabled = false;
  if (r) {
    ui.shop.order = { id: r.order_id_str, name: r.name, platform: r.platform };
    save();
    renderShop();
    lastShopRender = "";
    refreshShop().catch(() => {});
  }
};
function orderPath(action) { return "/sandbox/shop/orders/" + encodeURIComponent(ui.shop.order.id) + "/" + action; }
$("shop-ship").onclick = () => {
  // A DHL-style 20-digit parcel number.
  let digits = "";
  while (digits.length < 12) digits += Math.floor(Math.random() * 10);
  shopAction("Ship", orderPath("fulfill"), { tracking_company: "DHL", tracking_number: "00340434" + digits, shipment_status: "in_transit" });
};
$("shop-delivered").onclick = () => shopAction("Delivered", orderPath("fulfill"), { shipment_status: "delivered" });
$("shop-cancel").onclick = () => shopAction("Cancel", orderPath("cancel"), {});

// --- Shop events: products, an abandoned checkout, the scheduled functions -----------------------

function renderProduct() {
  const p = ui.product;
  $("product-current").textContent = p ? "Product: " + p.title + " (" + p.skus.join(", ") + ")" : "Product: none yet.";
  $("product-price").disabled = $("product-soldout").disabled = !p;
}

$("product-create").onclick = async () => {
  const n = Math.floor(Math.random() * 900) + 100;
  const title = "Cap " + n;
  const r = await shopAction("New product", "/sandbox/shop/products", {
    platform: "shopify", title, product_type: "Caps",
    variants: [{ sku: "CAP-" + n, title: "One size", price: "14.90", inventory: 5 }],
  });
  if (r) { ui.product = { id: r.product_id_str, title, skus: r.variants.map((v) => v.sku) }; save(); renderProduct(); }
};
$("product-price").onclick = () => shopAction("Price", "/sandbox/shop/products/" + encodeURIComponent(ui.product.id) + "/price", { price: "12.90" });
$("product-soldout").onclick = () => shopAction("Sell out", "/sandbox/shop/products/" + encodeURIComponent(ui.product.id) + "/soldout", {});
$("checkout-abandon").onclick = () => {
  const phone = orderPhone();
  if (!phone) { setStatus("Enter the customer's WhatsApp number first.", true); return; }
  shopAction("Checkout", "/sandbox/shop/checkouts", { phone, first_name: ui.name || "Erika", items: SHOP_ITEMS.slice(0, 1), currency: "EUR", country: "DE" });
};
async function runFunction(name) {
  try {
    const r = await api("POST", "/sandbox/run/" + name);
    const what = r.reminders_sent !== undefined ? r.reminders_sent + " reminder(s) sent"
      : (r.reports ? r.reports.length + " shop(s) reconciled" : "done");
    setStatus(name + ": " + what + ".");
  } catch (e) { setStatus(name + ": " + e.message, true); }
}
$("run-reminder").onclick = () => runFunction("cart-reminder");
$("run-reconciler").onclick = () => runFunction("shop-reconciler");

// --- Phone tabs ---------------------------------------------------------------------------------

function showTab(tab) {
  document.body.dataset.tab = tab;
  for (const b of document.querySelectorAll("nav.tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
}
for (const b of document.querySelectorAll("nav.tabs button")) b.onclick = () => showTab(b.dataset.tab);

applyChannel();
renderShop();
renderProduct();
refresh().catch((e) => setStatus(e.message, true));
refreshShop().catch(() => {});
setInterval(() => refresh().catch(() => {}), 1000);
setInterval(() => refreshShop().catch(() => {}), 2000);
setInterval(renderWindow, 1000);
