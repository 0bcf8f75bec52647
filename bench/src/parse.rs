//! Section `parse`: a signed Meta delivery verified (HMAC-SHA256 over the raw body, as the webhook
//! does), parsed, and both, next to the floor: a bare HMAC-SHA256 of the same bytes in the same run.
use crate::harness::{mb_per_s, medians, micros, Case, Plan};
use hmac::{Hmac, KeyInit, Mac};
use parley::channels::meta::inbound::parse_delivery;
use parley::channels::signature::{Encoding, Verifier};
use parley::config::Secret;
use serde_json::{json, Value};
use std::hint::black_box;

const SECRET: &str = "bench-app-secret";

/// The WhatsApp fixtures whose messages the big deliveries cycle through.
const FIXTURES: &[&str] = &[
    include_str!("../../events/meta/whatsapp_text.json"),
    include_str!("../../events/meta/whatsapp_button_reply.json"),
    include_str!("../../events/meta/whatsapp_list_reply.json"),
    include_str!("../../events/meta/whatsapp_template_button.json"),
    include_str!("../../events/meta/whatsapp_order.json"),
    include_str!("../../events/meta/whatsapp_location.json"),
    include_str!("../../events/meta/whatsapp_image.json"),
    include_str!("../../events/meta/whatsapp_unknown_type.json"),
    include_str!("../../events/meta/whatsapp_text_bsuid.json"),
];

/// Every message of the fixtures, with the contact entry that came with it.
fn fixture_messages() -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for f in FIXTURES {
        let v: Value = serde_json::from_str(f).expect("fixture is JSON");
        let value = &v["entry"][0]["changes"][0]["value"];
        let contact = value["contacts"][0].clone();
        for m in value["messages"].as_array().expect("fixture has messages") {
            out.push((m.clone(), contact.clone()));
        }
    }
    out
}

/// Meta writes every non-ASCII character as a `\u` escape (surrogate pairs beyond the BMP).
fn ascii_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// A delivery of `n` messages, each from its own sender with its own contact entry (listed in
/// reverse, as Meta promises no order), timestamps out of order. `text_len == 0`: the messages
/// cycle through all the fixtures' kinds as they are; otherwise every message is a text (from a
/// phone or from a user id) of `text_len` characters made of the fixture's, umlauts and emoji
/// included.
fn delivery(n: usize, text_len: usize) -> Vec<u8> {
    let mut kinds = fixture_messages();
    if text_len > 0 {
        kinds.retain(|(m, _)| m["type"] == "text");
    }
    let mut messages = Vec::with_capacity(n);
    let mut contacts = Vec::with_capacity(n);
    for i in 0..n {
        let (mut m, mut contact) = kinds[i % kinds.len()].clone();
        let phone = format!("49151{i:08}");
        m["id"] = json!(format!("wamid.HBgNNDkxNTEyMzQ1Njc4ORUCABIYFjNFQjBBMUIyQzNENEU1RjZBN0I4{i:06}A"));
        m["timestamp"] = json!((1_767_268_800 + (i * 7919) % n).to_string());
        if m.get("from").is_some() {
            m["from"] = json!(phone);
            contact["wa_id"] = json!(phone);
        } else {
            let user_id = format!("US.{i:020}");
            m["from_user_id"] = json!(user_id);
            contact["user_id"] = json!(user_id);
        }
        contact["profile"]["name"] = json!(format!("Kundin {i}"));
        if let Some(body) = m.pointer_mut("/text/body") {
            let base = body.as_str().unwrap_or("Hallo").to_owned();
            *body = json!(base.chars().cycle().take(text_len.max(base.chars().count())).collect::<String>());
        }
        messages.push(m);
        contacts.push(contact);
    }
    contacts.reverse();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "900000000000001", "changes": [{"value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": "100000000000001"},
            "contacts": contacts,
            "messages": messages
        }, "field": "messages"}]}]
    });
    ascii_escaped(&body.to_string()).into_bytes()
}

pub fn run() {
    let plan = Plan::from_env();
    let verifier = Verifier::new(Encoding::PrefixedHex, Secret::from(SECRET), None);
    let rows: Vec<(String, Vec<u8>)> = vec![
        ("1 message (fixture)".into(), include_bytes!("../../events/meta/whatsapp_text.json").to_vec()),
        ("50 messages".into(), delivery(50, 0)),
        ("1000 messages".into(), delivery(1000, 0)),
        ("1000 long texts".into(), delivery(1000, 2000)),
    ];
    println!("| delivery | bytes | events | HMAC floor µs (MB/s) | verify µs (MB/s, × floor) | parse µs (MB/s, × floor) | verify + parse µs (MB/s, × floor) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, body) in &rows {
        let header = verifier.sign(body);
        let parsed = parse_delivery(body).expect("bench delivery parses");
        assert!(parsed.skipped.is_empty(), "{name}: {:?}", parsed.skipped);
        let events = parsed.events.len();
        let mut cases = vec![
            Case::new(|| {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
                mac.update(black_box(body));
                mac.finalize().into_bytes()[0] as usize
            }),
            Case::new(|| verifier.verify(black_box(body), Some(&header)).is_ok() as usize),
            Case::new(|| parse_delivery(black_box(body)).map_or(0, |d| d.events.len())),
            Case::new(|| {
                verifier.verify(black_box(body), Some(&header)).expect("signed");
                parse_delivery(body).map_or(0, |d| d.events.len())
            }),
        ];
        let t = medians(&plan, &mut cases);
        let floor = t[0].as_secs_f64();
        let cell = |d: std::time::Duration| {
            format!("{} ({}, {:.2}×)", micros(d), mb_per_s(body.len(), d), d.as_secs_f64() / floor)
        };
        println!(
            "| {name} | {} | {events} | {} ({}) | {} | {} | {} |",
            body.len(),
            micros(t[0]),
            mb_per_s(body.len(), t[0]),
            cell(t[1]),
            cell(t[2]),
            cell(t[3])
        );
    }
}
