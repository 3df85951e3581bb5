//! Environment overrides: `PORTCULLIS_<SECTION>__<KEY>=value` replaces `section.key`.
//!
//! Rules:
//! 1. Only names with the `PORTCULLIS_` prefix and at least one `__` are overrides
//!    (so `PORTCULLIS_CONFIG`, the CLI's config path, is not one).
//! 2. Segments are lowercased; a numeric segment indexes an array of tables:
//!    `PORTCULLIS_ROUTE__0__UPSTREAM` sets `route[0].upstream`. The next free index
//!    appends a route, so routes can be defined by environment alone.
//! 3. A value is typed after the default at that key: booleans take `true`/`false`,
//!    numbers take digits, lists take comma-separated items; everything else is a string.
//!    Values are never parsed as TOML, so a secret that happens to look like a number
//!    stays the string it is.

use super::Problem;
use std::collections::HashMap;
use toml::{Table, Value};

pub const PREFIX: &str = "PORTCULLIS_";

/// Applies every override in `vars` to `doc`. Returns which env var set which key, so
/// later problems can name the variable instead of the file.
pub fn apply(
    doc: &mut Table,
    defaults: &Table,
    vars: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) -> HashMap<String, String> {
    let mut overrides: Vec<(String, String)> =
        vars.into_iter().filter(|(name, _)| name.starts_with(PREFIX) && name[PREFIX.len()..].contains("__")).collect();
    // Sorted so that ROUTE__2 is applied before ROUTE__10 and appends happen in order:
    // numeric segments compare as numbers.
    overrides.sort_by_cached_key(|(name, _)| {
        name.split("__")
            .map(|segment| (segment.parse::<usize>().unwrap_or(usize::MAX), segment.to_owned()))
            .collect::<Vec<_>>()
    });

    let mut origins = HashMap::new();
    for (name, value) in overrides {
        let segments: Vec<String> = name[PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        let key = key_path(&segments);
        match set(doc, defaults, &segments, &value) {
            Ok(()) => {
                origins.insert(key, name);
            }
            Err(message) => {
                problems.push(Problem { key, env_var: Some(name), message });
            }
        }
    }
    origins
}

/// `["route", "0", "upstream"]` → `route[0].upstream`, the form every problem uses.
pub fn key_path(segments: &[String]) -> String {
    let mut key = String::new();
    for segment in segments {
        if segment.parse::<usize>().is_ok() {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

fn set(doc: &mut Table, defaults: &Table, segments: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = segments.split_first().ok_or("empty key")?;
    if first.is_empty() || segments.iter().any(String::is_empty) {
        return Err("malformed variable name (empty segment between `__`)".into());
    }
    let default = defaults.get(first);
    if rest.is_empty() {
        doc.insert(first.clone(), typed(raw, default)?);
        return Ok(());
    }
    let entry = doc.entry(first.clone()).or_insert_with(|| match default {
        Some(Value::Array(_)) => Value::Array(Vec::new()),
        _ => Value::Table(Table::new()),
    });
    match entry {
        Value::Table(table) => {
            let defaults = match default {
                Some(Value::Table(t)) => t.clone(),
                _ => Table::new(),
            };
            set(table, &defaults, rest, raw)
        }
        Value::Array(items) => {
            let (index, rest) = rest.split_first().ok_or("missing index")?;
            let index: usize = index.parse().map_err(|_| format!("`{index}` is not an index into `{first}`"))?;
            if index > items.len() {
                return Err(format!(
                    "index {index} skips entries: `{first}` has {} entries, so the next one is {}",
                    items.len(),
                    items.len()
                ));
            }
            if index == items.len() {
                items.push(Value::Table(Table::new()));
            }
            let template = element_template(default);
            match &mut items[index] {
                Value::Table(table) if !rest.is_empty() => set(table, &template, rest, raw),
                _ => Err(format!("`{first}` entries are tables: name a key inside one")),
            }
        }
        _ => Err(format!("`{first}` is a single value, not a section")),
    }
}

/// The defaults of one element of an array of tables (e.g. one `[[route]]`).
fn element_template(default: Option<&Value>) -> Table {
    match default {
        Some(Value::Array(items)) => match items.first() {
            Some(Value::Table(t)) => t.clone(),
            _ => Table::new(),
        },
        _ => Table::new(),
    }
}

fn typed(raw: &str, default: Option<&Value>) -> Result<Value, String> {
    Ok(match default {
        Some(Value::Boolean(_)) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(format!("expected `true` or `false`, got {raw:?}")),
        },
        Some(Value::Integer(_)) => {
            Value::Integer(raw.trim().parse().map_err(|_| format!("expected a whole number, got {raw:?}"))?)
        }
        Some(Value::Array(_)) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
        _ => Value::String(raw.to_owned()),
    })
}
