// Parley agent console: plain JavaScript, no build step, no third-party code. It talks only to
// the agent API on its own origin (and, in AWS, to the Cognito token endpoint), renders with DOM
// calls only (data never becomes markup), and polls every second with If-None-Match.
"use strict";

// ---------------------------------------------------------------------------------------------
// Strings: every text the console shows, in both languages.
const STRINGS = {
  en: {
    console: "Agent console", skip_to_list: "Skip to the conversations", language: "Language",
    email: "E-mail", role: "Role", role_agent: "Agent", role_admin: "Admin",
    signin_sandbox_hint: "Local sandbox: sign in as any agent. The token comes from POST /sandbox/agent-token, as Cognito would issue it in AWS.",
    signin_cognito_hint: "You sign in with your team account.",
    sign_in: "Sign in", sign_out: "Sign out", signing_in: "Signing in…",
    signin_failed: "Sign-in failed ({status}).", session_expired: "Your session has ended. Please sign in again.",
    not_allowed: "This account may not use the console.", signin_state_mismatch: "The sign-in answer did not match this browser tab. Please try again.",
    conversations: "Conversations", filters: "Filters", state: "State", channel: "Channel", mine: "Mine",
    state_all: "All states", state_waiting: "Waiting", state_assigned: "Assigned", state_bot: "Bot", state_resolved: "Resolved",
    channel_all: "All channels", no_conversations: "No conversations.", pick_conversation: "Pick a conversation.",
    thread: "Conversation", messages: "Messages", contact_panel: "Contact", contact: "Contact",
    back: "Back", back_to_list: "Back to the conversations", back_to_thread: "Back to the conversation",
    claim: "Claim", release: "Release to bot", resolve: "Resolve", older: "Older messages",
    reply: "Reply", reply_placeholder: "Write a reply… (Enter sends, Shift+Enter new line)", send: "Send",
    template: "Template", send_template: "Send template", param: "Parameter {n}",
    window_closed_reason: "The 24-hour window is closed: only an approved template can be sent.",
    no_templates: "No approved template is available.",
    waiting_for: "waiting {d}", window_left: "window {d}", window_closed: "window closed",
    window_open_left: "Open · {d} left", window_is_closed: "Closed: replies need a template.",
    unread: "{n} unread", you: "you", bot: "Bot", customer: "Customer", agent_label: "Agent {id}",
    assigned_to: "Assigned to {who}", handover_state: "State: {state}", handover_waiting: "Waiting since {t} ({d})",
    st_queued: "queued", st_sending: "sending", st_sent: "sent", st_delivered: "delivered", st_read: "read", st_failed: "failed", st_received: "received",
    failed_with: "Not delivered: {code} · {reason}",
    kind_template: "Template {name}", kind_button: "Tapped a button", kind_list_reply: "Picked from a list", kind_order: "Catalog order",
    kind_media: "Media", kind_location: "Location", kind_buttons: "With buttons", kind_list: "With a list",
    consent: "Consent", purpose_order_updates: "Order updates", purpose_marketing: "Marketing",
    consent_confirmed: "confirmed", consent_granted: "granted", consent_revoked: "revoked", consent_none: "not asked", consent_pending: "asked, awaiting YES",
    window: "Customer service window", handover: "Handover",
    cart: "Cart", no_cart: "No open cart.", total: "Total", checkout_link: "Checkout link",
    catalog_search: "Search the catalog", catalog_placeholder: "Name or SKU", catalog_results: "Catalog results",
    cart_draft: "Items to add", add: "Add", add_item: "Add {name}", remove: "Remove", remove_item: "Remove {name}", quantity_of: "Quantity of {name}",
    cart_add: "Add to cart", send_checkout: "Send checkout link", unavailable: "not available",
    cart_sent: "Checkout link sent.", cart_saved: "Cart updated.", nothing_found: "Nothing found.",
    orders: "Orders", no_orders: "No orders.", order_by: "from {agent}'s cart", tracking: "tracking {n}",
    tags: "Tags", add_tag: "Add a tag", notes: "Notes", add_note: "Add a note", save_note: "Save note", no_notes: "No notes.",
    shortcuts: "Keyboard shortcuts", close: "Close",
    k_next: "next / previous conversation", k_move: "move through the list", k_open: "open the focused conversation",
    k_reply: "write a reply", k_send: "send (Shift+Enter: new line)", k_send2: "send from any field of the composer",
    k_back: "back (phone) / to the list", k_help: "this help",
    live: "live", offline: "offline, retrying…", error: "Something went wrong ({status}).", sent_ok: "Sent.",
    claimed: "Claimed.", released: "Back with the bot.", resolved_ok: "Resolved.",
    // Campaigns (admins).
    views: "Views", tab_inbox: "Conversations", tab_campaigns: "Campaigns", campaigns: "Campaigns",
    new_campaign: "New campaign", no_campaigns: "No campaigns yet.", pick_campaign: "Pick a campaign or create a new one.",
    back_to_campaigns: "Back to the campaigns", any: "any",
    cs_draft: "draft", cs_scheduled: "scheduled", cs_running: "running", cs_paused: "paused", cs_cancelled: "cancelled", cs_done: "done",
    cl_progress: "{sent} of {recipients} sent", cl_scheduled_for: "starts {t}",
    cf_message: "Message", cf_name: "Name", cf_name_placeholder: "e.g. Summer sale", cf_language: "Template language",
    cf_marketing_only: "Approved MARKETING templates only.", cf_no_templates: "No approved MARKETING template is available.",
    cf_param_body: "Body {{{n}}}", cf_param_button: "URL button “{label}” {{{n}}}", cf_source: "Value of {what}",
    cf_literal: "Fixed text", cf_text: "Text", cf_fallback: "Fallback (when the field is empty)", cf_fallback_none: "none: skip the contact",
    f_contact_first_name: "Contact: first name", f_contact_name: "Contact: full name", f_contact_locale: "Contact: language",
    f_contact_country: "Contact: country", f_order_last_name: "Last order: name",
    cf_segment: "Who gets it", cf_consent_rule: "Only contacts who confirmed marketing consent; that cannot be turned off. Every filter is optional.",
    sg_locale: "Language (e.g. de)", sg_country: "Country of the phone (e.g. DE)", sg_tags_any: "Any of these tags", sg_tags_all: "All of these tags",
    sg_tags_placeholder: "vip, newsletter", sg_orders_none: "none yet", sg_orders_any: "at least one",
    sg_order_after: "Last order on or after", sg_order_before: "Last order before", sg_spent: "Spent at least (shop currency)",
    sg_cart: "Chat cart", sg_cart_open: "open", sg_cart_checkout_sent: "checkout link sent", sg_cart_converted: "ordered",
    sg_inbound_after: "Last wrote on or after", sg_inbound_before: "Last wrote before",
    count_loading: "Counting…", count_result: "{matched} of {audience} contacts with marketing consent match.",
    count_excluded: "Left out: {list}.",
    cf_when: "When and how fast", cf_now: "Start when I press Start", cf_at: "Start at", cf_start_at: "Start time",
    cf_rate: "Messages per second", cf_rate_hint: "Default 80 (Meta's default per number), up to 1000.",
    cf_daily_cap: "Daily cap", cf_daily_cap_hint: "Default 1000 (the number's first messaging tier).",
    cf_quiet_on: "Quiet hours (recipient's local time)", cf_quiet_start: "Send from", cf_quiet_end: "until", cf_quiet_sundays: "also on Sundays",
    cf_quiet_hint: "Default 09:00–20:00, not on Sundays; a recipient outside the hours waits for their morning. Off: any hour, any day.",
    cf_cap_max: "At most … marketing messages per contact", cf_cap_days: "… in days (all campaigns)",
    cf_attribution: "Orders count for … days after the message",
    cf_create: "Create draft", cf_discard: "Discard", cf_need_name: "Give the campaign a name.", cf_need_time: "Pick the start time.",
    cf_created: "Campaign created as a draft.",
    cr_start: "Start", cr_pause: "Pause", cr_resume: "Resume", cr_cancel: "Cancel campaign",
    cr_cancel_confirm: "Cancel this campaign? Nobody who has not got it yet will get it.",
    cr_started: "Started.", cr_paused: "Paused.", cr_resumed: "Resumed.", cr_cancelled: "Cancelled.",
    cr_meta: "Template {template} ({language}) · created {created}", cr_started_at: "started {t}", cr_finished_at: "finished {t}", cr_starts_at: "starts {t}",
    cr_segment: "Segment: {s}", cr_segment_all: "everyone with marketing consent",
    cr_progress_label: "Progress", cr_progress: "{done} of {recipients} recipients handled: {sent} sent, {failed} failed, {skipped} skipped.",
    cr_progress_waiting: "{n} wait for their quiet hours to end.", cr_progress_running: "Still finding recipients…",
    cr_report: "Report", cr_skipped: "Skipped", cr_failed: "Failed", cr_recipients: "Recipients", cr_none: "None.",
    s_recipients: "Matched", s_sent: "Sent", s_delivered: "Delivered", s_read: "Read", s_failed: "Failed",
    s_clicks: "Clicks", s_click_rate: "Click rate", s_replies: "Replies", s_opt_outs: "Opt-outs", s_orders: "Orders",
    s_conversion: "Conversion", s_revenue: "Revenue", s_revenue_per_recipient: "Revenue per recipient",
    s_of_sent: "{p} of sent", s_clicks_detail: "{unique} people · {total} clicks",
    skip_no_consent: "no marketing consent (any more)", skip_frequency_cap: "frequency cap reached", skip_missing_parameter: "a parameter had no value",
    skip_invalid_address: "invalid address", skip_quiet_hours_pending: "waiting for quiet hours to end", skip_not_in_segment: "not in the segment",
    failed_code: "{count} × code {code}: {reason}",
    st_waiting: "waiting for quiet hours", st_skipped: "skipped",
    r_detail: "{clicks} clicks · {orders} orders", r_due: "due {t}", open_conversation: "Open the conversation",
    first_page: "First page", next_page: "Next page",
  },
  de: {
    console: "Agenten-Konsole", skip_to_list: "Zu den Unterhaltungen springen", language: "Sprache",
    email: "E-Mail", role: "Rolle", role_agent: "Agent", role_admin: "Admin",
    signin_sandbox_hint: "Lokale Sandbox: als beliebiger Agent anmelden. Das Token kommt von POST /sandbox/agent-token, so wie Cognito es in AWS ausstellt.",
    signin_cognito_hint: "Sie melden sich mit Ihrem Team-Konto an.",
    sign_in: "Anmelden", sign_out: "Abmelden", signing_in: "Anmeldung läuft…",
    signin_failed: "Anmeldung fehlgeschlagen ({status}).", session_expired: "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an.",
    not_allowed: "Dieses Konto darf die Konsole nicht nutzen.", signin_state_mismatch: "Die Antwort der Anmeldung passt nicht zu diesem Tab. Bitte erneut versuchen.",
    conversations: "Unterhaltungen", filters: "Filter", state: "Status", channel: "Kanal", mine: "Meine",
    state_all: "Alle Status", state_waiting: "Wartend", state_assigned: "Zugewiesen", state_bot: "Bot", state_resolved: "Erledigt",
    channel_all: "Alle Kanäle", no_conversations: "Keine Unterhaltungen.", pick_conversation: "Wählen Sie eine Unterhaltung.",
    thread: "Unterhaltung", messages: "Nachrichten", contact_panel: "Kontakt", contact: "Kontakt",
    back: "Zurück", back_to_list: "Zurück zu den Unterhaltungen", back_to_thread: "Zurück zur Unterhaltung",
    claim: "Übernehmen", release: "An den Bot zurück", resolve: "Erledigt", older: "Ältere Nachrichten",
    reply: "Antwort", reply_placeholder: "Antwort schreiben… (Enter sendet, Umschalt+Enter neue Zeile)", send: "Senden",
    template: "Vorlage", send_template: "Vorlage senden", param: "Parameter {n}",
    window_closed_reason: "Das 24-Stunden-Fenster ist geschlossen: nur eine freigegebene Vorlage kann gesendet werden.",
    no_templates: "Keine freigegebene Vorlage verfügbar.",
    waiting_for: "wartet seit {d}", window_left: "Fenster {d}", window_closed: "Fenster zu",
    window_open_left: "Offen · noch {d}", window_is_closed: "Geschlossen: Antworten brauchen eine Vorlage.",
    unread: "{n} ungelesen", you: "Sie", bot: "Bot", customer: "Kunde", agent_label: "Agent {id}",
    assigned_to: "Zugewiesen an {who}", handover_state: "Status: {state}", handover_waiting: "Wartet seit {t} ({d})",
    st_queued: "in Warteschlange", st_sending: "wird gesendet", st_sent: "gesendet", st_delivered: "zugestellt", st_read: "gelesen", st_failed: "fehlgeschlagen", st_received: "empfangen",
    failed_with: "Nicht zugestellt: {code} · {reason}",
    kind_template: "Vorlage {name}", kind_button: "Knopf getippt", kind_list_reply: "Aus einer Liste gewählt", kind_order: "Katalogbestellung",
    kind_media: "Medien", kind_location: "Standort", kind_buttons: "Mit Knöpfen", kind_list: "Mit Liste",
    consent: "Einwilligung", purpose_order_updates: "Bestell-Updates", purpose_marketing: "Marketing",
    consent_confirmed: "bestätigt", consent_granted: "erteilt", consent_revoked: "widerrufen", consent_none: "nicht gefragt", consent_pending: "gefragt, JA ausstehend",
    window: "Kundenservice-Fenster", handover: "Übergabe",
    cart: "Warenkorb", no_cart: "Kein offener Warenkorb.", total: "Summe", checkout_link: "Checkout-Link",
    catalog_search: "Katalog durchsuchen", catalog_placeholder: "Name oder SKU", catalog_results: "Katalogtreffer",
    cart_draft: "Hinzuzufügende Artikel", add: "Hinzufügen", add_item: "{name} hinzufügen", remove: "Entfernen", remove_item: "{name} entfernen", quantity_of: "Menge von {name}",
    cart_add: "In den Warenkorb", send_checkout: "Checkout-Link senden", unavailable: "nicht verfügbar",
    cart_sent: "Checkout-Link gesendet.", cart_saved: "Warenkorb aktualisiert.", nothing_found: "Nichts gefunden.",
    orders: "Bestellungen", no_orders: "Keine Bestellungen.", order_by: "aus dem Warenkorb von {agent}", tracking: "Sendung {n}",
    tags: "Tags", add_tag: "Tag hinzufügen", notes: "Notizen", add_note: "Notiz hinzufügen", save_note: "Notiz speichern", no_notes: "Keine Notizen.",
    shortcuts: "Tastenkürzel", close: "Schließen",
    k_next: "nächste / vorige Unterhaltung", k_move: "durch die Liste bewegen", k_open: "fokussierte Unterhaltung öffnen",
    k_reply: "Antwort schreiben", k_send: "senden (Umschalt+Enter: neue Zeile)", k_send2: "aus jedem Feld des Editors senden",
    k_back: "zurück (Telefon) / zur Liste", k_help: "diese Hilfe",
    live: "live", offline: "offline, neuer Versuch…", error: "Etwas ist schiefgelaufen ({status}).", sent_ok: "Gesendet.",
    claimed: "Übernommen.", released: "Wieder beim Bot.", resolved_ok: "Erledigt.",
    // Kampagnen (Admins).
    views: "Ansichten", tab_inbox: "Unterhaltungen", tab_campaigns: "Kampagnen", campaigns: "Kampagnen",
    new_campaign: "Neue Kampagne", no_campaigns: "Noch keine Kampagnen.", pick_campaign: "Wählen Sie eine Kampagne oder legen Sie eine neue an.",
    back_to_campaigns: "Zurück zu den Kampagnen", any: "alle",
    cs_draft: "Entwurf", cs_scheduled: "geplant", cs_running: "läuft", cs_paused: "pausiert", cs_cancelled: "abgebrochen", cs_done: "fertig",
    cl_progress: "{sent} von {recipients} gesendet", cl_scheduled_for: "startet {t}",
    cf_message: "Nachricht", cf_name: "Name", cf_name_placeholder: "z. B. Sommer-Sale", cf_language: "Sprache der Vorlage",
    cf_marketing_only: "Nur freigegebene MARKETING-Vorlagen.", cf_no_templates: "Keine freigegebene MARKETING-Vorlage verfügbar.",
    cf_param_body: "Text {{{n}}}", cf_param_button: "URL-Knopf „{label}“ {{{n}}}", cf_source: "Wert für {what}",
    cf_literal: "Fester Text", cf_text: "Text", cf_fallback: "Ersatz (wenn das Feld leer ist)", cf_fallback_none: "keiner: Kontakt auslassen",
    f_contact_first_name: "Kontakt: Vorname", f_contact_name: "Kontakt: ganzer Name", f_contact_locale: "Kontakt: Sprache",
    f_contact_country: "Kontakt: Land", f_order_last_name: "Letzte Bestellung: Name",
    cf_segment: "Wer sie bekommt", cf_consent_rule: "Nur Kontakte, die Marketing bestätigt haben; das lässt sich nicht abschalten. Jeder Filter ist optional.",
    sg_locale: "Sprache (z. B. de)", sg_country: "Land der Telefonnummer (z. B. DE)", sg_tags_any: "Einer dieser Tags", sg_tags_all: "Alle diese Tags",
    sg_tags_placeholder: "vip, newsletter", sg_orders_none: "noch keine", sg_orders_any: "mindestens eine",
    sg_order_after: "Letzte Bestellung am oder nach", sg_order_before: "Letzte Bestellung vor", sg_spent: "Mindestens ausgegeben (Shop-Währung)",
    sg_cart: "Chat-Warenkorb", sg_cart_open: "offen", sg_cart_checkout_sent: "Checkout-Link gesendet", sg_cart_converted: "bestellt",
    sg_inbound_after: "Zuletzt geschrieben am oder nach", sg_inbound_before: "Zuletzt geschrieben vor",
    count_loading: "Wird gezählt…", count_result: "{matched} von {audience} Kontakten mit Marketing-Einwilligung passen.",
    count_excluded: "Nicht dabei: {list}.",
    cf_when: "Wann und wie schnell", cf_now: "Starten, wenn ich auf Start drücke", cf_at: "Starten um", cf_start_at: "Startzeit",
    cf_rate: "Nachrichten pro Sekunde", cf_rate_hint: "Standard 80 (Metas Standard pro Nummer), bis 1000.",
    cf_daily_cap: "Tageslimit", cf_daily_cap_hint: "Standard 1000 (erste Messaging-Stufe der Nummer).",
    cf_quiet_on: "Ruhezeiten (Ortszeit der Empfänger)", cf_quiet_start: "Senden von", cf_quiet_end: "bis", cf_quiet_sundays: "auch sonntags",
    cf_quiet_hint: "Standard 09:00–20:00, nicht sonntags; wer außerhalb ist, wartet auf seinen Morgen. Aus: jede Stunde, jeden Tag.",
    cf_cap_max: "Höchstens … Marketing-Nachrichten pro Kontakt", cf_cap_days: "… in Tagen (alle Kampagnen)",
    cf_attribution: "Bestellungen zählen … Tage nach der Nachricht",
    cf_create: "Entwurf anlegen", cf_discard: "Verwerfen", cf_need_name: "Geben Sie der Kampagne einen Namen.", cf_need_time: "Wählen Sie die Startzeit.",
    cf_created: "Kampagne als Entwurf angelegt.",
    cr_start: "Starten", cr_pause: "Pausieren", cr_resume: "Fortsetzen", cr_cancel: "Kampagne abbrechen",
    cr_cancel_confirm: "Diese Kampagne abbrechen? Wer sie noch nicht bekommen hat, bekommt sie nicht mehr.",
    cr_started: "Gestartet.", cr_paused: "Pausiert.", cr_resumed: "Fortgesetzt.", cr_cancelled: "Abgebrochen.",
    cr_meta: "Vorlage {template} ({language}) · angelegt {created}", cr_started_at: "gestartet {t}", cr_finished_at: "fertig {t}", cr_starts_at: "startet {t}",
    cr_segment: "Segment: {s}", cr_segment_all: "alle mit Marketing-Einwilligung",
    cr_progress_label: "Fortschritt", cr_progress: "{done} von {recipients} Empfängern bearbeitet: {sent} gesendet, {failed} fehlgeschlagen, {skipped} ausgelassen.",
    cr_progress_waiting: "{n} warten auf das Ende ihrer Ruhezeit.", cr_progress_running: "Empfänger werden noch gesucht…",
    cr_report: "Bericht", cr_skipped: "Ausgelassen", cr_failed: "Fehlgeschlagen", cr_recipients: "Empfänger", cr_none: "Keine.",
    s_recipients: "Erreicht", s_sent: "Gesendet", s_delivered: "Zugestellt", s_read: "Gelesen", s_failed: "Fehlgeschlagen",
    s_clicks: "Klicks", s_click_rate: "Klickrate", s_replies: "Antworten", s_opt_outs: "Abmeldungen", s_orders: "Bestellungen",
    s_conversion: "Konversion", s_revenue: "Umsatz", s_revenue_per_recipient: "Umsatz pro Empfänger",
    s_of_sent: "{p} der gesendeten", s_clicks_detail: "{unique} Personen · {total} Klicks",
    skip_no_consent: "keine Marketing-Einwilligung (mehr)", skip_frequency_cap: "Häufigkeitslimit erreicht", skip_missing_parameter: "ein Parameter hatte keinen Wert",
    skip_invalid_address: "ungültige Adresse", skip_quiet_hours_pending: "wartet auf das Ende der Ruhezeit", skip_not_in_segment: "nicht im Segment",
    failed_code: "{count} × Code {code}: {reason}",
    st_waiting: "wartet auf Ruhezeit-Ende", st_skipped: "ausgelassen",
    r_detail: "{clicks} Klicks · {orders} Bestellungen", r_due: "fällig {t}", open_conversation: "Unterhaltung öffnen",
    first_page: "Erste Seite", next_page: "Nächste Seite",
  },
};

