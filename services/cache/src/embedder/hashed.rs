//! The built-in embedder: feature hashing of normalised words, needing no model files.
//!
//! A question becomes a bag of weighted features, each hashed to one coordinate of a
//! fixed-size vector with a hashed sign (the "hashing trick", Weinberger et al. 2009,
//! <https://arxiv.org/abs/0902.2206>):
//!
//! 1. normalise: lower-case, split on anything that is not a letter or digit, undo common
//!    contractions ("what's", "don't"), map spellings of one thing to one word ("kilometres"
//!    and "km", "$" and "dollars", "twelve" and "12", "was" and "did" to a past-tense
//!    marker), stem plural, -ing and -ed forms lightly, and drop a short list of English
//!    stop, politeness and filler words;
//! 2. features: each remaining word (the main signal; negations count double), each pair
//!    of neighbouring words (regardless of order, so "France's capital" matches "capital of
//!    France"), and the character trigrams of each word (so a typo costs a little
//!    similarity, not a whole word);
//! 3. L2-normalise.
//!
//! Rewordings that keep the same content words score above 0.95; one content word more or
//! less in a short question costs about 0.1 (sqrt(n / (n + 1))); questions about something
//! else share few features and score low. It knows nothing about synonyms: "price" and "cost" are
//! as different to it as "price" and "weather". Numbers, negation and word order are weak
//! signals here; the near-miss guard (`crate::guard`) is what keeps "5 miles" from being
//! served the answer for "50 miles".
//!
//! Vectors are persisted, so every step is deterministic across processes, platforms and
//! builds: the hash is FNV-1a 64 with a fixed finaliser, written out below, never `std`'s
//! randomly seeded hasher. Changing any step changes the vectors: bump [`NAME`] when you do,
//! so old and new vectors are never compared.

use super::{EmbedError, Embedder};
use crate::guard::NEGATION_WITHOUT_APOSTROPHE;

/// The stable name stored with every vector; bump the version when the features change.
const NAME: &str = "tollgate-hashed-v1-512";

/// Vector length. A power of two, so the coordinate is the hash's low bits.
const DIMENSIONS: usize = 512;

/// Weight of one content word.
const WORD_WEIGHT: f32 = 1.0;
/// Weight of a negation word: "is X safe" and "is X not safe" differ in one short word that
/// reverses the answer, so that word counts for more than others.
const NEGATION_WEIGHT: f32 = 2.0;
/// Weight of one pair of neighbouring content words.
const PAIR_WEIGHT: f32 = 0.3;
/// Total weight of one word's character trigrams, shared among them.
const TRIGRAMS_WEIGHT: f32 = 0.5;

/// Words dropped before hashing: function words, question words whose presence does not
/// change the answer ("what", "how", "which"), politeness ("please", "can you tell me"),
/// filler that rewordings add or drop ("convert", "meaning", "ways", "usually"), and "1"
/// ("one ounce", "an ounce" and "1 oz" ask the same; "one" is mapped to "1" first).
///
/// Kept on purpose: "who", "when", "where" and "why" (they change the question), negations
/// ("not", "no", "never", "without"), the past-tense marker (see [`SAME_MEANING`]), and the
/// word after "how" in "how long", "how far" and the like, which is a content word of its own.
const STOP_WORDS: &[&str] = &[
    "1",
    "a",
    "about",
    "actually",
    "advance",
    "am",
    "an",
    "and",
    "any",
    "anyone",
    "are",
    "as",
    "at",
    "be",
    "been",
    "being",
    "between",
    "by",
    "can",
    "conversion",
    "convert",
    "converting",
    "could",
    "define",
    "definition",
    "degree",
    "degrees",
    "do",
    "does",
    "doing",
    "explain",
    "explained",
    "for",
    "from",
    "generally",
    "get",
    "give",
    "guys",
    "hello",
    "help",
    "hey",
    "hi",
    "how",
    "i",
    "id",
    "if",
    "im",
    "in",
    "into",
    "is",
    "it",
    "its",
    "just",
    "kindly",
    "know",
    "let",
    "like",
    "many",
    "may",
    "me",
    "mean",
    "meaning",
    "might",
    "much",
    "must",
    "my",
    "normally",
    "of",
    "ok",
    "okay",
    "on",
    "or",
    "our",
    "please",
    "pls",
    "plz",
    "possible",
    "question",
    "quick",
    "really",
    "shall",
    "should",
    "so",
    "some",
    "someone",
    "tell",
    "thank",
    "thanks",
    "that",
    "the",
    "there",
    "these",
    "this",
    "those",
    "tip",
    "tips",
    "to",
    "typically",
    "us",
    "usually",
    "versus",
    "vs",
    "way",
    "ways",
    "we",
    "what",
    "which",
    "will",
    "with",
    "wondering",
    "would",
    "you",
    "your",
];

