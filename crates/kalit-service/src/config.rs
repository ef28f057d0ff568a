//! Configuration files with environment overrides.
//!
//! Precedence, lowest first: the struct's defaults, the TOML file, `PREFIX_KEY` environment variables
//! (nested keys joined with `__`, e.g. `KALIT_RELAY_LIMITS__PER_ADDRESS_PER_MINUTE=30`), then command-line
//! flags (applied by the caller). Unknown keys are refused in the file and in the environment alike.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ServiceError;

/// Loads `T` from its defaults, `file` and the environment variables starting with `prefix`.
pub fn load<T: Serialize + DeserializeOwned + Default>(file: Option<&Path>, prefix: &str) -> Result<T, ServiceError> {
    load_from(file, prefix, std::env::vars())
}

/// [`load`] with explicit environment variables (for tests).
pub fn load_from<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
    prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ServiceError> {
    let mut value = toml::Value::try_from(T::default()).map_err(ServiceError::internal)?;
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| ServiceError::new(kalit_proto::ErrorCode::Io, format!("cannot read {}: {e}", f.display())))?;
        let file_value: toml::Table =
            toml::from_str(&text).map_err(|e| ServiceError::invalid(format!("{}: {e}", f.display())))?;
        merge(&mut value, toml::Value::Table(file_value));
    }
    for (k, v) in env {
        let Some(rest) = k.strip_prefix(prefix) else { continue };
        let path: Vec<String> = rest.to_ascii_lowercase().split("__").map(str::to_string).collect();
        let parsed = parse_env_value(&v);
        set(&mut value, &path, parsed).map_err(|e| ServiceError::invalid(format!("environment variable {k}: {e}")))?;
    }
    let text = toml::to_string(&value).map_err(ServiceError::internal)?;
    let source = file.map_or("the environment".to_string(), |f| format!("{} or the environment", f.display()));
    toml::from_str(&text).map_err(|e| ServiceError::invalid(format!("configuration from {source}: {e}")))
}

fn parse_env_value(v: &str) -> toml::Value {
    // Numbers, booleans and arrays as TOML; anything else is a string.
    match toml::from_str::<toml::Table>(&format!("v = {v}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(v.into())),
        Err(_) => toml::Value::String(v.into()),
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn set(v: &mut toml::Value, path: &[String], new: toml::Value) -> Result<(), String> {
    let toml::Value::Table(t) = v else { return Err("not a table".into()) };
    let (first, rest) = path.split_first().ok_or("empty key")?;
    if rest.is_empty() {
        // Unknown keys are inserted and then refused by deserialization (deny_unknown_fields).
        let new = match (t.get(first), new) {
            (Some(toml::Value::String(_)), n) if !n.is_str() => toml::Value::String(n.to_string()),
            (Some(toml::Value::Array(_)), toml::Value::String(s)) => {
                toml::Value::Array(s.split(',').map(|x| toml::Value::String(x.trim().into())).collect())
            }
            (_, n) => n,
        };
        t.insert(first.clone(), new);
        return Ok(());
    }
    let entry = t.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set(entry, rest, new)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Limits {
        per_minute: u32,
    }
    impl Default for Limits {
        fn default() -> Self {
            Limits { per_minute: 60 }
        }
    }
    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Cfg {
        name: String,
        trust: Vec<String>,
        limits: Limits,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn file_then_environment_and_unknown_keys_refused() {
        let dir = std::env::temp_dir().join(format!("kalit-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "name = \"file\"\n[limits]\nper_minute = 5\n").unwrap();
        let c: Cfg = load_from(Some(&f), "K_", env(&[("K_LIMITS__PER_MINUTE", "7"), ("OTHER", "x")])).unwrap();
        assert_eq!(c, Cfg { name: "file".into(), trust: vec![], limits: Limits { per_minute: 7 } });
        let c: Cfg = load_from(None, "K_", env(&[("K_TRUST", "a.pem, b.pem"), ("K_NAME", "123")])).unwrap();
        assert_eq!(c.trust, vec!["a.pem", "b.pem"]);
        assert_eq!(c.name, "123", "a number given for a string key stays a string");
        let e = load_from::<Cfg>(None, "K_", env(&[("K_NAEM", "x")])).unwrap_err();
        assert!(e.message.contains("naem"), "{}", e.message);
        std::fs::write(&f, "nmae = \"typo\"\n").unwrap();
        let e = load_from::<Cfg>(Some(&f), "K_", env(&[])).unwrap_err();
        assert!(e.message.contains("nmae"), "{}", e.message);
        let e = load_from::<Cfg>(None, "K_", env(&[("K_LIMITS__PER_MINUTE", "many")])).unwrap_err();
        assert_eq!(e.code, kalit_proto::ErrorCode::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
