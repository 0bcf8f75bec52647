//! `--local`: the resources of the system `make dev` runs. Its runtime writes them (table, queue
//! URLs, the local endpoints, the API's URL) to `target/dev.env` when it starts; the settings
//! (secrets of the local demo, account ids) come from the file `make dev` reads, `.env` or else
//! `.env.example`. A variable already set in the environment keeps its value, as with
//! `local/with-env.sh`.
use std::path::Path;

pub const DEFAULT_DEV_ENV: &str = "target/dev.env";

pub fn load(dev_env: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dev_env).map_err(|e| {
        format!(
            "--local: cannot read {} ({}): is `make dev` running (from this directory)?",
            dev_env.display(),
            e.kind()
        )
    })?;
    let mut vars = parse(&text);
    // The settings file sits in the repository root, two levels above target/dev.env.
    let root = dev_env.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    let settings = [".env", ".env.example"].iter().map(|f| root.join(f)).find(|p| p.is_file());
    if let Some(settings) = settings {
        if let Ok(text) = std::fs::read_to_string(&settings) {
            vars.extend(parse(&text));
        }
    }
    for (k, v) in vars {
        if std::env::var_os(&k).is_none() {
            // Single-threaded here: main calls this before the runtime starts.
            std::env::set_var(k, v);
        }
    }
    Ok(())
}

/// `KEY=VALUE` lines; `#` comments, blank lines and an optional `export ` are skipped, one
/// level of matching quotes is removed.
fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.strip_prefix("export ").unwrap_or(l).split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_env_lines() {
        let vars = super::parse("# c\n\nA=1\nexport B=\"x y\"\nC='z'\nnot a line\n");
        assert_eq!(vars, vec![("A".into(), "1".into()), ("B".into(), "x y".into()), ("C".into(), "z".into())]);
    }
}