/// Words that reverse what follows; weighted by [`NEGATION_WEIGHT`].
const NEGATIONS: &[&str] = &["cannot", "never", "no", "none", "not", "nothing", "without"];

/// Spellings that mean the same thing, mapped to one: units and their symbols, number words,
/// and common abbreviations. Applied before stop words and stemming.
const SAME_MEANING: &[(&str, &str)] = &[
    // Units.
    ("kilometer", "km"),
    ("kilometers", "km"),
    ("kilometre", "km"),
    ("kilometres", "km"),
    ("kms", "km"),
    ("mi", "mile"),
    ("miles", "mile"),
    ("centimeter", "cm"),
    ("centimeters", "cm"),
    ("centimetre", "cm"),
    ("centimetres", "cm"),
    ("millimeter", "mm"),
    ("millimeters", "mm"),
    ("millimetre", "mm"),
    ("millimetres", "mm"),
    ("meters", "meter"),
    ("metre", "meter"),
    ("metres", "meter"),
    ("foot", "ft"),
    ("feet", "ft"),
    ("inches", "inch"),
    ("ounce", "oz"),
    ("ounces", "oz"),
    ("gram", "g"),
    ("grams", "g"),
    ("kilogram", "kg"),
    ("kilograms", "kg"),
    ("kilo", "kg"),
    ("kilos", "kg"),
    ("kgs", "kg"),
    ("pound", "lb"),
    ("pounds", "lb"),
    ("lbs", "lb"),
    ("milliliter", "ml"),
    ("milliliters", "ml"),
    ("millilitre", "ml"),
    ("millilitres", "ml"),
    ("liter", "l"),
    ("liters", "l"),
    ("litre", "l"),
    ("litres", "l"),
    ("tablespoon", "tbsp"),
    ("tablespoons", "tbsp"),
    ("teaspoon", "tsp"),
    ("teaspoons", "tsp"),
    ("c", "celsius"),
    ("centigrade", "celsius"),
    ("f", "fahrenheit"),
    ("euros", "euro"),
    ("eur", "euro"),
    ("dollars", "dollar"),
    ("usd", "dollar"),
    ("percentage", "percent"),
    ("calories", "kcal"),
    ("calorie", "kcal"),
    ("hrs", "hour"),
    ("hr", "hour"),
    ("mins", "minute"),
    ("min", "minute"),
    ("secs", "second"),
    ("sec", "second"),
    // Past-tense auxiliaries, as one marker: "who is the CEO" and "who was the CEO" have
    // different answers, "when did it happen" and "when was it" the same one.
    ("was", "~past"),
    ("were", "~past"),
    ("did", "~past"),
    ("had", "~past"),
    ("got", "~past"),
    // Number words, as digits.
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("dozen", "12"),
    ("half", "0.5"),
    ("twenty", "20"),
    ("hundred", "100"),
    ("thousand", "1000"),
    // Abbreviations.
    ("acct", "account"),
    ("addr", "address"),
    ("app", "application"),
    ("config", "configuration"),
    ("dict", "dictionary"),
    ("docs", "documentation"),
    ("fridge", "refrigerator"),
    ("info", "information"),
    ("msg", "message"),
    ("pic", "picture"),
    ("pics", "picture"),
    ("pw", "password"),
    ("pwd", "password"),
    ("repo", "repository"),
];

/// Symbols that stand for a word; replaced before splitting, which drops punctuation.
const SYMBOL_WORDS: &[(char, &str)] = &[
    ('$', " dollar "),
    ('\u{20ac}', " euro "),
    ('\u{a3}', " gbp "),
    ('%', " percent "),
    ('\u{b0}', " "),
];

/// The built-in embedder: hashed word, word-pair and character-trigram features.
#[derive(Debug, Clone, Default)]
pub struct HashedEmbedder;

impl HashedEmbedder {
    /// A new built-in embedder; it holds no state.
    pub fn new() -> Self {
        Self
    }

