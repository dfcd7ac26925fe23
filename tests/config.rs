//! Configuration: flags override `KEEL_*` variables, which override keel.toml, which overrides
//! defaults; `keel config` shows the result with sources and secrets masked; an unknown key or a bad
//! value is a start-up error that names it; and the server really runs with what the file says.

mod common;

use common::Server;
use reqwest::StatusCode;
use std::process::Command;

fn keel_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command.args(args).current_dir(dir);
    for var in ["KEEL_PORT", "KEEL_API_KEY", "KEEL_WEBHOOK_URL", "KEEL_MAX_BATCH", "KEEL_CONFIG", "KEEL_DATABASE_URL"] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("keel runs");
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

fn line<'a>(printed: &'a str, key: &str) -> &'a str {
    printed.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no {key} in {printed}"))
}

#[test]
fn flags_override_environment_which_overrides_the_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keel.toml"),
        "port = 6001\nmax_batch = 10\nwebhook_url = \"http://127.0.0.1:9/hook\"\napi_key = \"file-secret\"\n\
         database = \"postgres://keel:hunter2@db.internal:5432/ledger\"\n\
         tokenization_secret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    let (ok, printed) = keel_in(dir.path(), &["config", "--max-batch", "50"], &[("KEEL_PORT", "6002")]);
    assert!(ok, "{printed}");
    assert!(
        line(&printed, "max_batch").contains("= 50") && line(&printed, "max_batch").ends_with("# flag"),
        "{printed}"
    );
    assert!(line(&printed, "port").contains("= 6002") && line(&printed, "port").ends_with("# KEEL_PORT"), "{printed}");
    assert!(line(&printed, "webhook_url").ends_with("# keel.toml"), "{printed}");
    assert!(line(&printed, "bind").ends_with("# default"), "{printed}");
    assert!(line(&printed, "api_key").contains("********"), "{printed}");
    assert!(line(&printed, "database").contains("postgres://keel:****@db.internal"), "{printed}");
    assert!(line(&printed, "tokenization_secret").contains("********"), "{printed}");
    for secret in ["file-secret", "hunter2", "0123456789abcdef"] {
        assert!(!printed.contains(secret), "{secret} is masked: {printed}");
    }
    assert!(printed.contains("# webhook_secret is not set"), "{printed}");
}

#[test]
fn an_unknown_key_or_a_bad_value_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("typo.toml"), "prot = 6001\n").unwrap();
    let (ok, printed) = keel_in(dir.path(), &["--config", "typo.toml", "config"], &[]);
    assert!(!ok);
    assert!(printed.contains("unknown key `prot`"), "{printed}");

    std::fs::write(dir.path().join("bad.toml"), "port = \"eighty\"\n").unwrap();
    let (ok, printed) = keel_in(dir.path(), &["serve"], &[("KEEL_CONFIG", "bad.toml")]);
    assert!(!ok);
    assert!(
        printed.contains("--port") && printed.contains("eighty") && printed.contains("bad.toml set port"),
        "{printed}"
    );

    let (ok, printed) = keel_in(dir.path(), &["config"], &[("KEEL_MAX_BATCH", "-3")]);
    assert!(!ok && printed.contains("--max-batch"), "{printed}");
    let (ok, printed) = keel_in(dir.path(), &["--config", "missing.toml", "config"], &[]);
    assert!(!ok && printed.contains("missing.toml does not exist"), "{printed}");
}

#[tokio::test]
async fn the_server_runs_with_what_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, "api_key = \"from-the-file\"\nlog_format = \"json\"\n").unwrap();
    let server = Server::start_with_args(&["--config", path.to_str().unwrap()]);
    let response = server.client().get(format!("{}/ledgers", server.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the file's api_key is in force");
    let response = server
        .client()
        .get(format!("{}/ledgers", server.base))
        .header("X-Blnk-Key", "from-the-file")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(server.logs().iter().all(|l| l.starts_with('{')), "the file's log_format is in force");
}