const LANGS = { en: "English", de: "Deutsch" };
let lang = pickLang();

function pickLang() {
  const saved = localStorage.getItem("parley.lang");
  if (saved && STRINGS[saved]) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("de") ? "de" : "en";
}

function t(key, vars) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return vars ? s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? "")) : s;
}

function applyI18n() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
    el.title = t(el.dataset.i18nAria);
  }
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const sel of document.querySelectorAll(".lang-select")) sel.value = lang;
  renderHelp();
}

function setLang(l) {
  lang = STRINGS[l] ? l : "en";
  localStorage.setItem("parley.lang", lang);
  applyI18n();
  renderAll();
}

// ---------------------------------------------------------------------------------------------
// Small helpers.
const $ = (id) => document.getElementById(id);

/** Builds an element: h("li", {class: "x", onclick: f}, "text", child). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Accepts epoch seconds, epoch milliseconds or an RFC 3339 string. */
function toDate(v) {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return new Date(v < 1e12 ? v * 1000 : v);
  if (/^\d+$/.test(String(v))) return toDate(Number(v));
  const d = new Date(v);
  return isNaN(d) ? null : d;
}

function fmtTime(v) {
  const d = toDate(v);
  if (!d) return "";
  const today = new Date().toDateString() === d.toDateString();
  const opts = today ? { hour: "2-digit", minute: "2-digit" } : { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(lang, opts).format(d);
}

/** "45 s", "3 min", "2 h 5 min", "1 d 3 h" (units are the same in both languages, except days). */
function fmtDuration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400), hh = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60);
  const day = lang === "de" ? "T" : "d";
  if (d) return `${d} ${day} ${hh} h`;
  if (hh) return `${hh} h ${m} min`;
  if (m) return `${m} min`;
  return `${secs} s`;
}

