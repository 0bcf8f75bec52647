//! Brand content as one unit: the flows, the template catalog, the cart and the order
//! notification texts. A [`Bundle`] is the files of `config/` by relative path; a [`ContentSet`]
//! is a bundle that passed every file's validator (the same ones the functions run on the
//! embedded files), so holding one means the whole set can be served.
//!
//! The stored form (`content push` writes it, the functions read it) is one JSON document:
//! `{"format": "parley-content/1", "version": "<12 hex>", "sha256": "<64 hex>", "files": {path: text}}`.
//! The version is the start of the SHA-256 over the files, so the same files always have the same
//! version and a reader can tell a damaged object from a new one.
use super::cart::CartTexts;
use super::flows::{FlowSet, Flows};
use super::orders::NotificationTexts;
use super::templates::Templates;
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "parley-content/1";
/// The template catalog's path in a bundle.
pub const TEMPLATES_FILE: &str = "templates.toml";
/// A whole set is a few dozen KB; anything far bigger is no content set.
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;

/// What is wrong with a content set: the file (relative path) and the problem, for the person
/// who edited it. Content is the brand's own text, never a customer's, so it may be quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ContentError {
    pub file: String,
    pub problem: String,
}

impl ContentError {
    fn new(file: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { file: file.into(), problem: problem.into() }
    }
}

/// The kinds of file a set holds, by relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileKind {
    Templates,
    Flows { set: String, locale: String },
    Cart { locale: String },
    Notifications { locale: String },
}

fn kind_of(path: &str) -> Result<FileKind, ContentError> {
    let bad = || {
        ContentError::new(
            path,
            "not a content file: expected templates.toml, cart.<locale>.toml, notifications.<locale>.toml \
             or flows/<set>.<locale>.toml",
        )
    };
    if path == TEMPLATES_FILE {
        return Ok(FileKind::Templates);
    }
    let (dir, name) = match path.split_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, path),
    };
    let stem = name.strip_suffix(".toml").ok_or_else(bad)?;
    let (first, locale) = stem.rsplit_once('.').ok_or_else(bad)?;
    let locale = locale.to_string();
    match (dir, first) {
        (Some("flows"), set) if !set.contains('/') => Ok(FileKind::Flows { set: set.to_string(), locale }),
        (None, "cart") => Ok(FileKind::Cart { locale }),
        (None, "notifications") => Ok(FileKind::Notifications { locale }),
        _ => Err(bad()),
    }
}

/// The files of a content set, by path relative to the content directory (`flows/default.de.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bundle {
    files: BTreeMap<String, String>,
}

/// The stored form.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    version: String,
    sha256: String,
    files: Bundle,
}

impl Bundle {
    /// The files compiled into the functions (the `config/` of their build).
    pub fn embedded() -> Bundle {
        let mut files = BTreeMap::new();
        files.insert(TEMPLATES_FILE.to_string(), super::templates::EMBEDDED.to_string());
        for (set, locale, src) in super::flows::EMBEDDED {
            files.insert(format!("flows/{set}.{locale}.toml"), src.to_string());
        }
        for (file, _, src) in super::cart::EMBEDDED.iter().chain(super::orders::EMBEDDED) {
            files.insert(file.trim_start_matches("config/").to_string(), src.to_string());
        }
        Bundle { files }
    }

    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Bundle {
        Bundle { files: files.into_iter().collect() }
    }

    /// Reads a content directory: its `*.toml` files and those of `flows/`. Other files are left
    /// alone (a README next to them is fine); a `.toml` that is no content file is an error.
    pub fn from_dir(dir: &Path) -> Result<Bundle, ContentError> {
        let io = |p: &Path, e: std::io::Error| ContentError::new(p.display().to_string(), e.to_string());
        let mut files = BTreeMap::new();
        for (sub, prefix) in [(dir.to_path_buf(), ""), (dir.join("flows"), "flows/")] {
            if !prefix.is_empty() && !sub.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&sub).map_err(|e| io(&sub, e))? {
                let path = entry.map_err(|e| io(&sub, e))?.path();
                if !(path.is_file() && path.extension().is_some_and(|e| e == "toml")) {
                    continue;
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                files.insert(format!("{prefix}{name}"), text);
            }
        }
        if files.is_empty() {
            return Err(ContentError::new(dir.display().to_string(), "no content files (*.toml) in this directory"));
        }
        Ok(Bundle { files })
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// SHA-256 over every (path, text), in path order, each length-prefixed so that no two
    /// different sets hash alike.
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for (path, text) in &self.files {
            for part in [path.as_bytes(), text.as_bytes()] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
        }
        hex::encode(h.finalize())
    }