    /// The L2-normalised vector of one text.
    pub fn embed_text(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0.0_f32; DIMENSIONS];
        let words = content_words(text);
        if words.is_empty() {
            // Empty or punctuation-only text: a fixed unit vector, so it still is normalised
            // and matches only other empty texts.
            add_feature(&mut vector, b"empty", b"", 1.0);
            return vector;
        }
        for word in &words {
            let weight = if NEGATIONS.contains(&word.as_str()) {
                NEGATION_WEIGHT
            } else {
                WORD_WEIGHT
            };
            add_feature(&mut vector, b"w", word.as_bytes(), weight);
            add_trigrams(&mut vector, word);
        }
        for pair in words.windows(2) {
            // Order-free, so reordered rewordings keep their pairs.
            let (first, second) = if pair[0] <= pair[1] {
                (&pair[0], &pair[1])
            } else {
                (&pair[1], &pair[0])
            };
            let joined = format!("{first} {second}");
            add_feature(&mut vector, b"p", joined.as_bytes(), PAIR_WEIGHT);
        }
        normalise(&mut vector);
        vector
    }
}

#[async_trait::async_trait]
impl Embedder for HashedEmbedder {
    fn name(&self) -> &str {
        NAME
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|text| self.embed_text(text)).collect())
    }
}

/// The stemmed content words of a text, in order; all of its words when every one of them
/// is a stop word (so "What is it?" and "Who is it?" still differ).
fn content_words(text: &str) -> Vec<String> {
    let words = normalised_words(text);
    let content: Vec<String> = words
        .iter()
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .map(|word| stem(word))
        .collect();
    if content.is_empty() {
        words.iter().map(|word| stem(word)).collect()
    } else {
        content
    }
}

/// Lower-cased words of a text with contractions undone; digits and letters are split
/// apart, so "5km" and "5 km" give the same words.
fn normalised_words(text: &str) -> Vec<String> {
    let mut lowered = text
        .to_lowercase()
        .replace(['\u{2019}', '\u{2018}', '`'], "'");
    for (symbol, word) in SYMBOL_WORDS {
        if lowered.contains(*symbol) {
            lowered = lowered.replace(*symbol, word);
        }
    }
    let mut words = Vec::new();
    for raw in split_words(&lowered) {
        let raw = raw.trim_matches('\'');
        if raw.is_empty() {
            continue;
        }
        for piece in split_digits_from_letters(raw) {
            push_uncontracted(&mut words, &piece);
        }
    }
    for word in &mut words {
        if let Some((_, same)) = SAME_MEANING.iter().find(|(spelling, _)| spelling == word) {
            *word = (*same).to_owned();
        }
    }
    words
}

