//! Measures how well the semantic cache tells paraphrases from near-misses, per embedder and
//! similarity threshold, and prints a Markdown table for each embedder.
//!
//! ```text
//! cargo run -p tollgate-cache --example quality --release -- [--pairs FILE] [--details]
//! ```
//!
//! `--pairs` defaults to `data/quality_pairs.jsonl`; `--details` also lists the near-misses
//! that score over the lowest threshold and the paraphrases under the highest one.
//!
//! To compare another embedder (a local sentence model, a provider's embeddings), construct
//! it in `embedders()`; every embedder runs over the same pairs and thresholds.

use std::path::PathBuf;

use tollgate_cache::embedder::{Embedder, HashedEmbedder};
use tollgate_cache::quality::{Report, evaluate, load_pairs};

/// The similarity thresholds compared, from lenient to strict.
const THRESHOLDS: [f32; 7] = [0.85, 0.87, 0.89, 0.91, 0.93, 0.95, 0.97];

/// The embedders to evaluate, in the order their tables are printed.
fn embedders() -> Vec<Box<dyn Embedder>> {
    vec![Box::new(HashedEmbedder::new())]
}

/// Command-line options.
struct Options {
    pairs: PathBuf,
    details: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        pairs: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/quality_pairs.jsonl"),
        details: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pairs" => {
                let path = args.next().ok_or("--pairs needs a file")?;
                options.pairs = PathBuf::from(path);
            }
            "--details" => options.details = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: quality [--pairs FILE] [--details]"
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
    for embedder in embedders() {
        let report = evaluate(embedder.as_ref(), &pairs, &THRESHOLDS).await?;
        println!("{}", report.markdown());
        if options.details {
            println!("{}", details(&report));
        }
    }
    Ok(())
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