    /// The short id people see and compare (`content push` prints it, the functions log it).
    pub fn version(&self) -> String {
        self.sha256()[..12].to_string()
    }

    /// The stored JSON document.
    pub fn to_stored(&self) -> Vec<u8> {
        let sha256 = self.sha256();
        let stored = Stored { format: FORMAT.into(), version: sha256[..12].to_string(), sha256, files: self.clone() };
        serde_json::to_vec_pretty(&stored).expect("strings serialize")
    }

    /// Reads a stored document and checks that it is intact (format and checksum).
    pub fn from_stored(bytes: &[u8]) -> Result<Bundle, ContentError> {
        const WHAT: &str = "(stored content set)";
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(ContentError::new(WHAT, format!("{} bytes, more than {MAX_BUNDLE_BYTES}", bytes.len())));
        }
        let stored: Stored = serde_json::from_slice(bytes)
            .map_err(|e| ContentError::new(WHAT, format!("not a content set document: {e}")))?;
        if stored.format != FORMAT {
            return Err(ContentError::new(WHAT, format!("format '{}' is not {FORMAT}", stored.format)));
        }
        let actual = stored.files.sha256();
        if actual != stored.sha256 || stored.version != actual[..12] {
            return Err(ContentError::new(WHAT, "the checksum does not match the files (damaged or edited by hand)"));
        }
        Ok(stored.files)
    }
}

/// A validated content set.
#[derive(Debug, Clone)]
pub struct ContentSet {
    pub version: String,
    pub flows: Flows,
    pub templates: Templates,
    pub notifications: NotificationTexts,
    pub cart_texts: CartTexts,
}

/// The problem of a per-file validator error (its file name is the bundle's path instead).
fn problem(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { reason, .. } | ConfigError::Flows { reason, .. } => reason,
        other => other.to_string(),
    }
}

impl ContentSet {
    /// The set compiled into the functions.
    pub fn embedded() -> Result<ContentSet, ContentError> {
        ContentSet::validate(&Bundle::embedded())
    }

