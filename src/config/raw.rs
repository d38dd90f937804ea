//! Phase one: TOML text → raw serde structs (every field optional, unknown keys rejected), with every
//! syntax-level problem reported at once and placed at its key path and line.
//!
//! serde stops at the first error, so [`parse_toml`] removes the offending key from the parsed document
//! and deserialises again until it succeeds; each removal is one reported problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Problem};

/// The configuration file as written. Validation into [`super::Config`] happens in [`super::validate`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub cloud: Option<RawCloud>,
    pub store: Option<RawStore>,
    pub sync: Option<RawSync>,
    pub door: Option<Vec<RawDoor>>,
    pub line: Option<Vec<super::line::RawLine>>,
}

/// `[cloud]` as written. Integers are `i64` so out-of-range values get a message with the rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCloud {
    pub endpoint: Option<String>,
    pub app_key: Option<String>,
    pub app_secret_file: Option<PathBuf>,
    pub device_iot_id: Option<String>,
    pub user_type: Option<String>,
    pub image_format: Option<String>,
    pub timezone: Option<String>,
    pub poll_interval: Option<String>,
    pub request_timeout: Option<String>,
    pub max_concurrency: Option<i64>,
    pub ca_file: Option<PathBuf>,
    pub image_hosts: Option<Vec<String>>,
    pub allow_insecure_http: Option<bool>,
    pub image_download_max_bytes: Option<i64>,
}

/// `[store]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub path: Option<PathBuf>,
}

/// `[sync]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub verify_interval: Option<String>,
    pub max_implicit_removals: Option<i64>,
    pub removal_hold: Option<String>,
}

/// One `[[door]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDoor {
    pub name: Option<String>,
    pub port: Option<PathBuf>,
    pub baud: Option<i64>,
    pub osdp_address: Option<i64>,
    pub profile: Option<String>,
    pub scbk_file: Option<PathBuf>,
    pub reply_timeout: Option<String>,
}

/// Key path → 1-based line, so later (semantic) errors can say where the key is.
pub(crate) type LineMap = HashMap<String, usize>;

/// A parsed document: the raw value (with bad keys removed), the problems found, and where keys are.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub raw: T,
    pub errors: Vec<ConfigError>,
    pub lines: LineMap,
}

/// How many bad keys one file may report before we stop retrying (a guard, not a limit anyone meets).
const MAX_REPORTED: usize = 100;

/// Parses `text` into `T`, collecting every unknown key and type error. `Err` only for a TOML syntax
/// error (nothing else can be checked then) or a document serde rejects as a whole.
pub(crate) fn parse_toml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<Parsed<T>, ConfigError> {
    let mut doc = DeTable::parse(text).map_err(|e| syntax_error(&e, text, file))?;
    let mut lines = LineMap::new();
    walk_lines(doc.get_ref(), "", text, &mut lines);
    let mut errors = Vec::new();
    loop {
        match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(raw) => return Ok(Parsed { raw, errors, lines }),
            Err(e) => {
                let located = e.span().and_then(|span| {
                    let mut best = None;
                    find_path(doc.get_ref(), &mut Vec::new(), span.start, &mut best);
                    best
                });
                let Some(segs) = located else {
                    // Not attributable to a key: report it on the file and stop.
                    return Err(ConfigError::new("", classify(e.message())));
                };
                let key = render_path(&segs);
                let mut err = ConfigError::new(key.clone(), classify(e.message()));
                err.line = lines.get(&key).copied();
                errors.push(err);
                if errors.len() >= MAX_REPORTED || !remove_key(doc.get_mut(), &segs) {
                    return Err(errors.swap_remove(0));
                }
            }
        }
    }
}

fn classify(message: &str) -> Problem {
    let message = message.trim_end().to_owned();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // serde: "unknown field `x`, expected one of `a`, `b`"; the key is already in the path.
        let expected = rest.split_once(", ").map_or("", |(_, e)| e);
        return Problem::UnknownKey {
            message: expected.replace('`', ""),
        };
    }
    // serde names Rust types; say what to write in TOML instead.
    let message = message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("expected path string", "expected a path string");
    Problem::WrongType { message }
}

fn syntax_error(e: &toml::de::Error, text: &str, file: &Path) -> ConfigError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
    let mut err = ConfigError::new(
        "",
        Problem::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            message: e.message().trim_end().replace('\n', "; "),
        },
    );
    err.line = None;
    err
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn contains(span: &std::ops::Range<usize>, pos: usize) -> bool {
    span.start == pos || (span.start <= pos && pos < span.end)
}

