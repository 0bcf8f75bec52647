//! CONTRACT.md: a variable set in the caller's environment always wins over `.env` /
//! `.env.example`. `make dev` loads the env file with `local/with-env.sh`; these tests run that
//! script, and `make dev` itself, with the caller's `PARLEY_PORT` set.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()))
}

/// `PARLEY_PORT` and `RUST_LOG` as a command run by `local/with-env.sh <file>` sees them.
fn seen_through_with_env(file: &Path, caller: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(root().join("local/with-env.sh"));
    cmd.arg(file).args(["sh", "-c", "printf '%s|%s' \"$PARLEY_PORT\" \"$RUST_LOG\""]);
    cmd.env_remove("PARLEY_PORT").env_remove("RUST_LOG");
    for (k, v) in caller {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("with-env.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_callers_variables_win_over_the_env_file_and_the_file_fills_the_rest() {
    let file = tmp("env-file");
    std::fs::write(&file, "# a comment\nPARLEY_PORT=3000\nRUST_LOG=info\n").unwrap();
    assert_eq!(seen_through_with_env(&file, &[]), "3000|info");
    assert_eq!(seen_through_with_env(&file, &[("PARLEY_PORT", "3300")]), "3300|info");
    // Set to empty is set, too.
    assert_eq!(seen_through_with_env(&file, &[("PARLEY_PORT", "3300"), ("RUST_LOG", "")]), "3300|");
}

/// `PARLEY_PORT=<port> make dev` (with the real `.env.example`): the system listens there.
#[test]
fn make_dev_listens_on_the_callers_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = tmp("make-dev.log");
    let mut child = Command::new("make")
        .current_dir(root())
        // Build and venv are `make test`'s business; run just the dev recipe on this build.
        .args(["-s", "-o", "venv", "-o", "build-dev", "dev", "ENV_FILE=.env.example"])
        .arg(format!("LOCAL_BIN={}", env!("CARGO_BIN_EXE_parley-local")))
        .env("PARLEY_PORT", port.to_string())
        .env("PARLEY_LOCAL_PREFIX", format!("envtest{}", std::process::id()))
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("MFLAGS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        // Its own process group, so the whole tree (make, endpoints, the system) is stopped.
        .process_group(0)
        .spawn()
        .expect("make runs");
    let stdout = child.stdout.take().unwrap();
    let group = Group(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let up = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("Parley is running on") => break line,
            Ok(_) => continue,
            Err(_) => {
                panic!("make dev did not come up within 60 s:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
            }
        }
    };
    assert_eq!(up, format!("Parley is running on http://127.0.0.1:{port} — sandbox: http://127.0.0.1:{port}/sandbox/"));
    // The port answers: /health over plain HTTP/1.0.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the caller's port listens");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut health = String::new();
    let _ = s.read_to_string(&mut health);
    assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"), "{health}");
    let mut group = group;
    assert!(group.stop(), "make dev stops on SIGTERM");
}

/// The `make dev` process tree; stopped (SIGTERM to the group) however the test ends.
struct Group(std::process::Child);

impl Group {
    fn stop(&mut self) -> bool {
        let sent = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.0.id())]).status();
        sent.is_ok_and(|s| s.success()) && self.0.wait().is_ok()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}
