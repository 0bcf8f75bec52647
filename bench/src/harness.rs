//! Timing: warm up, then alternate the contenders round by round (so a slow moment of a shared
//! machine hits all of them alike) and keep each one's median.
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One thing to time: one iteration, returning something the optimiser must keep.
pub struct Case<'a> {
    run: Box<dyn FnMut() -> usize + 'a>,
}

impl<'a> Case<'a> {
    pub fn new(run: impl FnMut() -> usize + 'a) -> Self {
        Self { run: Box::new(run) }
    }
}

/// How long each case runs per round, and how many rounds.
pub struct Plan {
    pub round: Duration,
    pub rounds: usize,
}

impl Plan {
    /// `PARLEY_BENCH_ROUNDS` (default 15) rounds of about `PARLEY_BENCH_ROUND_MS` (default 40) ms.
    pub fn from_env() -> Self {
        let get = |key: &str, default: u64| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        Self {
            round: Duration::from_millis(get("PARLEY_BENCH_ROUND_MS", 40)),
            rounds: get("PARLEY_BENCH_ROUNDS", 15) as usize,
        }
    }
}

/// Median time of one iteration of each case, in the order given.
pub fn medians(plan: &Plan, cases: &mut [Case<'_>]) -> Vec<Duration> {
    // Warm-up (caches, page faults, CPU frequency) also sizes each case's batch to about one round.
    let batches: Vec<u32> = cases
        .iter_mut()
        .map(|c| {
            let mut n = 1u32;
            loop {
                let t = Instant::now();
                for _ in 0..n {
                    black_box((c.run)());
                }
                let took = t.elapsed();
                if took >= plan.round / 4 || n >= 1 << 24 {
                    let per = took.as_secs_f64() / f64::from(n);
                    break ((plan.round.as_secs_f64() / per).ceil() as u32).max(1);
                }
                n *= 2;
            }
        })
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(plan.rounds); cases.len()];
    for _ in 0..plan.rounds {
        for ((c, &n), s) in cases.iter_mut().zip(&batches).zip(&mut samples) {
            let t = Instant::now();
            for _ in 0..n {
                black_box((c.run)());
            }
            s.push(t.elapsed().as_secs_f64() / f64::from(n));
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            Duration::from_secs_f64(s[s.len() / 2])
        })
        .collect()
}

/// µs with a precision that suits the size.
pub fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 1000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// Throughput in MB/s (10^6 bytes).
pub fn mb_per_s(bytes: usize, d: Duration) -> String {
    format!("{:.0}", bytes as f64 / d.as_secs_f64() / 1e6)
}

/// The machine, for the record next to the figures.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("machine: {cpu}, {cores} cores available; {}", std::env::consts::ARCH)
}