function secsSince(v) {
  const d = toDate(v);
  return d ? (Date.now() - d.getTime()) / 1000 : 0;
}

function money(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.map(money).filter(Boolean).join(" + ");
  if (typeof v === "object") {
    if (v.display) return v.display;
    if (v.minor !== undefined && v.currency) {
      const fmt = new Intl.NumberFormat(lang, { style: "currency", currency: v.currency });
      // Minor units per the currency's own digits (JPY 0, EUR 2, KWD 3), not always cents.
      return fmt.format(v.minor / 10 ** fmt.resolvedOptions().maximumFractionDigits);
    }
    return "";
  }
  return String(v);
}

function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

const isTyping = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);

// ---------------------------------------------------------------------------------------------
// State.
const S = {
  config: null,
  token: sessionStorage.getItem("parley.token"),
  me: null,
  convs: [],
  listEtag: null,
  listKey: "",
  open: null,        // {channel, address}
  thread: null,      // the last thread answer
  threadEtag: null,
  threadAt: 0,       // when the thread was fetched (for the window countdown)
  listAt: 0,
  older: [],         // messages from "older" pages, oldest first
  nextBefore: null,
  olderLoaded: false,
  draft: new Map(),  // sku -> {sku, name, price, quantity}
  lastRead: null,
  templates: null,   // a template list from a 409 answer, until the thread says otherwise
  offline: false,
  view: "inbox",     // or "campaigns" (admins)
};

const keyOf = (c) => `${c.channel}/${c.address}`;
const convPath = (c) => `/agent/conversations/${encodeURIComponent(c.channel)}/${encodeURIComponent(c.address)}`;

// ---------------------------------------------------------------------------------------------
// HTTP.
class HttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", body, etag } = {}) {
  const headers = { accept: "application/json" };
  if (S.token) headers.authorization = `Bearer ${S.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (etag) headers["if-none-match"] = etag;
  // no-store: the browser's cache stays out of the way, so a 304 reaches this code as a 304.
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  if (r.status === 304) return { status: 304, etag };
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (r.status === 401 && S.token && !path.startsWith("/sandbox/")) {
    signOut(t("session_expired"));
    throw new HttpError(401, data);
  }
  if (!r.ok) throw new HttpError(r.status, data);
  return { status: r.status, data, etag: r.headers.get("etag") };
}

function errorText(e) {
  if (e instanceof HttpError) return (e.body && e.body.message) || t("error", { status: e.status });
  return t("offline");
}

// ---------------------------------------------------------------------------------------------
// Sign-in.
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomString = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => `${location.origin}/agent/`;

function jwtExp(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof payload.exp === "number" ? payload.exp : null;
  } catch {
    return null;
  }
}

function showSignIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  const cognito = S.config && S.config.auth === "cognito";
  $("signin-sandbox").hidden = cognito;
  $("signin-cognito").hidden = !cognito;
  $("signin-error").textContent = message || "";
  const email = $("signin-email");
  // Locally the form comes pre-filled with a demo agent, so a newcomer is one click away.
  if (!cognito && !email.value) email.value = localStorage.getItem("parley.demoAgent") || "anna@example.com";
  (cognito ? $("signin-submit") : email).focus();
}

async function signIn(ev) {
  ev.preventDefault();
  $("signin-error").textContent = "";
  if (S.config.auth === "cognito") return startCognito();
  const email = $("signin-email").value.trim();
  const role = $("signin-role").value;
  if (!email) {
    $("signin-email").focus();
    return;
  }
  $("signin-submit").disabled = true;
  $("signin-submit").textContent = t("signing_in");
  try {
    const r = await api("/sandbox/agent-token", { method: "POST", body: { agent: email, role } });
    localStorage.setItem("parley.demoAgent", email);
    await useToken(r.data.token);
  } catch (e) {
    $("signin-error").textContent = e instanceof HttpError ? t("signin_failed", { status: e.status }) : t("offline");
  } finally {
    $("signin-submit").disabled = false;
    $("signin-submit").textContent = t("sign_in");
  }
}

async function startCognito() {
  const { domain, client_id } = S.config.cognito;
  const verifier = randomString();
  const state = randomString();
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem("parley.pkce", JSON.stringify({ verifier, state }));
  const q = new URLSearchParams({
    response_type: "code", client_id, redirect_uri: redirectUri(), scope: "openid email profile",
    state, code_challenge: challenge, code_challenge_method: "S256",
  });
  location.assign(`https://${domain}/oauth2/authorize?${q}`);
}

/** The hosted UI came back with ?code=…&state=…: exchange the code (PKCE, no client secret). */
async function finishCognito(params) {
  const saved = JSON.parse(sessionStorage.getItem("parley.pkce") || "null");
  sessionStorage.removeItem("parley.pkce");
  history.replaceState(null, "", "/agent/");
  if (!saved || saved.state !== params.get("state")) return showSignIn(t("signin_state_mismatch"));
  const { domain, client_id } = S.config.cognito;
  const form = new URLSearchParams({
    grant_type: "authorization_code", client_id, code: params.get("code"), redirect_uri: redirectUri(), code_verifier: saved.verifier,
  });
  const r = await fetch(`https://${domain}/oauth2/token`, {
    method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form, cache: "no-store",
  });
  if (!r.ok) return showSignIn(t("signin_failed", { status: r.status }));
  const tokens = await r.json();
  // The ID token carries the e-mail and cognito:groups the API reads; its aud is the client id.
  await useToken(tokens.id_token || tokens.access_token);
}

async function useToken(token) {
  S.token = token;
  sessionStorage.setItem("parley.token", token);
  try {
    S.me = (await api("/agent/me")).data;
  } catch (e) {
    S.token = null;
    sessionStorage.removeItem("parley.token");
    return showSignIn(e instanceof HttpError && e.status === 403 ? t("not_allowed") : t("signin_failed", { status: e.status || 0 }));
  }
  startApp();
}

function signOut(message) {
  S.token = null;
  S.me = null;
  S.view = "inbox";
  Object.assign(C, { list: [], listEtag: null, open: null, report: null, reportEtag: null, recipients: null, recEtag: null, templates: null });
  sessionStorage.removeItem("parley.token");
  stopPolling();
  if (!message && S.config && S.config.auth === "cognito") {
    const q = new URLSearchParams({ client_id: S.config.cognito.client_id, logout_uri: redirectUri() });
    location.assign(`https://${S.config.cognito.domain}/logout?${q}`);
    return;
  }
  showSignIn(message);
}

// ---------------------------------------------------------------------------------------------
// Views (phone: one pane at a time).
function setView(v) {
  $("layout").dataset.view = v;
}

function isPhone() {
  return window.matchMedia("(max-width: 760px)").matches;
}

