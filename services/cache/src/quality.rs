//! Quality evaluation of the semantic tier: how often a paraphrase is served from the cache
//! (a hit) and how often a different question is served another question's answer (a false
//! hit), per similarity threshold, with and without the near-miss guard.
//!
//! The labelled pairs live in `data/quality_pairs.jsonl`; `examples/quality.rs` prints the
//! report for every embedder it is given. A false hit serves a wrong answer and a miss only
//! costs an upstream call, so the report puts the false-hit columns first.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::embedder::{EmbedError, Embedder, cosine};
use crate::guard::near_miss;

/// What a labelled pair tests: a paraphrase, or the way a near-miss differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairKind {
    /// The same question reworded; one answer serves both.
    Paraphrase,
    /// Differs in a number ("5 miles" vs "50 miles").
    Number,
    /// Differs in a unit ("10 kg" vs "10 lb").
    Unit,
    /// Differs in a named thing ("France" vs "Germany", `foo()` vs `bar()`).
    Entity,
    /// One is negated ("is X safe" vs "is X not safe").
    Negation,
    /// Opposite directions ("miles to km" vs "km to miles").
    Direction,
    /// Shares most words but asks something else ("how long to boil" vs "how to boil").
    Topic,
}

impl PairKind {
    /// Every kind, paraphrases first.
    pub const ALL: [PairKind; 7] = [
        PairKind::Paraphrase,
        PairKind::Number,
        PairKind::Unit,
        PairKind::Entity,
        PairKind::Negation,
        PairKind::Direction,
        PairKind::Topic,
    ];

    /// The kind as written in the data file.
    pub fn as_str(self) -> &'static str {
        match self {
            PairKind::Paraphrase => "paraphrase",
            PairKind::Number => "number",
            PairKind::Unit => "unit",
            PairKind::Entity => "entity",
            PairKind::Negation => "negation",
            PairKind::Direction => "direction",
            PairKind::Topic => "topic",
        }
    }
}

/// Two questions, and whether one's cached answer may serve the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// One question.
    pub a: String,
    /// The other question.
    pub b: String,
    /// True for paraphrases: a cache hit between them is correct.
    pub same: bool,
    /// What the pair tests; `paraphrase` exactly when `same`.
    pub kind: PairKind,
}

/// Why the labelled pairs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadPairsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line is not a JSON pair with exactly the fields `a`, `b`, `same` and `kind`.
    #[error("{path}:{line}: not a pair: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// Paraphrases must be `same: true` and every other kind `same: false`.
    #[error("{path}:{line}: kind {kind} does not go with same = {same}")]
    Inconsistent {
        path: PathBuf,
        line: usize,
        kind: &'static str,
        same: bool,
    },
}

/// Reads a JSON-lines file of pairs; blank lines are skipped.
pub fn load_pairs(path: &Path) -> Result<Vec<Pair>, LoadPairsError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadPairsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(line).map_err(|source| LoadPairsError::Parse {
            path: path.to_owned(),
            line: index + 1,
            source,
        })?;
        if pair.same != (pair.kind == PairKind::Paraphrase) {
            return Err(LoadPairsError::Inconsistent {
                path: path.to_owned(),
                line: index + 1,
                kind: pair.kind.as_str(),
                same: pair.same,
            });
        }
        pairs.push(pair);
    }
    Ok(pairs)
}

/// One pair as the cache saw it.
#[derive(Debug, Clone)]
pub struct ScoredPair {
    /// The labelled pair.
    pub pair: Pair,
    /// Cosine similarity of the two questions' vectors.
    pub similarity: f32,
    /// Why the guard refused the pair, if it did (see [`crate::guard::NearMiss::reason`]).
    pub refused_by_guard: Option<&'static str>,
}

impl ScoredPair {
    /// Whether the cache would serve one's answer for the other at this threshold.
    pub fn hit(&self, threshold: f32, with_guard: bool) -> bool {
        self.similarity >= threshold && !(with_guard && self.refused_by_guard.is_some())
    }
}

/// Hits and false hits at one threshold.
#[derive(Debug, Clone)]
pub struct ThresholdRow {
    /// The similarity at or above which the cache serves a cached answer.
    pub threshold: f32,
    /// Paraphrases served from the cache (similarity over the threshold, guard passed).
    pub paraphrase_hits: usize,
    /// Near-misses served another question's answer, with the guard.
    pub false_hits_guarded: usize,
    /// Near-misses served another question's answer, on similarity alone.
    pub false_hits_unguarded: usize,
    /// Per near-miss kind: (false hits with the guard, false hits without it).
    pub false_hits_by_kind: BTreeMap<PairKind, (usize, usize)>,
}