/// Splits text on everything but letters, digits and apostrophes, keeping numbers whole:
/// "1,000.50" stays one word ("1000.50"), a full stop after a digit ends it.
fn split_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (index, &c) in chars.iter().enumerate() {
        let between_digits = matches!(c, '.' | ',')
            && index > 0
            && chars[index - 1].is_ascii_digit()
            && chars.get(index + 1).is_some_and(char::is_ascii_digit);
        if c.is_alphanumeric() || c == '\'' || between_digits {
            // Thousands separators are dropped: "1,000" is "1000".
            if c != ',' {
                current.push(c);
            }
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Splits "5km" into "5" and "km", and "mp3" into "mp" and "3"; "3.50" becomes "3.5".
fn split_digits_from_letters(raw: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_is_digit = None;
    for c in raw.chars() {
        let is_digit = c.is_ascii_digit() || c == '.';
        if current_is_digit.is_some_and(|previous| previous != is_digit) && c != '\'' {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
        if c != '\'' {
            current_is_digit = Some(is_digit);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    for piece in &mut pieces {
        if piece.contains('.') && piece.starts_with(|c: char| c.is_ascii_digit()) {
            *piece = piece.trim_end_matches('0').trim_end_matches('.').to_owned();
        }
    }
    pieces
}

/// Pushes a word with its contraction undone: "don't" → "do not", "what's" → "what",
/// "france's" → "france"; apostrophe-less forms people type ("dont", "cant") too.
fn push_uncontracted(words: &mut Vec<String>, word: &str) {
    if let Some(base) = word.strip_suffix("n't") {
        let base = match base {
            "ca" => "can",
            "wo" => "will",
            "sha" => "shall",
            other => other,
        };
        words.push(base.to_owned());
        words.push("not".to_owned());
        return;
    }
    if let Some(base) = NEGATION_WITHOUT_APOSTROPHE
        .iter()
        .find_map(|(typed, base)| (*typed == word).then_some(*base))
    {
        words.push(base.to_owned());
        words.push("not".to_owned());
        return;
    }
    for suffix in ["'s", "'re", "'ve", "'ll", "'d", "'m", "'"] {
        if let Some(base) = word.strip_suffix(suffix) {
            if !base.is_empty() {
                words.push(base.replace('\'', ""));
            }
            return;
        }
    }
    words.push(word.replace('\'', ""));
}

/// A light stemmer: strips plural, -ing, -ed, -ly, -able and -ation endings and a final "e",
/// so "bake", "baking", "baked" and "bakes" share one stem. Stems need not be words, only
/// agree.
fn stem(word: &str) -> String {
    // Digits and very short words are left alone: "is", "gas" and "bus" are not plurals.
    if word.len() <= 3 || word.chars().any(|c| c.is_ascii_digit()) {
        return word.to_owned();
    }
    let mut stem = word.to_owned();
    if let Some(base) = stem.strip_suffix("ies") {
        stem = format!("{base}y");
    } else if stem.ends_with("sses") {
        stem.truncate(stem.len() - 2);
    } else if stem.ends_with('s')
        && !stem.ends_with("ss")
        && !stem.ends_with("us")
        && !stem.ends_with("is")
    {
        stem.pop();
    }
    // "naturally" → "natural", "safely" → "safe", "automatically" → "automatic".
    if stem.len() > 5 && stem.ends_with("ically") {
        stem.truncate(stem.len() - 4);
    } else if stem.len() > 5 && ["ally", "ully", "ely"].iter().any(|e| stem.ends_with(e)) {
        stem.truncate(stem.len() - 2);
    }
    // "washable" → "wash", "dehydration" → "dehydrat" (as "dehydrate").
    if stem.len() > 7 && stem.ends_with("able") {
        stem.truncate(stem.len() - 4);
    } else if stem.len() > 7 && stem.ends_with("ation") {
        stem.truncate(stem.len() - 3);
    }
    let mut stripped_verb_ending = false;
    if let Some(base) = stem.strip_suffix("ied").filter(|base| base.len() > 2) {
        // "reunified" → "reunify", "fried" → "fry".
        stem = format!("{base}y");
    } else if stem.len() > 5 && stem.ends_with("ing") {
        stem.truncate(stem.len() - 3);
        stripped_verb_ending = true;
    } else if stem.len() > 4 && stem.ends_with("ed") && !stem.ends_with("eed") {
        stem.truncate(stem.len() - 2);
        stripped_verb_ending = true;
    }
    if stripped_verb_ending {
        // "stopped" → "stopp" → "stop", "running" → "runn" → "run".
        let bytes = stem.as_bytes();
        let n = bytes.len();
        if n >= 2 && bytes[n - 1] == bytes[n - 2] && !b"aeiouslzd".contains(&bytes[n - 1]) {
            stem.pop();
        }
    }
    if stem.len() > 3 && stem.ends_with('e') {
        stem.pop();
    }
    stem
}

/// Adds the character trigrams of a word, with boundary marks, sharing one weight among them
/// so long words do not outweigh short ones.
fn add_trigrams(vector: &mut [f32], word: &str) {
    let marked: Vec<char> = format!("<{word}>").chars().collect();
    let count = marked.len().saturating_sub(2);
    if count == 0 {
        return;
    }
    let weight = TRIGRAMS_WEIGHT / (count as f32).sqrt();
    let mut buffer = [0_u8; 12];
    for window in marked.windows(3) {
        let mut length = 0;
        for c in window {
            length += c.encode_utf8(&mut buffer[length..]).len();
        }
        add_feature(vector, b"c", &buffer[..length], weight);
    }
}

/// Adds `weight` at the feature's hashed coordinate with its hashed sign; `kind` keeps word,
/// pair and trigram features apart ("the" the word is not "the" the trigram).
fn add_feature(vector: &mut [f32], kind: &[u8], feature: &[u8], weight: f32) {
    let hash = stable_hash(&[kind, b":", feature]);
    // DIMENSIONS is a power of two: the low bits pick the coordinate, the top bit the sign.
    let index = (hash % DIMENSIONS as u64) as usize;
    let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
    vector[index] += sign * weight;
}

/// Scales a vector to unit length (a zero vector stays zero).
fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in vector.iter_mut() {
            *x /= norm;
        }
    }
}

/// FNV-1a 64 of the concatenated parts, then the MurmurHash3 64-bit finaliser so that the
/// low bits (the coordinate) and the top bit (the sign) are well mixed. Both are fixed by
/// their specifications, so the result never changes between builds or machines.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash = fnv1a64(parts);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash
}

/// FNV-1a 64 (<http://www.isthe.com/chongo/tech/comp/fnv/>) of the concatenated parts.
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedder::cosine;

    fn similarity(a: &str, b: &str) -> f32 {
        let embedder = HashedEmbedder::new();
        cosine(&embedder.embed_text(a), &embedder.embed_text(b))
    }

    #[test]
    fn same_text_gives_identical_vectors() {
        let embedder = HashedEmbedder::new();
        let text = "How do I reset my password?";
        assert_eq!(embedder.embed_text(text), embedder.embed_text(text));
    }

    #[test]
    fn vectors_are_normalised_and_sized() {
        let embedder = HashedEmbedder::new();
        for text in ["What's the capital of France?", "", "?!", "the of a", "x"] {
            let vector = embedder.embed_text(text);
            assert_eq!(vector.len(), embedder.dimensions());
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{text:?} has norm {norm}");
        }
    }

    #[test]
    fn paraphrases_score_above_unrelated_questions() {
        let paraphrase = similarity("What's the capital of France?", "capital of France?");
        let reordered = similarity("What's the capital of France?", "Tell me France's capital");
        let unrelated = similarity("What's the capital of France?", "capital of Germany?");
        assert!(paraphrase >= 0.9, "paraphrase scored {paraphrase}");
        assert!(reordered >= 0.9, "reordered paraphrase scored {reordered}");
        assert!(unrelated < 0.7, "unrelated question scored {unrelated}");
        assert!(paraphrase > unrelated && reordered > unrelated);
    }

    #[test]
    fn a_typo_costs_little() {
        let typo = similarity("How do I reset my password", "how do i reset my pasword");
        let other = similarity("How do I reset my password", "How do I reset my router");
        assert!(typo > other, "typo {typo} vs other question {other}");
    }

    #[test]
    fn contractions_and_inflections_agree() {
        assert_eq!(normalised_words("Don't"), ["do", "not"]);
        assert_eq!(normalised_words("cant"), ["can", "not"]);
        assert_eq!(normalised_words("France's"), ["france"]);
        assert_eq!(normalised_words("5km"), ["5", "km"]);
        assert_eq!(stem("baking"), stem("bake"));
        assert_eq!(stem("baked"), stem("bakes"));
        assert_eq!(stem("stopped"), stem("stop"));
        assert_eq!(stem("cities"), "city");
        assert_eq!(stem("bus"), "bus");
    }

    #[tokio::test]
    async fn embed_returns_one_vector_per_text_in_order() {
        let embedder = HashedEmbedder::new();
        let texts = vec!["first question".to_owned(), "second one".to_owned()];
        let vectors = embedder.embed(&texts).await.unwrap();
        assert_eq!(vectors.len(), 2);
        assert_eq!(vectors[0], embedder.embed_text("first question"));
        assert_eq!(vectors[1], embedder.embed_text("second one"));
    }

    #[test]
    fn hash_is_standard_fnv1a64() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
    }

    #[test]
    fn hash_never_changes_between_builds() {
        // Computed independently (Python) from the FNV-1a 64 and MurmurHash3 fmix64 specs.
        assert_eq!(
            stable_hash(&[b"w", b":", b"capital"]),
            0x65da_2fe6_a544_1f0b
        );
    }

    #[test]
    fn vectors_never_change_between_builds() {
        // Persisted vectors depend on this exact output: if this fails, the features or the
        // hash changed, and NAME must be bumped so old vectors are not compared with new ones.
        let vector = HashedEmbedder::new().embed_text("What's the capital of France?");
        let nonzero: Vec<(usize, i32)> = vector
            .iter()
            .enumerate()
            .filter(|(_, x)| x.abs() > 1e-6)
            .map(|(i, x)| (i, (x * 10_000.0).round() as i32))
            .collect();
        assert_eq!(nonzero, EXPECTED_FRANCE);
    }

    /// (coordinate, value × 10⁴) of every non-zero coordinate; 267 is the word "capital".
    const EXPECTED_FRANCE: &[(usize, i32)] = &[
        (0, 1174),
        (20, 1174),
        (85, -1389),
        (180, 1389),
        (193, 1389),
        (229, -1174),
        (267, 6214),
        (292, -1174),
        (354, -1174),
        (408, 1864),
        (415, -6214),
        (436, -1174),
        (456, 1389),
        (471, 1174),
        (487, -1389),
    ];
}
