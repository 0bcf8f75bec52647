//! Printing: tables for people, `--json` for scripts. Errors go to stderr.
use parley::ops::contacts::{ContactSummary, Released};
use parley::ops::queues::{DlqMessage, QueueName, QueueStats, RedriveReport};
use parley::ops::replay::ReplayOutcome;
use parley::store::erase::EraseReport;
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};

pub fn json_always<T: Serialize>(v: &T) {
    // A reader that stops early (`| head`) closes the pipe: not an error worth a panic.
    let _ = writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn error(json: bool, message: &str, retryable: bool) {
    if json {
        eprintln!("{}", serde_json::json!({ "error": message, "retryable": retryable }));
    } else {
        eprintln!("parley: {message}{}", if retryable { " (try again)" } else { "" });
    }
}

fn age(secs: Option<u64>, source: &str) -> String {
    match secs {
        None if source == "n/a" => "n/a (CloudWatch)".into(),
        None => "-".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        Some(s) if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        Some(s) => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub fn queues(json: bool, stats: &[QueueStats]) {
    if json {
        return json_always(&stats);
    }
    println!("{:<14} {:>8} {:>10} {:>8}  OLDEST", "QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED");
    for s in stats {
        let name = format!("{}{}", s.queue.as_str(), if s.dlq { " DLQ" } else { "" });
        println!(
            "{:<14} {:>8} {:>10} {:>8}  {}",
            name,
            s.visible,
            s.in_flight,
            s.delayed,
            age(s.oldest_age_secs, s.oldest_age_source)
        );
    }
}

fn dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn messages_table(list: &[DlqMessage]) {
    println!("{:<36}  {:<22} {:<26} {:<28} {:>8}  LAST ERROR", "MESSAGE ID", "KIND", "ID", "CONTACT", "RECEIVES");
    for m in list {
        println!(
            "{:<36}  {:<22} {:<26} {:<28} {:>8}  {}",
            m.message_id,
            m.kind,
            dash(&m.id),
            dash(&m.contact),
            m.receive_count,
            dash(&m.last_error)
        );
    }
}

pub fn dlq_list(json: bool, queue: QueueName, list: &[DlqMessage]) {
    if json {
        return json_always(&list);
    }
    if list.is_empty() {
        println!("{} DLQ is empty", queue.as_str());
        return;
    }
    messages_table(list);
    println!("{} message(s) in the {} DLQ", list.len(), queue.as_str());
}

pub fn redrive(json: bool, r: &RedriveReport) {
    if json {
        return json_always(r);
    }
    let queue = r.queue.map(QueueName::as_str).unwrap_or_default();
    if !r.messages.is_empty() {
        messages_table(&r.messages);
    }
    if r.dry_run {
        println!("dry run: {} message(s) would move from the {queue} DLQ to the {queue} queue; nothing moved", r.moved);
    } else {
        println!("moved {} message(s) from the {queue} DLQ to the {queue} queue", r.moved);
        if r.failed > 0 {
            println!("{} refused by the queue: left in the DLQ", r.failed);
        }
    }
}

/// A bar on stderr for a long redrive (hidden with --json, a dry run, or no terminal).
pub fn progress(hidden: bool, max: u64) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(max);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} moved ({elapsed}, {per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

pub fn contact(json: bool, c: &ContactSummary) {
    if json {
        return json_always(c);
    }
    let ts = |t: Option<i64>| {
        t.and_then(|t| jiff::Timestamp::from_second(t).ok()).map(|t| t.to_string()).unwrap_or_else(|| "-".into())
    };
    let purposes: Vec<String> =
        c.consent_purposes.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?"))).collect();
    println!("contact        {}", c.contact);
    println!("account        {}", dash(&c.account));
    println!("name           {}", dash(&c.profile.name));
    println!("locale         {}", dash(&c.profile.locale));
    println!("handover       {}", if c.profile.handover { "yes (a person has it; the bot is silent)" } else { "no" });
    println!(
        "inbox          {}{}",
        c.profile.inbox_state.as_str().unwrap_or("?"),
        c.profile.assignee.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
    );
    println!("tags           {}", if c.profile.tags.is_empty() { "-".into() } else { c.profile.tags.join(", ") });
    println!(
        "consent        {} ({}; {} audit event(s))",
        c.consent.as_str().unwrap_or("?"),
        purposes.join(", "),
        c.consent_events
    );
    println!("last inbound   {}", ts(c.last_inbound_at));
    println!("last order     {}", ts(c.last_order_at));
    println!("messages in    {}", c.inbound_count);
}

pub fn erased(json: bool, r: &EraseReport) {
    if json {
        return json_always(r);
    }
    println!(
        "erased: {} item(s) deleted, {} consent event(s) kept pseudonymised as proof",
        r.deleted, r.consent_events_pseudonymised
    );
}

pub fn released(json: bool, r: &Released) {
    if json {
        return json_always(r);
    }
    if r.was_handover {
        println!("released to the bot (the customer is told the bot is back)");
    } else {
        println!("the bot already had this conversation: nothing to release");
    }
}

pub fn replayed(json: bool, o: &ReplayOutcome) {
    if json {
        return json_always(o);
    }
    let answer = o.answer.as_ref().map(|a| format!(" {a}")).unwrap_or_default();
    println!("POST {} → {}{answer}", o.url, o.status);
}

/// Asks on the terminal; without one (a script) the answer is no: such callers say --yes.
pub fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!("parley: {question} Not confirmed (no terminal): pass --yes");
        return false;
    }
    eprint!("{question} Type yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim().eq_ignore_ascii_case("yes")
}

pub fn content(json: bool, what: &str, r: &parley::ops::content::ContentReport) {
    if json {
        return json_always(r);
    }
    println!("{what}: version {}{}", r.version, if r.embedded { " (the embedded set)" } else { "" });
    if let Some(location) = &r.location {
        println!(
            "location: {location}{}",
            r.s3_version_id.as_ref().map(|v| format!(" (S3 version {v})")).unwrap_or_default()
        );
    }
    println!("files ({}):", r.files.len());
    for f in &r.files {
        println!("  {f}");
    }
}
