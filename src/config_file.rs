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