/// The evaluation of one embedder over a set of pairs.
#[derive(Debug, Clone)]
pub struct Report {
    /// The embedder's name.
    pub embedder: String,
    /// Number of paraphrase pairs.
    pub paraphrases: usize,
    /// Number of near-miss pairs (every kind but paraphrase).
    pub near_misses: usize,
    /// Number of pairs of each kind.
    pub pairs_by_kind: BTreeMap<PairKind, usize>,
    /// Paraphrases the guard refuses whatever their similarity.
    pub paraphrases_refused_by_guard: usize,
    /// One row per threshold, in the order given.
    pub rows: Vec<ThresholdRow>,
    /// Every pair with its similarity and the guard's verdict, in input order.
    pub scored: Vec<ScoredPair>,
}

/// Texts per `embed` call: small enough for a provider's batch limit.
const EMBED_BATCH: usize = 64;

/// Embeds both sides of every pair, runs the guard, and counts hits and false hits at each
/// threshold.
///
/// Returns an error if the embedder fails or returns the wrong number of vectors.
pub async fn evaluate(
    embedder: &dyn Embedder,
    pairs: &[Pair],
    thresholds: &[f32],
) -> Result<Report, EmbedError> {
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|pair| [pair.a.clone(), pair.b.clone()])
        .collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(EMBED_BATCH) {
        let embedded = embedder.embed(batch).await?;
        if embedded.len() != batch.len() {
            return Err(EmbedError::BadOutput {
                embedder: embedder.name().to_owned(),
                reason: format!("{} vectors for {} texts", embedded.len(), batch.len()),
            });
        }
        vectors.extend(embedded);
    }
    let scored: Vec<ScoredPair> = pairs
        .iter()
        .zip(vectors.chunks(2))
        .map(|(pair, both)| ScoredPair {
            pair: pair.clone(),
            similarity: match both {
                [a, b] => cosine(a, b),
                _ => 0.0,
            },
            refused_by_guard: near_miss(&pair.a, &pair.b).map(|miss| miss.reason()),
        })
        .collect();

    let mut pairs_by_kind = BTreeMap::new();
    for pair in pairs {
        *pairs_by_kind.entry(pair.kind).or_insert(0) += 1;
    }
    let rows = thresholds
        .iter()
        .map(|&threshold| threshold_row(&scored, threshold))
        .collect();
    Ok(Report {
        embedder: embedder.name().to_owned(),
        paraphrases: pairs.iter().filter(|pair| pair.same).count(),
        near_misses: pairs.iter().filter(|pair| !pair.same).count(),
        pairs_by_kind,
        paraphrases_refused_by_guard: scored
            .iter()
            .filter(|scored| scored.pair.same && scored.refused_by_guard.is_some())
            .count(),
        rows,
        scored,
    })
}

fn threshold_row(scored: &[ScoredPair], threshold: f32) -> ThresholdRow {
    let mut row = ThresholdRow {
        threshold,
        paraphrase_hits: 0,
        false_hits_guarded: 0,
        false_hits_unguarded: 0,
        false_hits_by_kind: BTreeMap::new(),
    };
    for pair in scored {
        let guarded = pair.hit(threshold, true);
        let unguarded = pair.hit(threshold, false);
        if pair.pair.same {
            row.paraphrase_hits += usize::from(guarded);
            continue;
        }
        row.false_hits_guarded += usize::from(guarded);
        row.false_hits_unguarded += usize::from(unguarded);
        let by_kind = row
            .false_hits_by_kind
            .entry(pair.pair.kind)
            .or_insert((0, 0));
        by_kind.0 += usize::from(guarded);
        by_kind.1 += usize::from(unguarded);
    }
    row
}

impl Report {
    /// The report as a Markdown table, one row per threshold, false hits first.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_markdown(&mut out);
        out
    }

    fn write_markdown(&self, out: &mut String) -> fmt::Result {
        writeln!(
            out,
            "### {}: {} paraphrases, {} near-misses",
            self.embedder, self.paraphrases, self.near_misses
        )?;
        writeln!(out)?;
        let near_miss_kinds: Vec<PairKind> = PairKind::ALL
            .into_iter()
            .filter(|kind| *kind != PairKind::Paraphrase)
            .collect();
        write!(
            out,
            "| threshold | false hits, guard | false hits, no guard | paraphrase hits |"
        )?;
        for kind in &near_miss_kinds {
            let count = self.pairs_by_kind.get(kind).copied().unwrap_or(0);
            write!(out, " {} ({count}) |", kind.as_str())?;
        }
        writeln!(out)?;
        write!(out, "|---:|---:|---:|---:|")?;
        for _ in &near_miss_kinds {
            write!(out, "---:|")?;
        }
        writeln!(out)?;
        for row in &self.rows {
            write!(
                out,
                "| {:.2} | {} | {} | {} |",
                row.threshold,
                rate(row.false_hits_guarded, self.near_misses),
                rate(row.false_hits_unguarded, self.near_misses),
                rate(row.paraphrase_hits, self.paraphrases),
            )?;
            for kind in &near_miss_kinds {
                let (guarded, unguarded) =
                    row.false_hits_by_kind.get(kind).copied().unwrap_or((0, 0));
                write!(out, " {guarded} / {unguarded} |")?;
            }
            writeln!(out)?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "Per-kind cells: false hits with the guard / without it. The guard refuses {} of {} \
             paraphrases outright.",
            self.paraphrases_refused_by_guard, self.paraphrases
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.markdown())
    }
}

