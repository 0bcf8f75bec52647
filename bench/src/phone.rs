//! Phone numbers: what the first number parsed in a process costs — `phonenumber` reads its
//! metadata and builds its patterns then — and a number parsed after it. Measured in fresh
//! processes (this binary run again with `--phone-probe`), as a cold Lambda container meets
//! its first shop order or opt-in form.
use std::time::Instant;

pub const PROBE_ARG: &str = "--phone-probe";

/// Forms and shops write numbers like these; national ones are read in the default region.
const NUMBERS: &[(&str, &str)] = &[
    ("+49 151 23456789", "DE"),
    ("0151 23456789", "DE"),
    ("0049 151 23456789", "DE"),
    ("+1 415 555 2671", "US"),
    ("+44 7911 123456", "GB"),
    ("06 12 34 56 78", "FR"),
];

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// In a fresh process: prints `first_us later_us rss_before_kb rss_after_kb`, where `later_us`
/// is the mean of the other numbers parsed once each after the first, 20 rounds.
pub fn probe() {
    let before = rss_kb("VmRSS:");
    let t = Instant::now();
    let first = parley::domain::phone::normalize_phone(NUMBERS[0].0, NUMBERS[0].1);
    let first_us = t.elapsed().as_secs_f64() * 1e6;
    assert!(first.is_ok(), "the first number parses");
    let t = Instant::now();
    let mut parsed = 0;
    for _ in 0..20 {
        for (number, region) in NUMBERS {
            parsed += usize::from(parley::domain::phone::normalize_phone(number, region).is_ok());
        }
    }
    let later_us = t.elapsed().as_secs_f64() * 1e6 / (20 * NUMBERS.len()) as f64;
    assert_eq!(parsed, 20 * NUMBERS.len(), "every number parses");
    println!("{first_us} {later_us} {before} {}", rss_kb("VmHWM:"));
}

pub fn run() {
    let exe = std::env::current_exe().expect("the bench binary");
    let runs: usize = std::env::var("PARLEY_BENCH_COLD").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let mut rows: Vec<[f64; 4]> = Vec::new();
    for _ in 0..runs {
        let out = std::process::Command::new(&exe).arg(PROBE_ARG).output().expect("the probe runs");
        assert!(out.status.success(), "probe: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        rows.push([v[0], v[1], v[2], v[3]]);
    }
    let median = |i: usize| {
        let mut col: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        col.sort_by(f64::total_cmp);
        col[col.len() / 2]
    };
    println!("Medians of {runs} fresh processes; later parses: {} numbers of 5 countries, 20 rounds.\n", NUMBERS.len());
    println!("| first number in a process µs | each later number µs | RSS before MB | peak RSS after MB |");
    println!("|---:|---:|---:|---:|");
    println!("| {:.0} | {:.1} | {:.1} | {:.1} |", median(0), median(1), median(2) / 1024.0, median(3) / 1024.0);
}
