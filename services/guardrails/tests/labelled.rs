//! The detectors against a labelled set of realistic texts: per entity kind, how many of the
//! labelled values they find (recall) and how many of their findings are labelled
//! (precision), by exact kind and value.
//!
//! `cargo test -p tollgate-guardrails --test labelled -- --nocapture` prints the table.

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_guardrails::detect::{Detectors, EntityKind};

const SET: &str = include_str!("fixtures/pii_labelled.jsonl");

/// One labelled text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Example {
    text: String,
    entities: Vec<Labelled>,
    /// Kinds this text was written to resemble without containing.
    #[serde(default)]
    near_miss: Vec<EntityKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Labelled {
    kind: EntityKind,
    value: String,
}

#[derive(Default)]
struct Counts {
    true_positives: usize,
    false_positives: usize,
    false_negatives: usize,
}

impl Counts {
    fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn examples() -> Result<Vec<Example>, String> {
    SET.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|error| format!("line {}: {error}", i + 1))
        })
        .collect()
}

/// The set must keep its size, so that the scores below keep meaning something.
#[test]
fn the_set_covers_every_kind() {
    let examples = examples().unwrap();
    assert!(examples.len() >= 350, "{} texts", examples.len());
    let mut positives: BTreeMap<EntityKind, usize> = BTreeMap::new();
    let mut near_misses: BTreeMap<EntityKind, usize> = BTreeMap::new();
    for example in &examples {
        for entity in &example.entities {
            assert!(
                example.text.contains(&entity.value),
                "{:?} is not in {:?}",
                entity.value,
                example.text
            );
        }
        for kind in EntityKind::ALL {
            if example.entities.iter().any(|e| e.kind == kind) {
                *positives.entry(kind).or_default() += 1;
            }
        }
        for &kind in &example.near_miss {
            assert!(
                example.entities.iter().all(|e| e.kind != kind),
                "a near-miss for {} contains one: {:?}",
                kind.name(),
                example.text
            );
            *near_misses.entry(kind).or_default() += 1;
        }
    }
    for kind in EntityKind::ALL {
        let positive = positives.get(&kind).copied().unwrap_or(0);
        let near = near_misses.get(&kind).copied().unwrap_or(0);
        assert!(positive >= 25, "{}: {positive} texts with one", kind.name());
        assert!(near >= 15, "{}: {near} near-misses", kind.name());
    }
    let clean = examples
        .iter()
        .filter(|e| e.entities.is_empty() && e.near_miss.is_empty())
        .count();
    assert!(clean >= 20, "{clean} texts without any entity");
}

#[test]
fn precision_and_recall_per_kind() {
    let detectors = Detectors::new(&EntityKind::ALL);
    let mut counts: BTreeMap<EntityKind, Counts> = BTreeMap::new();
    let mut mistakes = Vec::new();
    for example in examples().unwrap() {
        let mut expected: Vec<(EntityKind, &str)> = example
            .entities
            .iter()
            .map(|e| (e.kind, e.value.as_str()))
            .collect();
        for found in detectors.find(&example.text) {
            let value = &example.text[found.start..found.end];
            let entry = counts.entry(found.kind).or_default();
            match expected.iter().position(|&e| e == (found.kind, value)) {
                Some(i) => {
                    expected.swap_remove(i);
                    entry.true_positives += 1;
                }
                None => {
                    entry.false_positives += 1;
                    mistakes.push(format!(
                        "FP {} {value:?} in {:?}",
                        found.kind.name(),
                        example.text
                    ));
                }
            }
        }
        for (kind, value) in expected {
            counts.entry(kind).or_default().false_negatives += 1;
            mistakes.push(format!(
                "FN {} {value:?} in {:?}",
                kind.name(),
                example.text
            ));
        }
    }

    println!(
        "{:<12} {:>4} {:>4} {:>4} {:>9} {:>7}",
        "kind", "TP", "FP", "FN", "precision", "recall"
    );
    for kind in EntityKind::ALL {
        let c = counts.entry(kind).or_default();
        println!(
            "{:<12} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
            kind.name(),
            c.true_positives,
            c.false_positives,
            c.false_negatives,
            c.precision(),
            c.recall()
        );
    }
    for mistake in &mistakes {
        println!("{mistake}");
    }

    for kind in EntityKind::ALL {
        let (min_precision, min_recall) = match kind {
            EntityKind::CreditCard | EntityKind::Iban | EntityKind::Email | EntityKind::Secret => {
                (0.95, 0.98)
            }
            EntityKind::Phone | EntityKind::Ssn | EntityKind::IpAddress => (0.9, 0.9),
        };
        let c = &counts[&kind];
        assert!(
            c.precision() >= min_precision,
            "{} precision {:.3} < {min_precision}",
            kind.name(),
            c.precision()
        );
        assert!(
            c.recall() >= min_recall,
            "{} recall {:.3} < {min_recall}",
            kind.name(),
            c.recall()
        );
    }
}
