//! The optional configuration file (`keel.toml` in the working directory, or `--config PATH` /
//! `KEEL_CONFIG`). Its keys are `serve`'s flags in snake case (`port`, `webhook_url`, …). Each value
//! fills the flag's `KEEL_*` variable when that is not set, so the precedence is DESIGN.md's: flags
//! override environment variables, which override the file, which overrides defaults.

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "keel.toml";

/// The file to read: `--config PATH` (or `--config=PATH`), else `KEEL_CONFIG`, else `keel.toml` if
/// it exists. `Ok(None)` when there is none.
fn chosen_path(args: &[String]) -> Result<Option<PathBuf>, String> {
    let mut given = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == "--config" {
            given = Some(args.get(i + 1).cloned().ok_or("--config needs a path")?);
        } else if let Some(path) = arg.strip_prefix("--config=") {
            given = Some(path.to_string());
        }
    }
    let given = given.or_else(|| std::env::var("KEEL_CONFIG").ok().filter(|p| !p.is_empty()));
    match given {
        Some(path) if !std::path::Path::new(&path).exists() => Err(format!("config file {path} does not exist")),
        Some(path) => Ok(Some(path.into())),
        None if std::path::Path::new(DEFAULT_PATH).exists() => Ok(Some(DEFAULT_PATH.into())),
        None => Ok(None),
    }
}

/// `serve`'s options that a file may set: key (the flag in snake case) → environment variable.
pub fn known_keys() -> BTreeMap<String, String> {
    let cli = crate::config::Cli::command();
    let serve = cli.find_subcommand("serve").expect("the CLI has a serve subcommand");
    let mut keys: BTreeMap<String, String> = serve
        .get_arguments()
        .filter_map(|arg| Some((arg.get_id().to_string(), arg.get_env()?.to_str()?.to_string())))
        .collect();
    keys.insert("log_format".into(), "KEEL_LOG_FORMAT".into());
    keys.remove("config");
    keys
}

/// Reads the file, if any, into the environment (variables already set win). Returns the path read
/// and the variables it set, for `keel config` to say where each value came from.
pub fn load(args: &[String]) -> Result<Option<(PathBuf, Vec<String>)>, String> {
    let Some(path) = chosen_path(args)? else { return Ok(None) };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{shown} is not valid TOML: {e}"))?;
    let known = known_keys();
    let mut applied = Vec::new();
    for (key, value) in table {
        let Some(variable) = known.get(&key) else {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(format!("{shown}: unknown key `{key}` (known keys: {})", names.join(", ")));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "{shown}: `{key}` must be a string, a whole number or a boolean, not a {}",
                    other.type_str()
                ))
            }
        };
        if std::env::var_os(variable).is_none() {
            // Start-up, before any thread exists: setting the environment is safe here.
            std::env::set_var(variable, text);
            applied.push(variable.clone());
        }
    }
    Ok(Some((path, applied)))
}

/// `keel config`: the effective value of every `serve` option as TOML (so it can be saved as
/// keel.toml), each with where it came from; secrets masked.
pub fn effective(matches: &clap::ArgMatches, file: Option<&(PathBuf, Vec<String>)>) -> String {
    use clap::parser::ValueSource;
    use std::fmt::Write;
    let mut out = String::new();
    let sub = matches.subcommand_matches("config").expect("effective() is for `keel config`");
    let (file_name, from_file) = match file {
        Some((path, applied)) => (path.display().to_string(), applied.clone()),
        None => (String::new(), Vec::new()),
    };
    for (key, variable) in known_keys() {
        // `log_format` is a global option: it lives in the top-level matches.
        let here = if sub.try_get_raw(&key).is_ok() { sub } else { matches };
        let value = here
            .try_get_raw(&key)
            .ok()
            .flatten()
            // A repeatable option (`database_replica`) shows every value, space-separated as its
            // variable takes them.
            .map(|values| values.map(|v| v.to_string_lossy().to_string()).collect::<Vec<_>>().join(" "))
            .filter(|joined| !joined.is_empty());
        let source = match here.value_source(&key) {
            Some(ValueSource::CommandLine) => "flag".to_string(),
            Some(ValueSource::EnvVariable) if from_file.contains(&variable) => file_name.clone(),
            Some(ValueSource::EnvVariable) => variable.clone(),
            _ => "default".to_string(),
        };
        match value {
            None => {
                let _ = writeln!(out, "# {key} is not set");
            }
            Some(value) => {
                let shown = match key.as_str() {
                    "api_key" | "webhook_secret" | "webhook_headers" | "tokenization_secret" => "********".to_string(),
                    "database" | "amqp_url" | "nats_url" => mask_password(&value),
                    "database_replica" => value.split(' ').map(mask_password).collect::<Vec<_>>().join(" "),
                    _ => value,
                };
                let literal = if shown.parse::<i64>().is_ok() || shown == "true" || shown == "false" {
                    shown
                } else {
                    format!("{shown:?}")
                };
                let _ = writeln!(out, "{:<56} # {source}", format!("{key} = {literal}"));
            }
        }
    }
    out
}

/// `postgres://user:secret@host/db` → `postgres://user:****@host/db`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****@{host}")
        }
        _ => url.to_string(),
    }
}
