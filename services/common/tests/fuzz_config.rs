//! Property tests of configuration parsing: whatever text and environment `Config::parse` is
//! given, it answers a configuration or a `ConfigError` listing problems, and never panics.
//! Inputs are arbitrary text, YAML-like token soup, and `config.example.yaml` mutated line by
//! line (values swapped for edge values, comments uncommented, lines dropped or repeated).
//!
//! Each property runs a bounded number of cases; `PROPTEST_CASES=10000` runs more.
//! Inputs that once failed are replayed first from `tests/proptest-regressions/`.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use tollgate_common::{Config, ConfigError};

mod proptest_config;

use proptest_config::{config, scaled_config};

const EXAMPLE: &str = include_str!("../../../config.example.yaml");

/// What the example refers to, so that it parses as written unless a mutation breaks it.
fn example_env() -> BTreeMap<String, String> {
    [
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "AZURE_API_KEY",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "TOLLGATE_JWT_SECRET",
        "TOLLGATE_SERVICE_TOKEN",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), format!("value-of-{name}")))
    .collect()
}

/// Values at and past every limit a field of the configuration has.
const EDGE_VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-.inf",
    "0x10",
    "0o17",
    "1_000",
    "1.5",
    "~",
    "null",
    "true",
    "no",
    "yes",
    "''",
    "\"\"",
    "\" \"",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{ a: { b: { c: d } } }",
    "!!binary aGk=",
    "!!str 5",
    "!custom x",
    "*undefined_alias",
    "&anchor value",
    "|\n  block\n  text",
    ">\n  folded",
    "\"${UNSET}\"",
    "\"${UNSET:-fallback}\"",
    "\"${}\"",
    "\"${A B}\"",
    "\"${OPENAI_API_KEY\"",
    "\"$$${OPENAI_API_KEY}$\"",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "\"\u{202e}\"",
    "\"日本語\"",
    "\"http://\"",
    "\"https:///x\"",
    "\"redis://\"",
    "\"sqlite:\"",
    "\"postgres://u@h:99999/db\"",
    "\"999.999.999.999:99999\"",
    "\"[::1]:0\"",
    "\"127.0.0.1:8080\"",
    "fallback",
    "weighted",
    "least-latency",
    "cheapest",
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "exact",
    "semantic",
    "off",
    "hashed",
    "sentence",
    "provider",
    "reject",
    "daily",
    "lifetime",
];

#[derive(Debug, Clone)]
enum LineEdit {
    /// Replaces the value after the line's first `: ` (or the whole line) with an edge value.
    Value(Index, Index),
    /// Removes the `#` that comments a line out, keeping its indentation.
    Uncomment(Index),
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Indents a line by a number of spaces (negative: dedents).
    Indent(Index, i8),
    Insert(Index, String),
    /// Overwrites one byte of the text.
    Byte(Index, u8),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>()).prop_map(|(l, v)| LineEdit::Value(l, v)),
        3 => any::<Index>().prop_map(LineEdit::Uncomment),
        1 => any::<Index>().prop_map(LineEdit::Delete),
        1 => any::<Index>().prop_map(LineEdit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        1 => (any::<Index>(), -4i8..=4).prop_map(|(l, n)| LineEdit::Indent(l, n)),
        1 => (any::<Index>(), yaml_like()).prop_map(|(l, text)| LineEdit::Insert(l, text)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| LineEdit::Byte(at, b)),
    ]
}

fn apply(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match edit {
            LineEdit::Value(line, value) => {
                let line = &mut lines[line.index(n)];
                let value = EDGE_VALUES[value.index(EDGE_VALUES.len())];
                *line = match line.split_once(": ") {
                    Some((key, _)) => format!("{key}: {value}"),
                    None => value.to_owned(),
                };
            }
            LineEdit::Uncomment(line) => {
                // Of the commented lines, the one the index picks.
                let commented: Vec<usize> = (0..n)
                    .filter(|&i| lines[i].trim_start().starts_with('#'))
                    .collect();
                if !commented.is_empty() {
                    let line = &mut lines[commented[line.index(commented.len())]];
                    if let Some(at) = line.find('#') {
                        let rest = line[at + 1..].strip_prefix(' ').unwrap_or(&line[at + 1..]);
                        *line = format!("{}{rest}", &line[..at]);
                    }
                }
            }
            LineEdit::Delete(line) => {
                lines.remove(line.index(n));
            }
            LineEdit::Duplicate(line) => {
                let at = line.index(n);
                lines.insert(at, lines[at].clone());
            }
            LineEdit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            LineEdit::Indent(line, by) => {
                let line = &mut lines[line.index(n)];
                if *by >= 0 {
                    line.insert_str(0, &" ".repeat(usize::from(by.unsigned_abs())));
                } else {
                    let strip = line
                        .len()
                        .min(usize::from(by.unsigned_abs()))
                        .min(line.len() - line.trim_start_matches(' ').len());
                    line.drain(..strip);
                }
            }
            LineEdit::Insert(line, text) => lines.insert(line.index(n + 1), text.clone()),
            LineEdit::Byte(at, byte) => {
                let mut bytes = lines.join("\n").into_bytes();
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = *byte;
                }
                // A byte that breaks UTF-8 cannot be in a `&str`; the loader reads files as
                // UTF-8 and refuses the rest before parsing.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                lines = text.split('\n').map(str::to_owned).collect();
            }
        }
    }
    lines.join("\n")
}