    /// Runs every file's validator; the error names the first broken file and everything wrong
    /// in it. Files are checked in path order, the template catalog first (the notification
    /// texts are checked against it).
    pub fn validate(bundle: &Bundle) -> Result<ContentSet, ContentError> {
        let mut flow_sets = Vec::new();
        let mut carts: Vec<(String, &str)> = Vec::new();
        let mut notifications: Vec<(String, &str)> = Vec::new();
        let templates_src = bundle
            .files
            .get(TEMPLATES_FILE)
            .ok_or_else(|| ContentError::new(TEMPLATES_FILE, "missing: every set needs the template catalog"))?;
        let templates =
            Templates::from_toml(templates_src).map_err(|e| ContentError::new(TEMPLATES_FILE, problem(e)))?;
        for (path, src) in &bundle.files {
            let err = |e: ConfigError| ContentError::new(path.clone(), problem(e));
            match kind_of(path)? {
                FileKind::Templates => {}
                FileKind::Flows { set, locale } => flow_sets.push(FlowSet::parse(&set, &locale, src).map_err(err)?),
                FileKind::Cart { locale } => {
                    CartTexts::from_sources(&[("cart", &locale, src)]).map_err(err)?;
                    carts.push((locale, src));
                }
                FileKind::Notifications { locale } => {
                    NotificationTexts::from_sources(&[("notifications", &locale, src)], &templates).map_err(err)?;
                    notifications.push((locale, src));
                }
            }
        }
        if flow_sets.is_empty() {
            return Err(ContentError::new("flows/", "missing: at least one flows/<set>.<locale>.toml"));
        }
        let flows = Flows::from_sets(flow_sets).map_err(|e| ContentError::new("flows/", problem(e)))?;
        // Each file passed alone; together only a missing kind can still fail.
        let cart_sources: Vec<(&'static str, &str, &str)> =
            carts.iter().map(|(l, s)| ("cart.<locale>.toml", l.as_str(), *s)).collect();
        let cart_texts = CartTexts::from_sources(&cart_sources)
            .map_err(|e| ContentError::new("cart.<locale>.toml", format!("missing or invalid: {}", problem(e))))?;
        let notification_sources: Vec<(&'static str, &str, &str)> =
            notifications.iter().map(|(l, s)| ("notifications.<locale>.toml", l.as_str(), *s)).collect();
        let notifications = NotificationTexts::from_sources(&notification_sources, &templates).map_err(|e| {
            ContentError::new("notifications.<locale>.toml", format!("missing or invalid: {}", problem(e)))
        })?;
        Ok(ContentSet { version: bundle.version(), flows, templates, notifications, cart_texts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_set_validates_and_round_trips_through_its_stored_form() {
        let bundle = Bundle::embedded();
        assert!(bundle.files.contains_key("flows/default.de.toml"));
        assert!(bundle.files.contains_key("notifications.en.toml"));
        assert!(bundle.files.contains_key("cart.de.toml"));
        let set = ContentSet::validate(&bundle).unwrap();
        assert_eq!(set.version, bundle.version());
        assert_eq!(set.version.len(), 12);
        assert_eq!(Bundle::from_stored(&bundle.to_stored()).unwrap(), bundle);
    }

    #[test]
    fn the_repository_config_dir_is_the_embedded_set() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        assert_eq!(Bundle::from_dir(&dir).unwrap(), Bundle::embedded());
    }

    #[test]
    fn a_broken_file_is_named_with_its_problem() {
        let mut bundle = Bundle::embedded();
        bundle.files.insert("cart.en.toml".into(), "line = \"x\"".into());
        let e = ContentSet::validate(&bundle).unwrap_err();
        assert_eq!(e.file, "cart.en.toml");
        assert!(e.problem.contains("missing field"), "{e}");

        let mut bundle = Bundle::embedded();
        let flows = bundle.files["flows/default.en.toml"].clone();
        bundle.files.insert("flows/default.en.toml".into(), format!("{flows}\n[[flow]]\nid = \"x\"\n"));
        let e = ContentSet::validate(&bundle).unwrap_err();
        assert_eq!(e.file, "flows/default.en.toml", "{e}");

        let mut bundle = Bundle::embedded();
        bundle.files.insert("banner.toml".into(), String::new());
        assert_eq!(ContentSet::validate(&bundle).unwrap_err().file, "banner.toml");

        let mut bundle = Bundle::embedded();
        bundle.files.remove(TEMPLATES_FILE);
        assert_eq!(ContentSet::validate(&bundle).unwrap_err().file, TEMPLATES_FILE);
    }

    #[test]
    fn notification_texts_are_checked_against_the_sets_own_catalog() {
        let mut bundle = Bundle::embedded();
        // A catalog without the order templates the notification texts name.
        bundle.files.insert(TEMPLATES_FILE.into(), String::new());
        let e = ContentSet::validate(&bundle).unwrap_err();
        assert!(e.file.starts_with("notifications."), "{e}");
    }

    #[test]
    fn a_damaged_stored_set_is_refused() {
        let stored = String::from_utf8(Bundle::embedded().to_stored()).unwrap();
        let edited = stored.replacen("Warenkorb", "Korb", 1);
        assert_ne!(stored, edited);
        assert!(Bundle::from_stored(edited.as_bytes()).unwrap_err().problem.contains("checksum"));
        assert!(Bundle::from_stored(b"{}").is_err());
        assert!(Bundle::from_stored(b"not json").unwrap_err().problem.contains("not a content set"));
    }

    #[test]
    fn same_files_same_version() {
        let a = Bundle::from_files([("a".to_string(), "bc".to_string())]);
        let b = Bundle::from_files([("ab".to_string(), "c".to_string())]);
        assert_ne!(a.sha256(), b.sha256());
        assert_eq!(a.version(), Bundle::from_files([("a".to_string(), "bc".to_string())]).version());
    }
}