// ---------------------------------------------------------------------------------------------
// Conversation list.
function listQuery() {
  const q = new URLSearchParams();
  if ($("f-state").value) q.set("state", $("f-state").value);
  if ($("f-channel").value) q.set("channel", $("f-channel").value);
  if ($("f-mine").checked && S.me) q.set("assignee", S.me.id);
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function pollList() {
  const query = listQuery();
  if (query !== S.listKey) {
    S.listKey = query;
    S.listEtag = null;
  }
  const r = await api(`/agent/conversations${query}`, { etag: S.listEtag });
  if (r.status === 304 || query !== S.listKey) return;
  S.listEtag = r.etag;
  S.convs = (r.data && r.data.conversations) || [];
  S.listAt = Date.now();
  renderList();
}

function windowLabel(open, remaining, at) {
  if (!open) return t("window_closed");
  if (remaining === null || remaining === undefined) return t("window_left", { d: "" }).trim();
  return t("window_left", { d: fmtDuration(remaining - (Date.now() - at) / 1000) });
}

function renderList() {
  const ul = $("conv-list");
  const focusedKey = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  const openKey = S.open ? keyOf(S.open) : null;
  ul.replaceChildren();
  $("list-empty").hidden = S.convs.length > 0;
  let rovingSet = false;
  for (const c of S.convs) {
    const key = keyOf(c);
    const selected = key === openKey;
    const li = h("li", {
      class: `conv ${c.state || ""}`, role: "option", "aria-selected": selected ? "true" : "false",
      tabindex: "-1", dataset: { key },
      onclick: () => openConversation(c),
    });
    const name = c.name || c.address_masked || c.address;
    const last = c.last_message;
    const when = c.state === "waiting" && c.waiting_since ? "" : fmtTime(c.last_activity_at || (last && last.at));
    li.append(
      h("span", { class: "name" }, name),
      c.unread > 0 ? h("span", { class: "badge", "aria-label": t("unread", { n: c.unread }) }, String(c.unread)) : h("span", { class: "when" }, when),
      h("span", { class: "preview" }, last ? `${last.direction === "out" ? "↩ " : ""}${last.text || ""}` : ""),
      h("span", { class: "when" }, c.unread > 0 ? when : ""),
      h("span", { class: "meta" },
        h("span", { class: `chip state-${c.state}` }, t(`state_${c.state}`)),
        h("span", {}, channelName(c.channel)),
        h("span", { class: "addr" }, c.address_masked || ""),
        c.state === "waiting" && c.waiting_since ? h("span", { class: "waited" }, t("waiting_for", { d: fmtDuration(secsSince(c.waiting_since)) })) : null,
        h("span", { class: c.window_open ? "" : "chip closed" }, windowLabel(c.window_open, c.window_remaining_secs, S.listAt)),
        c.assignee ? h("span", {}, "→ ", c.assignee === (S.me && S.me.id) ? t("you") : c.assignee) : null,
      ),
    );
    li.setAttribute("aria-label", [name, t(`state_${c.state}`), c.unread > 0 ? t("unread", { n: c.unread }) : "", last ? last.text : ""].filter(Boolean).join(", "));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        openConversation(c);
      }
    });
    if (selected) {
      li.tabIndex = 0;
      rovingSet = true;
    }
    ul.append(li);
  }
  if (!rovingSet && ul.firstElementChild) ul.firstElementChild.tabIndex = 0;
  if (focusedKey) {
    const again = [...ul.children].find((li) => li.dataset.key === focusedKey);
    if (again) focusItem(again);
  }
}

function channelName(ch) {
  return { whatsapp: "WhatsApp", messenger: "Messenger", instagram: "Instagram" }[ch] || ch || "";
}

function focusItem(li) {
  for (const x of $("conv-list").children) x.tabIndex = -1;
  li.tabIndex = 0;
  li.focus();
}