/// "12.5% (3/24)".
fn rate(count: usize, total: usize) -> String {
    if total == 0 {
        return "n/a".to_owned();
    }
    let percent = count as f64 * 100.0 / total as f64;
    format!("{percent:.1}% ({count}/{total})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedder::HashedEmbedder;

    fn data_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/quality_pairs.jsonl")
    }

    #[test]
    fn the_data_file_is_complete() {
        let pairs = load_pairs(&data_file()).unwrap();
        assert!(pairs.len() >= 300, "only {} pairs", pairs.len());
        assert!(pairs.iter().any(|pair| pair.same));
        assert!(pairs.iter().any(|pair| !pair.same));
        for kind in PairKind::ALL {
            assert!(
                pairs.iter().any(|pair| pair.kind == kind),
                "no {} pairs",
                kind.as_str()
            );
        }
    }

    #[tokio::test]
    async fn built_in_embedder_with_guard_serves_no_wrong_answer_at_0_95() {
        let pairs = load_pairs(&data_file()).unwrap();
        let report = evaluate(&HashedEmbedder::new(), &pairs, &[0.95])
            .await
            .unwrap();
        let false_hits: Vec<String> = report
            .scored
            .iter()
            .filter(|scored| !scored.pair.same && scored.hit(0.95, true))
            .map(|scored| format!("{:?} / {:?}", scored.pair.a, scored.pair.b))
            .collect();
        assert!(false_hits.is_empty(), "false hits: {false_hits:#?}");
        assert!(report.rows[0].paraphrase_hits > 0);
    }

    #[tokio::test]
    async fn evaluate_counts_hits_and_false_hits() {
        let pair = |a: &str, b: &str, kind: PairKind| Pair {
            a: a.to_owned(),
            b: b.to_owned(),
            same: kind == PairKind::Paraphrase,
            kind,
        };
        let pairs = [
            pair(
                "capital of France?",
                "What's the capital of France?",
                PairKind::Paraphrase,
            ),
            pair("5 miles to km", "50 miles to km", PairKind::Number),
            pair("how to bake bread", "how to slice a melon", PairKind::Topic),
        ];
        let report = evaluate(&HashedEmbedder::new(), &pairs, &[0.0, 1.1])
            .await
            .unwrap();
        assert_eq!((report.paraphrases, report.near_misses), (1, 2));
        let everything = &report.rows[0];
        assert_eq!(everything.paraphrase_hits, 1);
        // At threshold 0 only the guard stops a false hit: it refuses the number pair.
        assert_eq!(everything.false_hits_unguarded, 2);
        assert_eq!(everything.false_hits_guarded, 1);
        assert_eq!(everything.false_hits_by_kind[&PairKind::Number], (0, 1));
        let nothing = &report.rows[1];
        assert_eq!(nothing.paraphrase_hits + nothing.false_hits_unguarded, 0);
        let table = report.markdown();
        assert!(table.contains("| threshold | false hits, guard | false hits, no guard |"));
        assert!(table.contains("| 0.00 | 50.0% (1/2) | 100.0% (2/2) | 100.0% (1/1) |"));
    }

    #[test]
    fn load_pairs_reports_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("tollgate-quality-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pairs.jsonl");
        std::fs::write(
            &path,
            "{\"a\":\"x\",\"b\":\"y\",\"same\":true,\"kind\":\"paraphrase\"}\n\n\
             {\"a\":\"x\",\"b\":\"y\",\"same\":true,\"kind\":\"number\"}\n",
        )
        .unwrap();
        let error = load_pairs(&path).unwrap_err();
        assert!(
            matches!(error, LoadPairsError::Inconsistent { line: 3, .. }),
            "{error}"
        );
        std::fs::write(&path, "{\"a\":\"x\"}\n").unwrap();
        assert!(matches!(
            load_pairs(&path),
            Err(LoadPairsError::Parse { line: 1, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