/// The deepest key path whose key or value span holds `pos`. Table spans do not always cover their
/// body (a `[header]` table), so every branch is searched.
fn find_path(table: &DeTable<'_>, prefix: &mut Vec<Seg>, pos: usize, best: &mut Option<Vec<Seg>>) {
    for (k, v) in table.iter() {
        prefix.push(Seg::Key(k.get_ref().to_string()));
        if contains(&k.span(), pos) || contains(&v.span(), pos) {
            consider(prefix, best);
        }
        find_in_value(v, prefix, pos, best);
        prefix.pop();
    }
}

fn find_in_value(v: &Spanned<DeValue<'_>>, prefix: &mut Vec<Seg>, pos: usize, best: &mut Option<Vec<Seg>>) {
    match v.get_ref() {
        DeValue::Table(t) => find_path(t, prefix, pos, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                if contains(&item.span(), pos) {
                    consider(prefix, best);
                }
                find_in_value(item, prefix, pos, best);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn consider(path: &[Seg], best: &mut Option<Vec<Seg>>) {
    if best.as_ref().is_none_or(|b| path.len() >= b.len()) {
        *best = Some(path.to_vec());
    }
}

/// Removes the key that holds `segs` (array elements cannot be removed, so the whole array goes).
fn remove_key(root: &mut DeTable<'_>, segs: &[Seg]) -> bool {
    let Some(last_key) = segs.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let (parent, Some(Seg::Key(name))) = (segs.get(..last_key).unwrap_or(&[]), segs.get(last_key)) else {
        return false;
    };
    let Some(table) = navigate(root, parent) else {
        return false;
    };
    table.remove(name.as_str()).is_some()
}

fn navigate<'a, 'i>(table: &'a mut DeTable<'i>, segs: &[Seg]) -> Option<&'a mut DeTable<'i>> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(table);
    };
    let Seg::Key(k) = first else { return None };
    let mut value = table.get_mut(k.as_str())?;
    let mut rest = rest;
    while let Some((Seg::Index(i), tail)) = rest.split_first() {
        let DeValue::Array(items) = value.get_mut() else {
            return None;
        };
        value = items.get_mut(*i)?;
        rest = tail;
    }
    match value.get_mut() {
        DeValue::Table(t) => navigate(t, rest),
        _ => None,
    }
}

fn walk_lines(table: &DeTable<'_>, prefix: &str, text: &str, lines: &mut LineMap) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        lines.insert(path.clone(), line_col(text, k.span().start).0);
        walk_value_lines(v, &path, text, lines);
    }
}

fn walk_value_lines(v: &Spanned<DeValue<'_>>, path: &str, text: &str, lines: &mut LineMap) {
    match v.get_ref() {
        DeValue::Table(t) => walk_lines(t, path, text, lines),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                lines.insert(p.clone(), line_col(text, item.span().start).0);
                walk_value_lines(item, &p, text, lines);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Parsed<RawConfig>, ConfigError> {
        parse_toml(text, Path::new("t.toml"))
    }

    #[test]
    fn unknown_keys_are_all_reported_with_their_paths_and_lines() {
        let p = parse("[cloud]\napp_key = \"k\"\nbogus = 1\n\n[[door]]\nname = \"a\"\n\n[[door]]\nbaud_rate = 9600\n")
            .unwrap();
        let keys: Vec<_> = p.errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(keys, vec![("cloud.bogus", Some(3)), ("door[1].baud_rate", Some(9))]);
        assert!(matches!(&p.errors[0].problem, Problem::UnknownKey { message } if message.contains("app_key")));
        // The good keys survive the removal of the bad ones.
        assert_eq!(p.raw.cloud.unwrap().app_key.as_deref(), Some("k"));
        assert_eq!(p.raw.door.unwrap()[0].name.as_deref(), Some("a"));
    }

    #[test]
    fn wrong_types_are_reported_at_the_value_path() {
        let p = parse("[cloud]\nmax_concurrency = \"eight\"\nimage_hosts = [\"a\", 3]\n[store]\npath = 5\n").unwrap();
        let keys: Vec<_> = p.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["cloud.image_hosts[1]", "cloud.max_concurrency", "store.path"]
        );
    }

    #[test]
    fn unknown_section_is_reported() {
        let p = parse("[clod]\nendpoint = \"x\"\n").unwrap();
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].key, "clod");
    }

    #[test]
    fn syntax_error_reports_file_line_and_column() {
        let e = parse("[cloud]\napp_key = \"k\"\nendpoint = = 3\n").unwrap_err();
        let Problem::Syntax { line, column, .. } = &e.problem else {
            panic!("{e:?}")
        };
        assert_eq!((*line, *column), (3, 12));
        assert!(e.to_string().starts_with("t.toml:3:12: TOML syntax error"), "{e}");
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("a\né=x", 5), (2, 3));
        assert_eq!(line_col("", 10), (1, 1));
    }
}