/** Moves through the list by `delta`; opens the conversation when `open`. */
function moveInList(delta, open) {
  const items = [...$("conv-list").children];
  if (!items.length) return;
  const current = items.indexOf(document.activeElement);
  const selected = items.findIndex((li) => li.getAttribute("aria-selected") === "true");
  const from = current >= 0 ? current : selected;
  const next = items[Math.min(items.length - 1, Math.max(0, from < 0 ? 0 : from + delta))];
  focusItem(next);
  if (open) {
    const c = S.convs.find((x) => keyOf(x) === next.dataset.key);
    if (c) openConversation(c, { keepFocus: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Thread.
function openConversation(c, { keepFocus = false } = {}) {
  const same = S.open && keyOf(S.open) === keyOf(c);
  S.open = { channel: c.channel, address: c.address };
  if (!same) {
    S.thread = null;
    S.threadEtag = null;
    S.older = [];
    S.nextBefore = null;
    S.olderLoaded = false;
    S.draft.clear();
    S.templates = null;
    S.lastRead = null;
    $("compose-error").textContent = "";
    $("cart-result").textContent = "";
    $("reply-text").value = "";
    $("cat-results").replaceChildren();
    $("cat-search").value = "";
  }
  for (const li of $("conv-list").children) li.setAttribute("aria-selected", li.dataset.key === keyOf(c) ? "true" : "false");
  $("thread-empty").hidden = true;
  $("thread").hidden = false;
  $("panel").hidden = false;
  setView("thread");
  renderDraft();
  if (!keepFocus) $("reply-text").hidden || $("compose-text").hidden ? $("messages").focus() : $("reply-text").focus();
  pollThread().catch(onPollError);
}

async function pollThread() {
  if (!S.open) return;
  const key = keyOf(S.open);
  const r = await api(`${convPath(S.open)}?limit=50`, { etag: S.threadEtag });
  if (!S.open || keyOf(S.open) !== key || r.status === 304) return;
  S.threadEtag = r.etag;
  S.thread = r.data;
  S.threadAt = Date.now();
  if (!S.olderLoaded) S.nextBefore = r.data.next_before || null;
  S.templates = null;
  renderThread();
  markRead();
}

async function loadOlder() {
  if (!S.open || !S.nextBefore) return;
  const key = keyOf(S.open);
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  const r = await api(`${convPath(S.open)}?limit=50&before=${encodeURIComponent(S.nextBefore)}`);
  if (!S.open || keyOf(S.open) !== key) return;
  S.older = [...(r.data.messages || []), ...S.older];
  S.nextBefore = r.data.next_before || null;
  S.olderLoaded = true;
  renderMessages();
  box.scrollTop = box.scrollHeight - fromBottom; // keep the reader's place
}

async function markRead() {
  const c = S.thread && S.thread.contact;
  if (!c || !(c.unread > 0) || document.hidden || S.lastRead === S.threadEtag) return;
  S.lastRead = S.threadEtag;
  try {
    await api(`${convPath(S.open)}/read`, { method: "POST" });
  } catch {
    /* the badge stays; the next poll tries again */
    S.lastRead = null;
  }
}

function authorLabel(m) {
  const a = m.author || (m.direction === "in" ? "customer" : "bot");
  if (a === "customer") return (S.thread && S.thread.contact && S.thread.contact.name) || t("customer");
  if (a === "bot") return t("bot");
  if (a.startsWith("agent:")) {
    const id = a.slice(6);
    return id === (S.me && S.me.id) ? `${t("agent_label", { id })} (${t("you")})` : t("agent_label", { id });
  }
  return a;
}

function statusTick(status) {
  const marks = { queued: "🕓", sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠" };
  if (!marks[status]) return null;
  return h("span", { class: `tick ${status}`, title: t(`st_${status}`), "aria-label": t(`st_${status}`) }, marks[status]);
}

function messageItem(m) {
  const out = m.direction === "out";
  const author = m.author || (out ? "bot" : "customer");
  const failed = m.status === "failed";
  let kind = null;
  if (m.template) {
    const name = typeof m.template === "object" ? m.template.name : m.template;
    kind = t("kind_template", { name });
  } else if (m.kind && m.kind !== "text" && STRINGS.en[`kind_${m.kind}`]) {
    kind = t(`kind_${m.kind}`);
  }
  return h("li", {
    class: `msg ${out ? "out" : "in"} ${author === "bot" ? "bot" : ""} ${failed ? "failed" : ""}`,
    dataset: { id: m.id, direction: m.direction, status: m.status || "" },
  },
    h("div", { class: "author" }, authorLabel(m)),
    kind ? h("div", { class: "kind" }, kind) : null,
    h("div", { class: "text" }, m.text || ""),
    failed && m.error ? h("div", { class: "fail" }, t("failed_with", { code: m.error.code ?? "", reason: m.error.reason || "" })) : null,
    h("div", { class: "foot" }, h("time", { datetime: toDate(m.at) ? toDate(m.at).toISOString() : "" }, fmtTime(m.at)), out ? statusTick(m.status) : null),
  );
}

function allMessages() {
  const latest = (S.thread && S.thread.messages) || [];
  const ids = new Set(latest.map((m) => m.id));
  return [...S.older.filter((m) => !ids.has(m.id)), ...latest];
}

function renderMessages() {
  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const list = $("msg-list");
  list.replaceChildren(...allMessages().map(messageItem));
  $("older").hidden = !S.nextBefore;
  if (nearBottom || !renderMessages.done) box.scrollTop = box.scrollHeight;
  renderMessages.done = true;
}

function renderThread() {
  const th = S.thread;
  if (!th) return;
  const c = th.contact || {};
  $("t-name").textContent = c.name || c.address_masked || c.address || "";
  $("t-channel").textContent = channelName(c.channel);
  $("t-address").textContent = c.address_masked || "";
  const st = $("t-state");
  st.textContent = t(`state_${c.state}`) + (c.assignee ? ` · ${c.assignee === (S.me && S.me.id) ? t("you") : c.assignee}` : "");
  st.className = `chip state state-${c.state}`;
  const mine = c.state === "assigned" && S.me && c.assignee === S.me.id;
  $("act-claim").hidden = mine;
  $("act-release").hidden = c.state === "bot" || c.state === "resolved";
  $("act-resolve").hidden = c.state === "resolved";
  renderMessages();
  renderComposer();
  renderPanel();
}

// ---------------------------------------------------------------------------------------------
// Composer.
function replyInfo() {
  const reply = (S.thread && S.thread.reply) || { text_allowed: true, templates: [] };
  if (S.templates) return { text_allowed: false, reason: reply.reason, templates: S.templates };
  return reply;
}

function renderComposer() {
  const reply = replyInfo();
  const textMode = reply.text_allowed !== false;
  $("compose-text").hidden = !textMode;
  $("compose-template").hidden = textMode;
  if (textMode) return;
  $("window-reason").textContent = typeof reply.reason === "string" && reply.reason ? reply.reason : t("window_closed_reason");
  const sel = $("tpl-select");
  const templates = reply.templates || [];
  const prev = sel.value;
  sel.replaceChildren(...templates.map((tp, i) => h("option", { value: String(i) }, `${tp.name} (${tp.language})${tp.category ? ` · ${tp.category}` : ""}`)));
  if (prev && Number(prev) < templates.length) sel.value = prev;
  $("send-template").disabled = templates.length === 0;
  if (!templates.length) $("tpl-preview").textContent = t("no_templates");
  renderTemplateParams();
}

function selectedTemplate() {
  const templates = replyInfo().templates || [];
  return templates[Number($("tpl-select").value)] || null;
}

function renderTemplateParams() {
  const tp = selectedTemplate();
  const box = $("tpl-params");
  if (!tp) {
    box.replaceChildren();
    return;
  }
  const n = typeof tp.parameters === "number" ? tp.parameters : (tp.parameters || []).length;
  const old = [...box.querySelectorAll("input")].map((i) => i.value);
  if (box.dataset.template !== `${tp.name}/${tp.language}` || box.children.length !== n) {
    box.dataset.template = `${tp.name}/${tp.language}`;
    box.replaceChildren(...Array.from({ length: n }, (_, i) => {
      const id = `tpl-param-${i + 1}`;
      return h("div", {},
        h("label", { for: id }, t("param", { n: i + 1 })),
        h("input", { id, autocomplete: "off", value: old[i] || "", oninput: renderTemplatePreview }),
      );
    }));
  }
  renderTemplatePreview();
}

function renderTemplatePreview() {
  const tp = selectedTemplate();
  if (!tp) return;
  const values = [...$("tpl-params").querySelectorAll("input")].map((i) => i.value);
  $("tpl-preview").textContent = (tp.preview || "").replace(/\{\{(\d+)\}\}/g, (m, n) => values[Number(n) - 1] || m);
}

async function sendReply(ev) {
  if (ev) ev.preventDefault();
  if (!S.open) return;
  const textMode = !$("compose-text").hidden;
  let body;
  if (textMode) {
    const text = $("reply-text").value.trim();
    if (!text) return;
    body = { text };
  } else {
    const tp = selectedTemplate();
    if (!tp) return;
    body = { template: { name: tp.name, language: tp.language, parameters: [...$("tpl-params").querySelectorAll("input")].map((i) => i.value) } };
  }
  $("compose-error").textContent = "";
  const button = textMode ? $("send") : $("send-template");
  button.disabled = true;
  try {
    await api(`${convPath(S.open)}/messages`, { method: "POST", body });
    if (textMode) $("reply-text").value = "";
    else for (const i of $("tpl-params").querySelectorAll("input")) i.value = "";
    await refreshNow();
    (textMode ? $("reply-text") : $("tpl-select")).focus();
  } catch (e) {
    if (e instanceof HttpError && e.status === 409 && e.body && e.body.error === "window_closed") {
      // The window closed since the thread was loaded: switch to the template picker.
      S.templates = e.body.templates || (S.thread && S.thread.reply && S.thread.reply.templates) || [];
      renderComposer();
      $("compose-error").textContent = e.body.message || t("window_closed_reason");
      $("tpl-select").focus();
    } else {
      $("compose-error").textContent = errorText(e);
    }
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Contact panel.
function renderPanel() {
  const th = S.thread;
  if (!th) return;
  const c = th.contact || {};
  renderWindow();

  const ho = [t("handover_state", { state: t(`state_${c.state}`) })];
  if (c.assignee) ho.push(t("assigned_to", { who: c.assignee === (S.me && S.me.id) ? `${c.assignee} (${t("you")})` : c.assignee }));
  if (c.state === "waiting" && c.waiting_since) ho.push(t("handover_waiting", { t: fmtTime(c.waiting_since), d: fmtDuration(secsSince(c.waiting_since)) }));
  $("p-handover").replaceChildren(...ho.map((x) => h("span", { class: "line" }, x, h("br"))));

  const consent = c.consent || {};
  $("p-consent").replaceChildren(...Object.entries(consent).flatMap(([purpose, v]) => {
    const state = (v && v.state) || "none";
    const ev = v && v.latest_event;
    return [
      h("dt", {}, STRINGS.en[`purpose_${purpose}`] ? t(`purpose_${purpose}`) : purpose),
      h("dd", { dataset: { purpose } }, STRINGS.en[`consent_${state}`] ? t(`consent_${state}`) : state, ev ? h("span", { class: "sub" }, describeEvent(ev)) : null),
    ];
  }));

  renderCart();

  const orders = th.orders || [];
  $("p-orders").replaceChildren(...(orders.length ? orders.map((o) => h("li", {},
    h("strong", {}, o.name || o.order_id), " · ", money(o.total), " · ", o.state || "", " ",
    h("span", { class: "hint" }, o.platform || ""),
    o.agent ? h("div", { class: "hint" }, t("order_by", { agent: o.agent })) : null,
    (o.notifications || []).length || (o.fulfillments || []).length ? h("ol", { class: "timeline" },
      ...(o.notifications || []).map((n) => h("li", {}, [fmtTime(n.at), n.kind, n.status].filter(Boolean).join(" · "))),
      ...(o.fulfillments || []).map((f) => h("li", {}, [f.status, f.carrier, (f.tracking || []).length ? t("tracking", { n: f.tracking.join(", ") }) : ""].filter(Boolean).join(" · "))),
    ) : null,
  )) : [h("li", { class: "hint" }, t("no_orders"))]));

  const tags = c.tags || [];
  $("p-tags").replaceChildren(...tags.map((tag) => h("li", {}, tag,
    h("button", { type: "button", "aria-label": t("remove_item", { name: tag }), title: t("remove_item", { name: tag }), onclick: () => changeTags([], [tag]) }, "×"))));

  const notes = th.notes || [];
  $("p-notes").replaceChildren(...(notes.length ? notes.map((n) => h("li", {},
    h("div", { class: "by" }, `${n.author || ""} · ${fmtTime(n.at)}`), h("div", { class: "text" }, n.text))) : [h("li", { class: "hint" }, t("no_notes"))]));
}

/** A consent audit event: `{from, to, source, detail, at_ms}` → "not asked → confirmed · chat · 10:02". */
function describeEvent(ev) {
  if (typeof ev !== "object") return String(ev);
  const state = (s) => (STRINGS.en[`consent_${s}`] ? t(`consent_${s}`) : s);
  const what = ev.to ? `${ev.from ? `${state(ev.from)} → ` : ""}${state(ev.to)}` : ev.kind || ev.event || "";
  return [what, ev.source, ev.detail, fmtTime(ev.at_ms ?? ev.at)].filter(Boolean).join(" · ");
}

function renderWindow() {
  const c = (S.thread && S.thread.contact) || {};
  const el = $("p-window");
  if (!S.thread) return;
  if (c.window_open) {
    const left = (c.window_remaining_secs ?? 0) - (Date.now() - S.threadAt) / 1000;
    el.textContent = t("window_open_left", { d: fmtDuration(left) });
    el.className = "";
  } else {
    el.textContent = t("window_is_closed");
    el.className = "error";
  }
}

function renderCart() {
  const cart = S.thread && S.thread.cart;
  const box = $("p-cart");
  if (!cart || !(cart.lines || []).length) {
    box.replaceChildren(h("p", { class: "hint" }, t("no_cart")));
    return;
  }
  box.replaceChildren(
    h("table", { class: "cart-lines" },
      h("tbody", {}, ...cart.lines.map((l) => h("tr", {},
        h("td", {}, `${l.quantity} × ${l.name || l.sku}`, h("span", { class: "hint" }, ` ${l.sku}`)),
        h("td", { class: "num" }, money(l.line_total))))),
      h("tfoot", {}, h("tr", {}, h("td", {}, t("total")), h("td", { class: "num" }, money(cart.total))))),
    cart.checkout_url ? h("p", {}, h("a", { href: cart.checkout_url, target: "_blank", rel: "noopener noreferrer" }, t("checkout_link"))) : null,
  );
}

// Catalog search and the cart draft.
let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(searchCatalog, 250);
}

async function searchCatalog() {
  const q = $("cat-search").value.trim();
  const ul = $("cat-results");
  try {
    const r = await api(`/agent/catalog?q=${encodeURIComponent(q)}`);
    const products = (r.data && r.data.products) || [];
    ul.replaceChildren(...(products.length ? products.map((p) => h("li", { dataset: { sku: p.sku } },
      h("span", { class: `nm ${p.available === false ? "unavailable" : ""}` }, `${p.name} `, h("span", { class: "hint" }, p.sku)),
      h("span", {}, money(p.price)),
      h("button", {
        type: "button", class: "secondary", disabled: p.available === false,
        "aria-label": t("add_item", { name: p.name }), title: p.available === false ? t("unavailable") : t("add_item", { name: p.name }),
        onclick: () => addToDraft(p),
      }, "+"),
    )) : [h("li", { class: "hint" }, t("nothing_found"))]));
  } catch (e) {
    ul.replaceChildren(h("li", { class: "error" }, errorText(e)));
  }
}

function addToDraft(p) {
  const line = S.draft.get(p.sku) || { sku: p.sku, name: p.name, price: p.price, quantity: 0 };
  line.quantity += 1;
  S.draft.set(p.sku, line);
  renderDraft();
}

function renderDraft() {
  const ul = $("draft");
  ul.replaceChildren(...[...S.draft.values()].map((l) => h("li", { dataset: { sku: l.sku } },
    h("span", { class: "nm" }, l.name),
    h("input", {
      type: "number", min: "1", max: "99", value: String(l.quantity), "aria-label": t("quantity_of", { name: l.name }),
      onchange: (e) => { l.quantity = Math.max(1, Number(e.target.value) || 1); },
    }),
    h("button", { type: "button", class: "secondary", "aria-label": t("remove_item", { name: l.name }), title: t("remove_item", { name: l.name }), onclick: () => { S.draft.delete(l.sku); renderDraft(); } }, "×"),
  )));
  $("cart-save").disabled = S.draft.size === 0;
}

async function submitCart(sendLink) {
  if (!S.open) return;
  const items = [...S.draft.values()].map((l) => ({ sku: l.sku, quantity: l.quantity }));
  if (!items.length && !sendLink) return;
  const result = $("cart-result");
  result.textContent = "";
  for (const b of [$("cart-save"), $("cart-send")]) b.disabled = true;
  try {
    const r = await api(`${convPath(S.open)}/cart`, { method: "POST", body: { items, send_checkout_link: sendLink } });
    S.draft.clear();
    renderDraft();
    const url = r.data && r.data.checkout_url;
    result.replaceChildren(sendLink ? t("cart_sent") : t("cart_saved"), " ",
      url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, t("checkout_link")) : "");
    await refreshNow();
  } catch (e) {
    result.textContent = errorText(e);
  } finally {
    $("cart-send").disabled = false;
    $("cart-save").disabled = S.draft.size === 0;
  }
}

// Actions, tags and notes.
async function act(action, okKey) {
  if (!S.open) return;
  try {
    await api(`${convPath(S.open)}/${action}`, { method: "POST" });
    toast(t(okKey));
    await refreshNow();
  } catch (e) {
    toast(errorText(e));
  }
}

async function changeTags(add, remove) {
  try {
    await api(`${convPath(S.open)}/tags`, { method: "POST", body: { add, remove } });
    await refreshNow();
  } catch (e) {
    toast(errorText(e));
  }
}

async function addNote(ev) {
  ev.preventDefault();
  const text = $("note-input").value.trim();
  if (!text || !S.open) return;
  try {
    await api(`${convPath(S.open)}/notes`, { method: "POST", body: { text } });
    $("note-input").value = "";
    await refreshNow();
  } catch (e) {
    toast(errorText(e));
  }
}

// ---------------------------------------------------------------------------------------------
// Campaigns (admins): the list with progress, a new campaign from an approved MARKETING template
// with a segment and its live count, start/pause/resume/cancel, and the report with its
// per-recipient list. Polled every 2 s with If-None-Match while the view is open.
const C = {
  list: [],
  listEtag: null,
  open: null,        // the open campaign's id
  report: null,
  reportEtag: null,
  recipients: null,  // the current page's answer
  recEtag: null,
  recKey: "",        // the page's query, so a changed filter or page drops the old ETag
  pages: [],         // `after` of each page shown so far (null: the first)
  templates: null,   // the marketing templates, once loaded
  countSeq: 0,
};

/** The fields a parameter may name (shared/src/domain/campaign.rs FIELD_NAMES). */
const PARAM_FIELDS = ["contact.first_name", "contact.name", "contact.locale", "contact.country", "order.last_name"];
const fieldLabel = (f) => t(`f_${f.replace(".", "_")}`);

const isAdmin = () => !!(S.me && S.me.role === "admin");
const fmtNum = (n) => new Intl.NumberFormat(lang).format(n || 0);
const fmtPct = (x) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(x || 0);
const campPath = (id) => `/campaigns/${encodeURIComponent(id)}`;
const stateLabel = (s) => (STRINGS.en[`cs_${s}`] ? t(`cs_${s}`) : s);
const skipLabel = (k) => (STRINGS.en[`skip_${k}`] ? t(`skip_${k}`) : k.replace(/_/g, " "));
const moneyMap = (m) => Object.entries(m || {}).map(([currency, minor]) => money({ currency, minor })).join(" · ");

function showView(v) {
  if (v === "campaigns" && !isAdmin()) v = "inbox";
  S.view = v;
  $("layout").hidden = v !== "inbox";
  $("campaigns").hidden = v !== "campaigns";
  for (const [id, name] of [["tab-inbox", "inbox"], ["tab-campaigns", "campaigns"]]) {
    if (v === name) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (v === "campaigns") renderCampaigns();
  refreshNow();
}

function setCampView(v) {
  $("campaigns").dataset.view = v;
}

async function pollCampaigns() {
  await Promise.all([pollCampaignList(), pollReport(), pollRecipients()]);
}

async function pollCampaignList() {
  const r = await api("/campaigns", { etag: C.listEtag });
  if (r.status === 304) return;
  C.listEtag = r.etag;
  C.list = (r.data && r.data.campaigns) || [];
  renderCampaignList();
}

function renderCampaigns() {
  renderCampaignList();
  if (C.report) renderReport();
  if (C.recipients) renderRecipients();
  if (C.templates && !$("camp-form").hidden) renderParamRows();
}

function renderCampaignList() {
  const ul = $("camp-list");
  $("camp-list-empty").hidden = C.list.length > 0;
  ul.replaceChildren(...C.list.map((c) => {
    const done = c.sent + c.failed + c.skipped;
    const li = h("li", { class: "camp", dataset: { id: c.id, state: c.state }, "aria-current": c.id === C.open ? "true" : null },
      h("button", { type: "button", class: "camp-open", onclick: () => openCampaign(c.id) },
        h("span", { class: "name" }, c.name || c.id),
        h("span", { class: `chip cs-${c.state}` }, stateLabel(c.state)),
        h("span", { class: "meta" },
          c.state === "scheduled" && c.start_at ? t("cl_scheduled_for", { t: fmtTime(c.start_at) }) : fmtTime(c.started_at || c.created_at),
          " · ", t("cl_progress", { sent: fmtNum(c.sent), recipients: fmtNum(c.recipients) })),
        h("progress", { max: String(Math.max(1, c.recipients)), value: String(Math.min(done, c.recipients)), "aria-hidden": "true" }),
      ));
    return li;
  }));
}

// The report of one campaign.
function openCampaign(id) {
  if (C.open !== id) {
    C.open = id;
    C.report = null;
    C.reportEtag = null;
    C.recipients = null;
    C.recEtag = null;
    C.pages = [null];
    $("cr-filter").value = "";
    $("cr-error").textContent = "";
  }
  $("camp-empty").hidden = true;
  $("camp-form").hidden = true;
  setCampView("detail");
  renderCampaignList();
  Promise.all([pollReport(), pollRecipients()]).catch(onPollError);
}

async function pollReport() {
  if (!C.open) return;
  const id = C.open;
  const r = await api(campPath(id), { etag: C.reportEtag });
  if (C.open !== id || r.status === 304) return;
  C.reportEtag = r.etag;
  C.report = r.data;
  renderReport();
}

function recQuery() {
  const q = new URLSearchParams({ limit: "25" });
  const after = C.pages[C.pages.length - 1];
  if (after) q.set("after", after);
  if ($("cr-filter").value) q.set("status", $("cr-filter").value);
  return `?${q}`;
}

async function pollRecipients() {
  if (!C.open) return;
  const id = C.open;
  const key = `${id}${recQuery()}`;
  if (key !== C.recKey) {
    C.recKey = key;
    C.recEtag = null;
  }
  const r = await api(`${campPath(id)}/recipients${recQuery()}`, { etag: C.recEtag });
  if (C.open !== id || key !== C.recKey || r.status === 304) return;
  C.recEtag = r.etag;
  C.recipients = r.data;
  renderRecipients();
}

function segmentSummary(sg) {
  const parts = [];
  const day = (v) => new Intl.DateTimeFormat(lang, { dateStyle: "medium" }).format(new Date(v * 1000));
  if (sg.channel) parts.push(channelName(sg.channel));
  if (sg.locale) parts.push(`${t("sg_locale").replace(/ \(.*\)$/, "")} ${sg.locale}`);
  if (sg.country) parts.push(`${t("sg_country").replace(/ \(.*\)$/, "")} ${sg.country}`);
  if ((sg.tags_any || []).length) parts.push(`${t("sg_tags_any")}: ${sg.tags_any.join(", ")}`);
  if ((sg.tags_all || []).length) parts.push(`${t("sg_tags_all")}: ${sg.tags_all.join(", ")}`);
  if (sg.orders) parts.push(`${t("orders")}: ${t(`sg_orders_${sg.orders}`)}`);
  if (sg.last_order_after) parts.push(`${t("sg_order_after")} ${day(sg.last_order_after)}`);
  if (sg.last_order_before) parts.push(`${t("sg_order_before")} ${day(sg.last_order_before)}`);
  if (sg.spent_at_least) parts.push(`${t("sg_spent")} ${shopMajor(sg.spent_at_least)}`);
  if (sg.cart) parts.push(`${t("sg_cart")}: ${t(`sg_cart_${sg.cart}`)}`);
  if (sg.last_inbound_after) parts.push(`${t("sg_inbound_after")} ${day(sg.last_inbound_after)}`);
  if (sg.last_inbound_before) parts.push(`${t("sg_inbound_before")} ${day(sg.last_inbound_before)}`);
  return parts.length ? parts.join(" · ") : t("cr_segment_all");
}

function renderReport() {
  const r = C.report;
  $("camp-report").hidden = !r;
  if (!r) return;
  $("cr-name").textContent = r.name || r.id;
  const st = $("cr-state");
  st.textContent = stateLabel(r.state);
  st.className = `chip cs-${r.state}`;
  const meta = [t("cr_meta", { template: r.template || "", language: r.language || "", created: fmtTime(r.created_at) })];
  if (r.state === "scheduled" && r.start_at) meta.push(t("cr_starts_at", { t: fmtTime(r.start_at) }));
  if (r.started_at) meta.push(t("cr_started_at", { t: fmtTime(r.started_at) }));
  if (r.finished_at) meta.push(t("cr_finished_at", { t: fmtTime(r.finished_at) }));
  $("cr-meta").textContent = meta.join(" · ");
  $("cr-segment").textContent = t("cr_segment", { s: segmentSummary(r.segment || {}) });
  $("cr-start").hidden = r.state !== "draft";
  $("cr-pause").hidden = !(r.state === "running" || r.state === "scheduled");
  $("cr-resume").hidden = r.state !== "paused";
  $("cr-cancel").hidden = r.state === "done" || r.state === "cancelled";

  const skipped = r.skipped || {};
  const waiting = skipped.quiet_hours_pending || 0;
  const skippedTotal = Object.entries(skipped).filter(([k]) => k !== "quiet_hours_pending").reduce((a, [, v]) => a + v, 0);
  const done = Math.min(r.recipients, r.sent + r.failed + skippedTotal);
  const bar = $("cr-progress");
  bar.max = Math.max(1, r.recipients);
  bar.value = done;
  const lines = [t("cr_progress", { done: fmtNum(done), recipients: fmtNum(r.recipients), sent: fmtNum(r.sent), failed: fmtNum(r.failed), skipped: fmtNum(skippedTotal) })];
  if (waiting) lines.push(t("cr_progress_waiting", { n: fmtNum(waiting) }));
  if (r.state === "running") lines.push(t("cr_progress_running"));
  $("cr-progress-text").textContent = lines.join(" ");

  const ofSent = (n) => (r.sent > 0 ? t("s_of_sent", { p: fmtPct(n / r.sent) }) : "");
  const stats = [
    ["recipients", fmtNum(r.recipients)],
    ["sent", fmtNum(r.sent)],
    ["delivered", fmtNum(r.delivered), ofSent(r.delivered)],
    ["read", fmtNum(r.read), ofSent(r.read)],
    ["failed", fmtNum(r.failed)],
    ["clicks", fmtNum(r.clicks_unique), t("s_clicks_detail", { unique: fmtNum(r.clicks_unique), total: fmtNum(r.clicks_total) })],
    ["click_rate", fmtPct(r.click_rate)],
    ["replies", fmtNum(r.replies)],
    ["opt_outs", fmtNum(r.opt_outs)],
    ["orders", fmtNum(r.orders)],
    ["conversion", fmtPct(r.conversion_rate)],
    ["revenue", moneyMap(r.revenue) || "–"],
    ["revenue_per_recipient", moneyMap(r.revenue_per_recipient) || "–"],
  ];
  $("cr-stats").replaceChildren(...stats.map(([k, v, sub]) => h("div", { class: "stat" },
    h("dt", {}, t(`s_${k}`)), h("dd", { dataset: { stat: k } }, h("span", { class: "v" }, v), sub ? h("span", { class: "sub" }, sub) : null))));

  const skipRows = Object.entries(skipped).filter(([, v]) => v > 0);
  $("cr-skipped").replaceChildren(...(skipRows.length
    ? skipRows.flatMap(([k, v]) => [h("dt", {}, skipLabel(k)), h("dd", { dataset: { skip: k } }, fmtNum(v))])
    : [h("dt", { class: "hint" }, t("cr_none")), h("dd", {})]));
  const failed = r.failed_by_code || [];
  $("cr-failed").replaceChildren(...(failed.length
    ? failed.map((f) => h("li", { dataset: { code: String(f.code) } }, t("failed_code", { count: fmtNum(f.count), code: f.code, reason: f.reason || "" })))
    : [h("li", { class: "hint" }, t("cr_none"))]));
}

function renderRecipients() {
  const page = C.recipients || { recipients: [], next: null };
  const list = page.recipients || [];
  $("cr-recipients").replaceChildren(...(list.length ? list.map((r) => {
    const [channel, address] = r.contact.split("#");
    const detail = [];
    if (r.status === "failed" && r.error_code) detail.push(t("failed_with", { code: r.error_code, reason: r.error_reason || "" }));
    if (r.status === "skipped" && r.reason) detail.push(skipLabel(r.reason));
    if (r.status === "waiting" && r.due_at) detail.push(t("r_due", { t: fmtTime(r.due_at) }));
    return h("li", { class: `rcpt ${r.status}`, dataset: { contact: r.contact, status: r.status } },
      h("span", { class: "who" }, r.address_masked || "", " ", h("span", { class: "hint" }, channelName(r.channel || channel))),
      h("span", { class: `chip rs-${r.status}` }, STRINGS.en[`st_${r.status}`] ? t(`st_${r.status}`) : r.status),
      detail.length ? h("span", { class: "detail" }, detail.join(" · ")) : null,
      h("span", { class: "hint counts" }, t("r_detail", { clicks: fmtNum(r.clicks), orders: fmtNum(r.orders) })),
      h("button", {
        type: "button", class: "ghost open-conv", "aria-label": t("open_conversation"), title: t("open_conversation"),
        onclick: () => { showView("inbox"); openConversation({ channel, address }); },
      }, "💬"),
    );
  }) : [h("li", { class: "hint" }, t("cr_none"))]));
  $("cr-next").disabled = !page.next;
  $("cr-first").disabled = C.pages.length <= 1;
}

function recipientsPage(which) {
  if (which === "next" && C.recipients && C.recipients.next) C.pages.push(C.recipients.next);
  else if (which === "first") C.pages = [null];
  pollRecipients().catch((e) => { $("cr-error").textContent = errorText(e); });
}

async function campaignAction(action, okKey) {
  if (!C.open) return;
  if (action === "cancel" && !window.confirm(t("cr_cancel_confirm"))) return;
  $("cr-error").textContent = "";
  const buttons = ["cr-start", "cr-pause", "cr-resume", "cr-cancel"].map($);
  for (const b of buttons) b.disabled = true;
  try {
    await api(`${campPath(C.open)}/${action}`, { method: "POST" });
    toast(t(okKey));
    C.listEtag = null;
    await refreshNow();
  } catch (e) {
    $("cr-error").textContent = errorText(e);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// A new campaign.
async function newCampaign() {
  C.open = null;
  C.report = null;
  $("camp-report").hidden = true;
  $("camp-empty").hidden = true;
  $("camp-form").hidden = false;
  $("cf-error").textContent = "";
  setCampView("detail");
  renderCampaignList();
  $("cf-name").focus();
  if (!C.templates) {
    try {
      const r = await api("/agent/templates");
      C.templates = ((r.data && r.data.templates) || []).filter((tp) => String(tp.category).toLowerCase() === "marketing");
    } catch (e) {
      $("cf-error").textContent = errorText(e);
      C.templates = null;
      return;
    }
  }
  renderTemplatePicker();
  updateCount();
}

function renderTemplatePicker() {
  const names = [...new Set((C.templates || []).map((tp) => tp.name))];
  const sel = $("cf-template");
  const prev = sel.value;
  sel.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  if (names.includes(prev)) sel.value = prev;
  $("cf-templates-hint").textContent = names.length ? t("cf_marketing_only") : t("cf_no_templates");
  $("cf-submit").disabled = names.length === 0;
  renderLanguagePicker();
}

function renderLanguagePicker() {
  const sel = $("cf-language");
  const prev = sel.value;
  const langs = (C.templates || []).filter((tp) => tp.name === $("cf-template").value).map((tp) => tp.language);
  sel.replaceChildren(...langs.map((l) => h("option", { value: l }, l)));
  // The console's language first, when the template has it.
  if (langs.includes(prev)) sel.value = prev;
  else if (langs.includes(lang)) sel.value = lang;
  renderParamRows();
}

function formTemplate() {
  return (C.templates || []).find((tp) => tp.name === $("cf-template").value && tp.language === $("cf-language").value) || null;
}

/** The URL buttons' labels, from the preview's `[label] url` lines. */
function buttonLabels(tp) {
  return (tp.preview || "").split("\n").slice(1).map((l) => (l.match(/^\[(.*?)\]/) || [])[1]).filter((l) => l !== undefined);
}

function renderParamRows() {
  const tp = formTemplate();
  const box = $("cf-params");
  if (!tp) {
    box.replaceChildren();
    $("cf-preview").textContent = "";
    return;
  }
  const n = tp.parameters || 0;
  const body = tp.body_parameters ?? n;
  const labels = buttonLabels(tp);
  const old = [...box.querySelectorAll(".param")].map((row) => ({ source: row.querySelector("select").value, value: row.querySelector("input").value }));
  const key = `${tp.name}/${tp.language}`;
  const keep = box.dataset.template === key;
  box.dataset.template = key;
  box.replaceChildren(...Array.from({ length: n }, (_, i) => {
    const what = i < body ? t("cf_param_body", { n: i + 1 }) : t("cf_param_button", { n: i + 1, label: labels[i - body] || "" });
    const prev = keep ? old[i] : null;
    const source = h("select", { id: `cf-p${i + 1}-source`, "aria-label": t("cf_source", { what }), onchange: () => { paramHint(row); renderFormPreview(); } },
      h("option", { value: "" }, t("cf_literal")),
      ...PARAM_FIELDS.map((f) => h("option", { value: f }, fieldLabel(f))));
    const input = h("input", { id: `cf-p${i + 1}`, autocomplete: "off", oninput: renderFormPreview });
    const row = h("div", { class: "param", dataset: { index: String(i + 1) } },
      h("span", { class: "what" }, what), source, h("label", { for: `cf-p${i + 1}`, class: "value-label" }), input);
    if (prev) {
      source.value = prev.source;
      input.value = prev.value;
    }
    paramHint(row);
    return row;
  }));
  renderFormPreview();
}

function paramHint(row) {
  const field = row.querySelector("select").value;
  row.querySelector(".value-label").textContent = field ? t("cf_fallback") : t("cf_text");
  row.querySelector("input").placeholder = field ? t("cf_fallback_none") : "";
}

/** The positional parameters as the API takes them: a literal, or `{{field}}` / `{{field|fallback}}`. */
function formParameters() {
  return [...$("cf-params").querySelectorAll(".param")].map((row) => {
    const field = row.querySelector("select").value;
    const value = row.querySelector("input").value.trim();
    if (!field) return value;
    return value ? `{{${field}|${value}}}` : `{{${field}}}`;
  });
}

function renderFormPreview() {
  const tp = formTemplate();
  if (!tp) return;
  const rows = [...$("cf-params").querySelectorAll(".param")];
  $("cf-preview").textContent = (tp.preview || "").replace(/\{\{(\d+)\}\}/g, (m, n) => {
    const row = rows[Number(n) - 1];
    if (!row) return m;
    const field = row.querySelector("select").value;
    const value = row.querySelector("input").value.trim();
    if (field) return `‹${fieldLabel(field)}${value ? ` | ${value}` : ""}›`;
    return value || m;
  });
}

// Segment amounts are in the shop currency's minor units (GET /agent/config says its digits).
const shopDigits = () => S.config?.shop_currency?.exponent ?? 2;
const shopMajor = (minor) => `${(minor / 10 ** shopDigits()).toFixed(shopDigits())} ${S.config?.shop_currency?.code ?? ""}`.trim();
const shopMinor = (major) => Math.round(Number(major) * 10 ** shopDigits());

const dayStart = (v) => (v ? Math.floor(new Date(`${v}T00:00`).getTime() / 1000) : null);
const tagList = (v) => v.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);

function formSegment() {
  const sg = {};
  const set = (k, v) => { if (v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length)) sg[k] = v; };
  set("channel", $("sg-channel").value);
  set("locale", $("sg-locale").value.trim());
  set("country", $("sg-country").value.trim());
  set("tags_any", tagList($("sg-tags-any").value));
  set("tags_all", tagList($("sg-tags-all").value));
  set("orders", $("sg-orders").value);
  set("last_order_after", dayStart($("sg-order-after").value));
  set("last_order_before", dayStart($("sg-order-before").value));
  const spent = $("sg-spent").value;
  set("spent_at_least", spent === "" ? null : shopMinor(spent));
  set("cart", $("sg-cart").value);
  set("last_inbound_after", dayStart($("sg-inbound-after").value));
  set("last_inbound_before", dayStart($("sg-inbound-before").value));
  return sg;
}

let countTimer = null;
function updateCount() {
  clearTimeout(countTimer);
  countTimer = setTimeout(countSegment, 350);
}

async function countSegment() {
  const seq = ++C.countSeq;
  const el = $("cf-count");
  el.classList.remove("error");
  el.textContent = t("count_loading");
  try {
    const r = await api("/segments/preview", { method: "POST", body: formSegment() });
    if (seq !== C.countSeq) return;
    const d = r.data || {};
    const excluded = Object.entries(d.excluded || {}).filter(([, v]) => v > 0).map(([k, v]) => `${skipLabel(k)} ${fmtNum(v)}`);
    el.dataset.matched = String(d.matched ?? "");
    el.textContent = [t("count_result", { matched: fmtNum(d.matched), audience: fmtNum(d.audience) }),
      excluded.length ? t("count_excluded", { list: excluded.join(", ") }) : ""].filter(Boolean).join(" ");
  } catch (e) {
    if (seq !== C.countSeq) return;
    delete el.dataset.matched;
    el.classList.add("error");
    el.textContent = errorText(e);
  }
}

function formSpec() {
  const tp = formTemplate();
  const spec = {
    name: $("cf-name").value.trim(),
    template: { name: tp ? tp.name : $("cf-template").value, language: tp ? tp.language : $("cf-language").value, parameters: formParameters() },
    segment: formSegment(),
    rate_per_second: Number($("cf-rate").value) || 80,
    daily_cap: Number($("cf-daily-cap").value) || 1000,
    start_at: null,
    quiet_hours: $("cf-quiet-on").checked
      ? { start: $("cf-quiet-start").value || "09:00", end: $("cf-quiet-end").value || "20:00", sundays: $("cf-quiet-sundays").checked }
      : { start: "00:00", end: "24:00", sundays: true },
    frequency_cap: { max: Number($("cf-cap-max").value) || 2, days: Number($("cf-cap-days").value) || 7 },
    attribution_days: Number($("cf-attribution").value) || 5,
  };
  if ($("cf-when-at").checked && $("cf-start-at").value) spec.start_at = Math.floor(new Date($("cf-start-at").value).getTime() / 1000);
  return spec;
}

async function createCampaign(ev) {
  ev.preventDefault();
  const err = $("cf-error");
  err.textContent = "";
  const spec = formSpec();
  if (!spec.name) {
    err.textContent = t("cf_need_name");
    $("cf-name").focus();
    return;
  }
  if ($("cf-when-at").checked && !spec.start_at) {
    err.textContent = t("cf_need_time");
    $("cf-start-at").focus();
    return;
  }
  $("cf-submit").disabled = true;
  try {
    const r = await api("/campaigns", { method: "POST", body: spec });
    toast(t("cf_created"));
    resetForm();
    C.listEtag = null;
    openCampaign(r.data.id);
    pollCampaignList().catch(onPollError);
  } catch (e) {
    err.textContent = errorText(e);
  } finally {
    $("cf-submit").disabled = false;
  }
}

function resetForm() {
  $("camp-form").reset();
  $("cf-start-at").hidden = true;
  $("cf-quiet").hidden = false;
  $("cf-count").textContent = "";
  $("cf-params").dataset.template = "";
  renderParamRows();
}

function campaignsBack() {
  setCampView("list");
  const open = C.open && [...$("camp-list").children].find((li) => li.dataset.id === C.open);
  (open ? open.querySelector("button") : $("camp-new")).focus();
}

function wireCampaigns() {
  $("tab-inbox").addEventListener("click", () => showView("inbox"));
  $("tab-campaigns").addEventListener("click", () => showView("campaigns"));
  $("camp-new").addEventListener("click", () => newCampaign());
  $("camp-form").addEventListener("submit", createCampaign);
  $("cf-discard").addEventListener("click", () => { resetForm(); $("camp-form").hidden = true; $("camp-empty").hidden = false; campaignsBack(); });
  $("cf-back").addEventListener("click", () => campaignsBack());
  $("cr-back").addEventListener("click", () => campaignsBack());
  $("cf-template").addEventListener("change", renderLanguagePicker);
  $("cf-language").addEventListener("change", renderParamRows);
  $("cf-segment").addEventListener("input", updateCount);
  $("cf-segment").addEventListener("change", updateCount);
  for (const id of ["cf-when-now", "cf-when-at"]) {
    $(id).addEventListener("change", () => {
      $("cf-start-at").hidden = !$("cf-when-at").checked;
      if ($("cf-when-at").checked) $("cf-start-at").focus();
    });
  }
  $("cf-quiet-on").addEventListener("change", () => { $("cf-quiet").hidden = !$("cf-quiet-on").checked; });
  $("cr-start").addEventListener("click", () => campaignAction("start", "cr_started"));
  $("cr-pause").addEventListener("click", () => campaignAction("pause", "cr_paused"));
  $("cr-resume").addEventListener("click", () => campaignAction("resume", "cr_resumed"));
  $("cr-cancel").addEventListener("click", () => campaignAction("cancel", "cr_cancelled"));
  $("cr-filter").addEventListener("change", () => recipientsPage("first"));
  $("cr-next").addEventListener("click", () => recipientsPage("next"));
  $("cr-first").addEventListener("click", () => recipientsPage("first"));
}

// ---------------------------------------------------------------------------------------------
// Live: poll the list and the open thread every second; a 304 means nothing changed. Polling
// pauses while the tab is hidden and catches up at once when it is shown again. The Campaigns
// view polls its list and the open report instead, every 2 s (progress, not chat).
const POLL_MS = 1000;
const CAMPAIGN_POLL_MS = 2000;
let pollTimer = null;
let polling = false;

async function pollOnce() {
  if (polling || !S.token) return;
  polling = true;
  lastPollStart = Date.now();
  try {
    await (S.view === "campaigns" ? pollCampaigns() : Promise.all([pollList(), pollThread()]));
    setLive(true);
  } catch (e) {
    onPollError(e);
  } finally {
    polling = false;
  }
}

function onPollError(e) {
  if (e instanceof HttpError && e.status === 401) return;
  setLive(false);
}

function setLive(ok) {
  S.offline = !ok;
  const el = $("live");
  el.textContent = ok ? `● ${t("live")}` : t("offline");
  el.classList.toggle("off", !ok);
}

let lastPollStart = 0;

/** The next poll one second after the previous one started (not after it ended). */
function schedule() {
  clearTimeout(pollTimer);
  if (document.hidden || !S.token) return;
  const every = S.view === "campaigns" ? CAMPAIGN_POLL_MS : POLL_MS;
  const wait = Math.max(0, every - (Date.now() - lastPollStart));
  pollTimer = setTimeout(async () => {
    await pollOnce();
    schedule();
  }, wait);
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

async function refreshNow() {
  await pollOnce();
  schedule();
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) stopPolling();
  else if (S.token && S.me) refreshNow();
});

// Countdowns tick locally between polls.
setInterval(() => {
  if (!S.me || document.hidden) return;
  renderWindow();
}, 1000);

// ---------------------------------------------------------------------------------------------
// Keyboard.
function renderHelp() {
  const rows = [
    ["j / k", "k_next"], ["↑ / ↓", "k_move"], ["Enter", "k_open"], ["r", "k_reply"],
    ["Enter", "k_send"], ["Ctrl/⌘ + Enter", "k_send2"], ["Esc", "k_back"], ["?", "k_help"],
  ];
  $("help-list").replaceChildren(...rows.flatMap(([k, d]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, t(d))]));
}

function goBack() {
  const v = $("layout").dataset.view;
  if (v === "panel") {
    setView("thread");
    $("to-panel").focus();
  } else {
    setView("list");
    const sel = [...$("conv-list").children].find((li) => li.getAttribute("aria-selected") === "true");
    if (sel) focusItem(sel);
    else $("conv-list").focus();
  }
}

document.addEventListener("keydown", (e) => {
  if (!S.me || $("help").open) return;
  const target = e.target;
  if (S.view === "campaigns") {
    // The inbox's shortcuts stay with the inbox; Esc goes back to the campaign list.
    if (e.key === "Escape" && $("campaigns").dataset.view === "detail") {
      if (isTyping(target)) target.blur();
      campaignsBack();
    } else if (e.key === "?" && !isTyping(target)) {
      e.preventDefault();
      $("help").showModal();
    }
    return;
  }
  const inComposer = target.closest && target.closest("#composer");
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && inComposer) {
    e.preventDefault();
    sendReply();
    return;
  }
  if (e.key === "Escape") {
    if (isTyping(target)) target.blur();
    goBack();
    return;
  }
  if (isTyping(target) || e.ctrlKey || e.metaKey || e.altKey) return;
  const inList = target.closest && target.closest("#conv-list");
  if (e.key === "j" || (inList && e.key === "ArrowDown")) {
    e.preventDefault();
    moveInList(1, e.key === "j");
  } else if (e.key === "k" || (inList && e.key === "ArrowUp")) {
    e.preventDefault();
    moveInList(-1, e.key === "k");
  } else if (e.key === "r" && S.open) {
    e.preventDefault();
    if (isPhone()) setView("thread");
    (!$("compose-text").hidden ? $("reply-text") : $("tpl-select")).focus();
  } else if (e.key === "?") {
    e.preventDefault();
    $("help").showModal();
  }
});

// ---------------------------------------------------------------------------------------------
// Start.
function renderAll() {
  if (!S.me) return;
  $("me").textContent = `${S.me.id} · ${t(`role_${S.me.role}`)}`;
  $("tab-campaigns").hidden = !isAdmin();
  renderList();
  renderCampaigns();
  if (S.thread) renderThread();
  renderDraft();
  setLive(!S.offline);
}

function startApp() {
  $("signin").hidden = true;
  $("app").hidden = false;
  renderAll();
  if (S.view === "campaigns" && !isAdmin()) S.view = "inbox";
  $("layout").hidden = S.view !== "inbox";
  $("campaigns").hidden = S.view !== "campaigns";
  refreshNow().then(() => {
    const first = $("conv-list").firstElementChild;
    if (first && !S.open && !isPhone()) first.focus();
  });
}

function wire() {
  for (const sel of document.querySelectorAll(".lang-select")) {
    sel.replaceChildren(...Object.entries(LANGS).map(([v, name]) => h("option", { value: v }, name)));
    sel.addEventListener("change", () => setLang(sel.value));
  }
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut());
  $("help-btn").addEventListener("click", () => $("help").showModal());
  for (const id of ["f-state", "f-channel", "f-mine"]) $(id).addEventListener("change", () => refreshNow());
  $("back-to-list").addEventListener("click", () => goBack());
  $("back-to-thread").addEventListener("click", () => goBack());
  $("to-panel").addEventListener("click", () => {
    setView("panel");
    $("back-to-thread").focus();
  });
  $("older").addEventListener("click", () => loadOlder().catch((e) => toast(errorText(e))));
  $("composer").addEventListener("submit", sendReply);
  $("reply-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      sendReply();
    }
  });
  $("tpl-select").addEventListener("change", renderTemplateParams);
  $("act-claim").addEventListener("click", () => act("claim", "claimed"));
  $("act-release").addEventListener("click", () => act("release", "released"));
  $("act-resolve").addEventListener("click", () => act("resolve", "resolved_ok"));
  $("cat-search").addEventListener("input", onSearch);
  $("cat-search").addEventListener("focus", () => { if (!$("cat-results").children.length) searchCatalog(); });
  $("cart-save").addEventListener("click", () => submitCart(false));
  $("cart-send").addEventListener("click", () => submitCart(true));
  $("tag-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const tag = $("tag-input").value.trim();
    if (!tag || !S.open) return;
    $("tag-input").value = "";
    changeTags([tag], []);
  });
  $("note-form").addEventListener("submit", addNote);
  wireCampaigns();
  $("note-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) addNote(e);
  });
}

async function boot() {
  wire();
  applyI18n();
  try {
    S.config = (await api("/agent/config")).data;
  } catch {
    S.config = { auth: "sandbox", cognito: null };
  }
  // The amount field takes the shop currency's digits (1 for JPY, 0.01 for EUR).
  $("sg-spent").step = String(10 ** -shopDigits());
  const params = new URLSearchParams(location.search);
  if (S.config.auth === "cognito" && params.get("code")) return finishCognito(params);
  if (S.token) {
    const exp = jwtExp(S.token);
    if (exp && exp * 1000 < Date.now()) {
      S.token = null;
      sessionStorage.removeItem("parley.token");
      return showSignIn(t("session_expired"));
    }
    return useToken(S.token);
  }
  showSignIn();
}

document.addEventListener("DOMContentLoaded", boot);
