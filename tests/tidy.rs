//! Tidy: what rustfmt cannot reach, checked over every Rust file of the tree (in the manner of
//! TigerBeetle's tidy): no trailing whitespace or tabs, no line over `max_width` (rustfmt leaves
//! long strings and comments as they are), and no function longer than `FUNCTION_LINES` unless a
//! `// tidy: long because …` comment just above it (or on its first line) says why.

use std::path::{Path, PathBuf};

/// A function longer than this is usually two: split it, or say why not.
const FUNCTION_LINES: usize = 80;

#[test]
fn the_tree_is_tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let max_width = max_width(root);
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "tidy found the tree's Rust files");
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a Rust file reads as UTF-8");
        let name = file.strip_prefix(root).unwrap_or(file).display().to_string();
        check(&name, &text, max_width, &mut problems);
    }
    assert!(problems.is_empty(), "tidy found {} problems:\n{}", problems.len(), problems.join("\n"));
}

fn check(name: &str, text: &str, max_width: usize, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let at = format!("{name}:{}", i + 1);
        if line.ends_with(' ') || line.ends_with('\t') {
            problems.push(format!("{at}: trailing whitespace"));
        }
        if line.contains('\t') {
            problems.push(format!("{at}: a tab (indent with spaces)"));
        }
        if line.chars().count() > max_width {
            problems.push(format!("{at}: {} characters, over max_width {max_width}", line.chars().count()));
        }
    }
    for (start, length) in functions(&lines) {
        let reason = lines[start.saturating_sub(3)..=(start + 1).min(lines.len() - 1)]
            .iter()
            .any(|l| l.trim_start().starts_with("// tidy: long because"));
        if length > FUNCTION_LINES && !reason {
            problems.push(format!(
                "{name}:{}: a function of {length} lines (over {FUNCTION_LINES}): split it, or say why in a \
                 `// tidy: long because …` comment above it",
                start + 1
            ));
        }
    }
}

/// (first line, length) of every function: rustfmt puts a function's closing brace alone on a
/// line at the indentation of its `fn` line.
fn functions(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "async fn ", "pub async fn "]
            .iter()
            .any(|p| trimmed.starts_with(p));
        // A declaration without a body (a trait's), on one line or wrapped by the formatter.
        let signature_end = lines[start..].iter().map(|l| l.trim_end()).find(|l| l.ends_with(';') || l.ends_with('{'));
        if !is_fn || signature_end.is_none_or(|l| l.ends_with(';')) {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[start..].iter().position(|l| *l == close) {
            found.push((start, end + 1));
        }
    }
    found
}

fn max_width(root: &Path) -> usize {
    let config = std::fs::read_to_string(root.join("rustfmt.toml")).unwrap_or_default();
    config
        .lines()
        .find_map(|l| l.strip_prefix("max_width").map(|v| v.trim_start_matches([' ', '=']).trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn tidy_finds_what_it_looks_for() {
    let long_body = "    let x = 1;\n".repeat(FUNCTION_LINES + 1);
    let text = format!("fn short() {{\n}}\n\nfn long() {{\n{long_body}}}\n\nlet s = 1; \n");
    let mut problems = Vec::new();
    check("example.rs", &text, 120, &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("trailing whitespace"));
    assert!(problems[1].contains("example.rs:4: a function of"));
    let excused = format!("// tidy: long because it is a table\nfn long() {{\n{long_body}}}\n");
    let mut problems = Vec::new();
    check("example.rs", &excused, 120, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
}