/// YAML-like text: indicators, section names, anchors, tags and values in any order.
fn yaml_like() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &[
        "\n",
        "\n  ",
        "\n    ",
        "  ",
        ": ",
        ":",
        "- ",
        "-",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "? ",
        "#",
        "'",
        "\"",
        "|",
        ">",
        "&a ",
        "*a",
        "<<: *a",
        "!!map ",
        "!!seq ",
        "!!str ",
        "!tag ",
        "---\n",
        "...\n",
        "%YAML 1.2\n",
        "${",
        "${OPENAI_API_KEY}",
        "${X:-",
        "$$",
        "}",
        "server",
        "providers",
        "models",
        "routing",
        "prices",
        "telemetry",
        "storage",
        "redis",
        "auth",
        "limits",
        "usage",
        "cache",
        "billing",
        "admin",
        "outbound",
        "kind",
        "openai",
        "api_key",
        "api_base",
        "name",
        "targets",
        "provider",
        "model",
        "weight",
        "retry",
        "attempts",
        "on_status",
        "timeout_ms",
        "listen",
        "data_dir",
        "url",
        "signing_keys",
        "kid",
        "secret",
        "0",
        "-1",
        "18446744073709551616",
        "1e400",
        ".nan",
        "~",
        "true",
        "x",
        "日本",
        "\t",
        "\r",
        "\u{0}",
        "\u{feff}",
    ];
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..48)
        .prop_map(|tokens| tokens.concat())
}

/// Environments whose variables hold anything, including what the overrides must refuse.
fn environment() -> impl Strategy<Value = BTreeMap<String, String>> {
    const NAMES: &[&str] = &[
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "TOLLGATE_LISTEN",
        "TOLLGATE_LOG",
        "TOLLGATE_OTLP_ENDPOINT",
        "TOLLGATE_DATA_DIR",
        "TOLLGATE_DATABASE_URL",
        "TOLLGATE_REDIS_URL",
        "X",
        "A",
    ];
    let value = prop_oneof![
        proptest::sample::select(EDGE_VALUES).prop_map(str::to_owned),
        proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        Just(String::new()),
        Just("${X}".to_owned()),
    ];
    proptest::collection::btree_map(
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        value,
        0..6,
    )
    .prop_map(|mut env| {
        env.extend(example_env());
        env
    })
}

/// A configuration or a list of problems, each saying something.
fn check(text: &str, env: &BTreeMap<String, String>) -> Result<(), TestCaseError> {
    match Config::parse(text, env) {
        Ok(_) => {}
        Err(ConfigError::Invalid(problems)) => {
            prop_assert!(!problems.is_empty(), "an error without a problem");
            for problem in &problems {
                prop_assert!(!problem.message.is_empty(), "{problem:?}");
            }
        }
        Err(other) => prop_assert!(false, "parsing text cannot fail to read: {other}"),
    }
    Ok(())
}

#[test]
fn the_example_parses_as_written() {
    Config::parse(EXAMPLE, &example_env()).unwrap();
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_text_is_a_config_or_problems(
        text in proptest::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter),
        env in environment(),
    ) {
        check(&text, &env)?;
    }

    #[test]
    fn yaml_like_text_is_a_config_or_problems(text in yaml_like(), env in environment()) {
        check(&text, &env)?;
    }

    #[test]
    fn a_mutated_example_is_a_config_or_problems(
        edits in proptest::collection::vec(line_edit(), 1..8),
        env in environment(),
    ) {
        check(&apply(EXAMPLE, &edits), &env)?;
    }
}

proptest! {
    // Each case parses thousands of nesting levels, slow in a debug build: a longer run gives
    // this one an eighth of its cases.
    #![proptest_config(scaled_config(24, 8))]

    #[test]
    fn deep_nesting_and_alias_expansion_are_refused_or_read(
        depth in 1usize..2_000,
        open in proptest::sample::select(&["[", "{a: ", "- ", "a:\n "][..]),
        levels in 1usize..12,
        fan_out in 1usize..12,
    ) {
        let env = example_env();
        check(&format!("server: {}", open.repeat(depth)), &env)?;
        check(&format!("limits:\n  x: {}1{}", "[".repeat(depth), "]".repeat(depth)), &env)?;
        // Each level an anchored list of the one before, repeated: a "billion laughs".
        let mut bomb = String::from("a0: &a0 [x]\n");
        for level in 1..=levels {
            let items = vec![format!("*a{}", level - 1); fan_out].join(", ");
            bomb.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        check(&format!("server:\n  {}", bomb.replace('\n', "\n  ")), &env)?;
        check(&bomb, &env)?;
    }
}
