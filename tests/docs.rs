//! The project documents what it accepts: every key the stack file's
//! validator knows is in `docs/stack-file.md` (and nothing else is), and
//! `examples/stacks/reference.toml` uses every one of them.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The keys of the validator's tables (`const *_KEYS` in config/keys.rs) and
/// the one it spells out inline (`depends_on`'s `condition`).
fn validator_keys() -> BTreeSet<String> {
    let src = read("src/config/keys.rs");
    let mut out = BTreeSet::new();
    for part in src.split("const ").skip(1) {
        let Some((name, rest)) = part.split_once(':') else {
            continue;
        };
        if !name.ends_with("_KEYS") {
            continue;
        }
        let list = rest.split_once("];").map_or("", |(l, _)| l);
        for q in list.split('"').skip(1).step_by(2) {
            out.insert(q.to_string());
        }
    }
    out.insert("condition".into());
    out
}

/// The keys in the first column of the doc's tables (`` | `key` | ``),
/// the compose table at its end left out.
fn documented_keys() -> BTreeSet<String> {
    let text = read("docs/stack-file.md");
    let ours = text.split("## Compose keys").next().unwrap_or("");
    ours.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

/// The keys a TOML text assigns (`key =`, in tables or inline), comments
/// left out.
fn assigned_keys(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        // A comment starts at a `#` outside quotes.
        let mut code = String::new();
        let mut quoted = false;
        for c in line.chars() {
            if c == '"' {
                quoted = !quoted;
            }
            if c == '#' && !quoted {
                break;
            }
            code.push(c);
        }
        let bytes: Vec<char> = code.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_lowercase()
                && (i == 0
                    || !(bytes[i - 1].is_ascii_alphanumeric()
                        || bytes[i - 1] == '_'
                        || bytes[i - 1] == '"'
                        || bytes[i - 1] == '.'))
            {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_lowercase()
                        || bytes[i].is_ascii_digit()
                        || bytes[i] == '_')
                {
                    i += 1;
                }
                let word: String = bytes[start..i].iter().collect();
                let rest: String = bytes[i..].iter().collect();
                if rest.trim_start().starts_with('=') {
                    out.insert(word);
                }
            } else {
                i += 1;
            }
        }
        // Table headers: [containers.web.resources] names `resources`.
        let t = code.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            out.extend(h.split('.').map(|p| p.trim().to_string()));
        }
    }
    out
}

#[test]
fn every_key_the_validator_accepts_is_documented_and_no_other() {
    let valid = validator_keys();
    assert!(valid.len() > 60, "{valid:?}");
    let docs = documented_keys();
    let missing: Vec<_> = valid.difference(&docs).collect();
    assert!(missing.is_empty(), "not in docs/stack-file.md: {missing:?}");
    let extra: Vec<_> = docs.difference(&valid).collect();
    assert!(extra.is_empty(), "documented but not accepted: {extra:?}");
}

#[test]
fn the_reference_example_uses_every_key() {
    let used = assigned_keys(&read("examples/stacks/reference.toml"));
    let missing: Vec<_> = validator_keys()
        .into_iter()
        .filter(|k| !used.contains(k))
        .collect();
    assert!(missing.is_empty(), "reference.toml lacks: {missing:?}");
}

/// `api/openapi.yaml` is YAML an OpenAPI tool can load, and names every
/// route the server answers and every kind of error it gives.
#[test]
fn the_api_description_loads_and_covers_the_routes_and_error_kinds() {
    let script = r#"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
print("\n".join(d["paths"]))
print("KINDS " + " ".join(d["components"]["schemas"]["Error"]["properties"]["kind"]["enum"]))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(root().join("api/openapi.yaml"))
        .output()
        .expect("python3 (scripts/test.sh installs it with python3-yaml)");
    assert!(
        out.status.success(),
        "api/openapi.yaml does not load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let server = read("src/api/server/mod.rs");
    for route in server
        .split(".route(\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
    {
        assert!(
            listed.lines().any(|l| l == route),
            "route {route} is not in api/openapi.yaml"
        );
    }
    let kinds = listed
        .lines()
        .find_map(|l| l.strip_prefix("KINDS "))
        .unwrap_or_default()
        .to_string();
    let error = read("src/control/error.rs");
    let body = error
        .split("pub enum ErrorKind {")
        .nth(1)
        .and_then(|b| b.split('}').next())
        .unwrap_or_default();
    for variant in body
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(',') && !l.starts_with("//"))
        .map(|l| l.trim_end_matches(','))
        .filter(|v| !matches!(*v, "Http" | "Unknown"))
    {
        let snake: String = variant
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let lower = c.to_ascii_lowercase();
                if c.is_ascii_uppercase() && i > 0 {
                    vec!['_', lower]
                } else {
                    vec![lower]
                }
            })
            .collect();
        assert!(
            kinds.split(' ').any(|k| k == snake),
            "error kind {snake} is not in api/openapi.yaml's Error"
        );
    }
}

/// `docs/cli.md` has a section for every command the binary has, naming
/// every option that command's `--help` lists.
#[test]
fn every_command_and_option_is_in_the_cli_reference() {
    let doc = read("docs/cli.md");
    let rk = env!("CARGO_BIN_EXE_rkstack");
    let help = |args: &[&str]| {
        let out = std::process::Command::new(rk).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let top = help(&["--help"]);
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() > 15, "{top}");
    for c in &commands {
        let heading = format!("### `rkstack {c}`");
        let section = doc
            .split(&heading)
            .nth(1)
            .unwrap_or_else(|| panic!("docs/cli.md has no {heading}"))
            .split("\n### ")
            .next()
            .unwrap_or_default();
        let own = help(&[c, "--help"]);
        let own = own.split("Global options:").next().unwrap_or_default();
        for word in own.split_whitespace().filter(|w| w.starts_with("--")) {
            let opt = word.trim_end_matches(',');
            assert!(
                section.contains(opt),
                "docs/cli.md: rkstack {c} does not name {opt}"
            );
        }
    }
}
