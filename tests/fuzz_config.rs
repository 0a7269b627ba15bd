//! Property test standing in for a fuzzer (cargo fuzz needs a nightly
//! toolchain): the parser and validator never panic, whatever the input.
//! Inputs are the example stacks with random edits, and random text.
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz_config` runs it longer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;

use proptest::prelude::*;

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stacks");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v
}

/// Fragments likely to reach deep into validation.
const TOKENS: &[&str] = &[
    "\n[containers.x]\n",
    "image = \"host\"",
    "command = [\"/bin/sh\"]",
    "depends_on = [\"x\"]",
    "\"",
    "=",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "0",
    "-1",
    "1e400",
    "9999999999999999999999",
    "\"10.89.0.0/24\"",
    "\"::/0\"",
    "\"0:0:4294967295\"",
    "[defaults]\n",
    "networks = [\"host\"]",
    "ports = [\"1:1\"]",
    "ip = \"10.89.0.255\"",
    "\"1m\"",
    "\"1ms\"",
    "\"64M\"",
    "''",
    "\u{1F600}",
    "\\u0000",
    "'''",
    "\"\"\"",
    "resources = { memory = 1 }",
    "security = { capabilities = { add = [\"ALL\"] } }",
    "\t",
    "#",
    "é",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: usize },
    Duplicate { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), any::<usize>()).prop_map(|(at, token)| Edit::Insert { at, token }),
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, edits: &[Edit]) -> String {
    for e in edits {
        match *e {
            Edit::Delete { at, len } => {
                let a = boundary(&s, at);
                let b = boundary(&s, (a + len).min(s.len()));
                s.replace_range(a..b.max(a), "");
            }
            Edit::Insert { at, token } => {
                let a = boundary(&s, at);
                s.insert_str(a, TOKENS[token % TOKENS.len()]);
            }
            Edit::Duplicate { at, len } => {
                let a = boundary(&s, at);
                let b = boundary(&s, (a + len).min(s.len())).max(a);
                let piece = s[a..b].to_string();
                s.insert_str(b, &piece);
            }
        }
    }
    s
}

fn check(src: &str) {
    // Ok or Err are both fine; a panic fails the property.
    match rkstack::config::parse(src, Path::new("/fuzz/stack.toml")) {
        Ok(stack) => {
            let _ = serde_json::to_string(&stack);
            // Its effective form is a stack file of the same stack.
            let text = rkstack::config::render::to_toml(&stack);
            let again = rkstack::config::parse(&text, Path::new("/fuzz/effective.toml"))
                .unwrap_or_else(|e| panic!("{src}\nwritten back as\n{text}\n{e:?}"));
            assert_eq!(
                rkstack::config::render::stack(&stack),
                rkstack::config::render::stack(&again),
                "{src}\nwritten back as\n{text}"
            );
            let d = rkstack::plan::DesiredState::from_stack(stack);
            let p = rkstack::plan::reconcile(&d, &rkstack::plan::ObservedState::default());
            let _ = p.to_string();
        }
        Err(e) => {
            for d in e.diagnostics() {
                assert!(d.line >= 1 && d.col >= 1, "{d}");
            }
        }
    }
}

proptest! {
    // PROPTEST_CASES overrides the default of 512 cases per property.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn edited_examples_never_panic(which in any::<usize>(), edits in prop::collection::vec(edit(), 1..12)) {
        let ex = examples();
        let src = apply(ex[which % ex.len()].clone(), &edits);
        check(&src);
    }

    #[test]
    fn random_text_never_panics(src in "\\PC{0,400}") {
        check(&src);
    }
}
