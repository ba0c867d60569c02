//! The filing safety property at scale (not a timing benchmark): generates
//! ward-chat threads with ground truth (`recordbridge::wardgen`), decides them
//! through identify + decide on every core, and checks that no event is ever
//! filed to a patient it is not only about.
//!
//! `cargo bench --bench safety -- 1000000`
//!
//! * threads: first numeric argument, else `RECORDBRIDGE_GEN_THREADS`, else 1,000,000;
//! * seed: `RECORDBRIDGE_GEN_SEED` (decimal or 0x-hex), else time-derived (printed);
//! * workers: `RECORDBRIDGE_GEN_WORKERS`, else all cores;
//! * only some threads: `RECORDBRIDGE_GEN_ONLY=601961,639223` (indices, to
//!   repeat the violations a run printed).
//!
//! Prints threads, events, violations, counts per outcome and reason, and
//! threads/s; exits 1 if there is any violation (the first few are printed:
//! synthetic data only).

use std::time::Instant;

use recordbridge::decide::Policy;
use recordbridge::identify::Identify;
use recordbridge::wardgen::{Tally, Violation, run_one};

/// How many violations to print (`RECORDBRIDGE_GEN_SHOW`).
fn show() -> usize {
    std::env::var("RECORDBRIDGE_GEN_SHOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main() {
    let threads: u64 = std::env::args()
        .skip(1)
        .find_map(|a| parse_u64(&a))
        .or_else(|| {
            std::env::var("RECORDBRIDGE_GEN_THREADS")
                .ok()
                .and_then(|s| parse_u64(&s))
        })
        .unwrap_or(1_000_000);
    let seed = std::env::var("RECORDBRIDGE_GEN_SEED")
        .ok()
        .and_then(|s| parse_u64(&s))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let workers = std::env::var("RECORDBRIDGE_GEN_WORKERS")
        .ok()
        .and_then(|s| parse_u64(&s))
        .map(|n| n.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "safety: {threads} threads, seed {seed:#x} (RECORDBRIDGE_GEN_SEED={seed:#x}), {workers} workers"
    );

    let only: Option<Vec<u64>> = std::env::var("RECORDBRIDGE_GEN_ONLY")
        .ok()
        .map(|s| s.split(',').filter_map(parse_u64).collect());
    let idf = Identify::default();
    let policy = Policy::default();
    let start = Instant::now();
    let results: Vec<(Tally, Vec<Violation>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (idf, policy, only) = (&idf, &policy, &only);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    let mut first = Vec::new();
                    let mut i = w as u64;
                    while i < threads {
                        if only.as_ref().is_some_and(|o| !o.contains(&i)) {
                            i += workers as u64;
                            continue;
                        }
                        let (t, steps, v) = run_one(idf, policy, seed, i, |_| {});
                        tally.add(&t, &steps, &v);
                        for x in v {
                            if first.len() < show() {
                                first.push(x);
                            }
                        }
                        i += workers as u64;
                    }
                    (tally, first)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();

    let mut tally = Tally::default();
    let mut first: Vec<Violation> = Vec::new();
    for (t, v) in results {
        tally.merge(&t);
        first.extend(v);
    }
    first.sort_by_key(|v| (v.thread_index, v.event_index));
    first.truncate(show());

    print!("{}", tally.report());
    println!(
        "{:.1} s, {:.0} threads/s, {:.0} events/s ({workers} workers)",
        secs,
        tally.threads as f64 / secs,
        tally.events as f64 / secs
    );
    if tally.violations > 0 {
        println!("\nfirst violations (repeat with RECORDBRIDGE_GEN_SEED={seed:#x}):");
        for v in &first {
            println!("{v}");
        }
        std::process::exit(1);
    }
    println!("no violation");
}
