//! `make bench`: the performance figures of docs/performance.md, printed as Markdown tables.
//!
//! One module per section; each prints its own table. `parley-bench [SECTION…]` runs only the
//! named sections (`parley-bench --list` names them). Built with the release profile, never run
//! by `make test`.
mod harness;
mod parse;
mod phone;

/// A section: its name (for the command line) and what it prints.
struct Section {
    name: &'static str,
    about: &'static str,
    run: fn(),
}

const SECTIONS: &[Section] = &[
    Section {
        name: "parse",
        about: "Meta webhook: verify, parse, verify + parse against the HMAC floor",
        run: parse::run,
    },
    Section {
        name: "phone",
        about: "Phone numbers: the first one parsed in a process, and the ones after it",
        run: phone::run,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == phone::PROBE_ARG) {
        return phone::probe();
    }
    if args.iter().any(|a| a == "--list") {
        for s in SECTIONS {
            println!("{:<12} {}", s.name, s.about);
        }
        return;
    }
    let unknown: Vec<&String> = args.iter().filter(|a| !SECTIONS.iter().any(|s| s.name == a.as_str())).collect();
    if !unknown.is_empty() {
        eprintln!("unknown section(s) {unknown:?}; `--list` names them");
        std::process::exit(2);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; `make bench` measures the release profile");
    }
    println!("{}", harness::machine());
    for s in SECTIONS.iter().filter(|s| args.is_empty() || args.iter().any(|a| a == s.name)) {
        println!("\n## {}\n", s.about);
        (s.run)();
    }
}
