//! The near-miss guard: refuses to share an answer between two questions that look alike but
//! differ in a detail that changes the answer.
//!
//! Embedding similarity sees "How far is 5 miles in km?" and "How far is 50 miles in km?" as
//! nearly the same text. The guard compares the decisive features of the two questions
//! directly and names the first that disagrees:
//!
//! - numbers, with number words read as numbers ("five" = "5", "a dozen" = "12"); "1" is
//!   ignored, as "one", "a" and "1" are interchangeable ("grams in an ounce", "in 1 oz");
//! - units ("10 kg" vs "10 lb"), including symbols ("$", "%", "°C"); words that are units
//!   only sometimes ("day", "second", "m") count only after a number ("3 days");
//! - negation ("is X safe" vs "is X not safe", "never", "without", "n't", "sugar-free");
//! - named entities: words capitalised mid-sentence, all-capital words, quoted text and code
//!   identifiers (`snake_case`, `camelCase`, `foo()`, `a.b`, `a::b`). An entity of one question
//!   must appear as a word in the other, in any case and with or without "'s" or a plural "s",
//!   so "France" at the start of one question still matches "France's" inside the other.
//!   When most words are capitalised ("How To Reset My Password"), capitals mean nothing;
//! - direction: the same two things in opposite order around "to", "into", "from … to",
//!   "per", "than" or, between units, "in" ("miles to km" vs "km to miles", "5 miles in km"
//!   vs "5 km in miles"; "how many grams in an ounce" and "feet in a mile" convert the right
//!   unit into the left one).
//!
//! It errs towards refusing: a refused paraphrase costs one upstream call, a wrong answer
//! served from the cache costs the user's trust. What it cannot see (synonyms, antonyms such
//! as "lock" vs "unlock", a different question about the same words) is left to the
//! similarity threshold.

use std::collections::BTreeSet;
use std::fmt;

/// Why two similar-looking questions must not share an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NearMiss {
    /// They mention different numbers ("5 miles" vs "50 miles").
    Numbers {
        question: Vec<String>,
        candidate: Vec<String>,
    },
    /// They mention different units ("10 kg" vs "10 lb").
    Units {
        question: Vec<String>,
        candidate: Vec<String>,
    },
    /// One is negated and the other is not ("is X safe" vs "is X not safe").
    Negation { question: usize, candidate: usize },
    /// A named entity of one is absent from the other ("France" vs "Germany").
    Entity { entity: String },
    /// The same two things in opposite directions ("miles to km" vs "km to miles").
    Direction { from: String, to: String },
}

impl NearMiss {
    /// A short, fixed label for metrics and logs ("numbers", "units", …).
    pub fn reason(&self) -> &'static str {
        match self {
            NearMiss::Numbers { .. } => "numbers",
            NearMiss::Units { .. } => "units",
            NearMiss::Negation { .. } => "negation",
            NearMiss::Entity { .. } => "entity",
            NearMiss::Direction { .. } => "direction",
        }
    }
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NearMiss::Numbers {
                question,
                candidate,
            } => write!(
                f,
                "different numbers: [{}] vs [{}]",
                question.join(", "),
                candidate.join(", ")
            ),
            NearMiss::Units {
                question,
                candidate,
            } => write!(
                f,
                "different units: [{}] vs [{}]",
                question.join(", "),
                candidate.join(", ")
            ),
            NearMiss::Negation {
                question,
                candidate,
            } => write!(f, "different negation: {question} vs {candidate} negations"),
            NearMiss::Entity { entity } => {
                write!(f, "entity {entity:?} appears in only one question")
            }
            NearMiss::Direction { from, to } => {
                write!(f, "opposite directions: {from} → {to} vs {to} → {from}")
            }
        }
    }
}

/// Why `question` must not be answered with `candidate`'s cached answer, or `None` when their
/// numbers, units, negation, entities and directions agree.
pub fn near_miss(question: &str, candidate: &str) -> Option<NearMiss> {
    Features::of(question).compare(&Features::of(candidate))
}

/// The decisive features of one question.
#[derive(Debug, Default)]
struct Features {
    /// Sorted; "1" is left out because "one", "a" and "1" are interchangeable in questions
    /// ("grams in an ounce", "grams in 1 ounce") and "one" is often a pronoun.
    numbers: Vec<String>,
    units: BTreeSet<&'static str>,
    negations: usize,
    entities: BTreeSet<String>,
    /// Every word and identifier in canonical form, to look the other question's entities up.
    words: BTreeSet<String>,
    /// Ordered (from, to) pairs.
    directions: BTreeSet<(String, String)>,
}

impl Features {
    fn of(text: &str) -> Features {
        let tokens = tokenize(text);
        let units: Vec<Option<&'static str>> =
            (0..tokens.len()).map(|i| unit_at(&tokens, i)).collect();
        let mut features = Features {
            numbers: numbers(&tokens),
            units: units.iter().flatten().copied().collect(),
            ..Features::default()
        };
        let title_case = is_title_case(&tokens);
        for (token, unit) in tokens.iter().zip(&units) {
            if token.kind == Kind::Word && NEGATIONS.contains(&token.lower.as_str()) {
                features.negations += 1;
            }
            // Units are compared on their own; "EUR" is not a name.
            let is_entity = unit.is_none()
                && match token.kind {
                    Kind::Identifier => true,
                    Kind::Word => {
                        token.quoted
                            || (!title_case
                                && token.capitalised
                                && !GUARD_STOP_WORDS.contains(&token.lower.as_str()))
                    }
                    Kind::Number => false,
                };
            if is_entity {
                features.entities.insert(token.canonical.clone());
            }
            features.words.insert(token.canonical.clone());
            features.words.insert(token.lower.clone());
            if token.kind == Kind::Identifier {
                for part in token.lower.split(|c: char| !c.is_alphanumeric()) {
                    if !part.is_empty() {
                        features.words.insert(canonical_word(part));
                    }
                }
            }
        }
        features.directions = directions(&tokens, &units);
        features
    }

    fn compare(&self, other: &Features) -> Option<NearMiss> {
        if self.numbers != other.numbers {
            return Some(NearMiss::Numbers {
                question: self.numbers.clone(),
                candidate: other.numbers.clone(),
            });
        }
        if self.units != other.units {
            return Some(NearMiss::Units {
                question: self.units.iter().map(|unit| unit.to_string()).collect(),
                candidate: other.units.iter().map(|unit| unit.to_string()).collect(),
            });
        }
        if self.negations != other.negations {
            return Some(NearMiss::Negation {
                question: self.negations,
                candidate: other.negations,
            });
        }
        let missing_entity = self
            .entities
            .iter()
            .find(|entity| !other.words.contains(*entity))
            .or_else(|| {
                other
                    .entities
                    .iter()
                    .find(|entity| !self.words.contains(*entity))
            });
        if let Some(entity) = missing_entity {
            return Some(NearMiss::Entity {
                entity: entity.clone(),
            });
        }
        for (from, to) in &self.directions {
            let reversed = (to.clone(), from.clone());
            let forward = (from.clone(), to.clone());
            if other.directions.contains(&reversed)
                && !other.directions.contains(&forward)
                && !self.directions.contains(&reversed)
            {
                return Some(NearMiss::Direction {
                    from: from.clone(),
                    to: to.clone(),
                });
            }
        }
        None
    }
}

/// Words that negate what follows. Contractions ("don't", "dont") and "-free" / "non-" words
/// are tokenised to "not" first.
const NEGATIONS: &[&str] = &[
    "cannot", "neither", "never", "no", "nobody", "none", "nor", "not", "nothing", "nowhere",
    "without",
];

/// Function words: never entities by capitalisation alone, and skipped when looking for the
/// things on either side of "to" or "from".
const GUARD_STOP_WORDS: &[&str] = &[
    "a", "am", "an", "and", "any", "are", "be", "by", "can", "could", "did", "do", "does", "for",
    "get", "go", "her", "his", "how", "i", "is", "it", "its", "many", "me", "much", "my", "of",
    "ok", "okay", "on", "or", "our", "please", "should", "some", "that", "the", "their", "there",
    "these", "they", "this", "those", "to", "was", "we", "were", "what", "which", "will", "with",
    "would", "you", "your",
];

/// A unit's spellings and its canonical id: (spelling, id).
const UNITS: &[(&str, &str)] = &[
    // Length.
    ("mm", "mm"),
    ("millimeter", "mm"),
    ("millimeters", "mm"),
    ("millimetre", "mm"),
    ("millimetres", "mm"),
    ("cm", "cm"),
    ("centimeter", "cm"),
    ("centimeters", "cm"),
    ("centimetre", "cm"),
    ("centimetres", "cm"),
    ("m", "m"),
    ("meter", "m"),
    ("meters", "m"),
    ("metre", "m"),
    ("metres", "m"),
    ("km", "km"),
    ("kms", "km"),
    ("kilometer", "km"),
    ("kilometers", "km"),
    ("kilometre", "km"),
    ("kilometres", "km"),
    ("inch", "in"),
    ("inches", "in"),
    ("ft", "ft"),
    ("foot", "ft"),
    ("feet", "ft"),
    ("yd", "yd"),
    ("yard", "yd"),
    ("yards", "yd"),
    ("mi", "mi"),
    ("mile", "mi"),
    ("miles", "mi"),
    // Mass.
    ("mg", "mg"),
    ("milligram", "mg"),
    ("milligrams", "mg"),
    ("g", "g"),
    ("gram", "g"),
    ("grams", "g"),
    ("gramme", "g"),
    ("grammes", "g"),
    ("kg", "kg"),
    ("kgs", "kg"),
    ("kilo", "kg"),
    ("kilos", "kg"),
    ("kilogram", "kg"),
    ("kilograms", "kg"),
    ("lb", "lb"),
    ("lbs", "lb"),
    ("pound", "lb"),
    ("pounds", "lb"),
    ("oz", "oz"),
    ("ounce", "oz"),
    ("ounces", "oz"),
    ("stone", "st"),
    ("ton", "t"),
    ("tons", "t"),
    ("tonne", "t"),
    ("tonnes", "t"),
    // Volume.
    ("ml", "ml"),
    ("milliliter", "ml"),
    ("milliliters", "ml"),
    ("millilitre", "ml"),
    ("millilitres", "ml"),
    ("l", "l"),
    ("liter", "l"),
    ("liters", "l"),
    ("litre", "l"),
    ("litres", "l"),
    ("cup", "cup"),
    ("cups", "cup"),
    ("tbsp", "tbsp"),
    ("tablespoon", "tbsp"),
    ("tablespoons", "tbsp"),
    ("tsp", "tsp"),
    ("teaspoon", "tsp"),
    ("teaspoons", "tsp"),
    ("gal", "gal"),
    ("gallon", "gal"),
    ("gallons", "gal"),
    ("pint", "pint"),
    ("pints", "pint"),
    ("quart", "quart"),
    ("quarts", "quart"),
    // Temperature.
    ("c", "°c"),
    ("°c", "°c"),
    ("celsius", "°c"),
    ("centigrade", "°c"),
    ("f", "°f"),
    ("°f", "°f"),
    ("fahrenheit", "°f"),
    ("k", "k"),
    ("kelvin", "k"),
    // Time.
    ("ms", "ms"),
    ("millisecond", "ms"),
    ("milliseconds", "ms"),
    ("s", "s"),
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("min", "min"),
    ("mins", "min"),
    ("minute", "min"),
    ("minutes", "min"),
    ("h", "h"),
    ("hr", "h"),
    ("hrs", "h"),
    ("hour", "h"),
    ("hours", "h"),
    ("day", "day"),
    ("days", "day"),
    ("week", "week"),
    ("weeks", "week"),
    ("month", "month"),
    ("months", "month"),
    ("year", "year"),
    ("years", "year"),
    ("yr", "year"),
    ("yrs", "year"),
    // Speed.
    ("mph", "mph"),
    ("kph", "km/h"),
    ("kmh", "km/h"),
    ("km/h", "km/h"),
    ("m/s", "m/s"),
    // Data.
    ("bit", "bit"),
    ("bits", "bit"),
    ("byte", "byte"),
    ("bytes", "byte"),
    ("kb", "kb"),
    ("kilobyte", "kb"),
    ("kilobytes", "kb"),
    ("mb", "mb"),
    ("megabyte", "mb"),
    ("megabytes", "mb"),
    ("gb", "gb"),
    ("gigabyte", "gb"),
    ("gigabytes", "gb"),
    ("tb", "tb"),
    ("terabyte", "tb"),
    ("terabytes", "tb"),
    ("mbps", "mbps"),
    ("gbps", "gbps"),
    // Money.
    ("$", "usd"),
    ("usd", "usd"),
    ("dollar", "usd"),
    ("dollars", "usd"),
    ("€", "eur"),
    ("eur", "eur"),
    ("euro", "eur"),
    ("euros", "eur"),
    ("£", "gbp"),
    ("gbp", "gbp"),
    ("sterling", "gbp"),
    ("¥", "jpy"),
    ("jpy", "jpy"),
    ("yen", "jpy"),
    ("₹", "inr"),
    ("inr", "inr"),
    ("rupee", "inr"),
    ("rupees", "inr"),
    ("cad", "cad"),
    ("aud", "aud"),
    ("chf", "chf"),
    // Other.
    ("%", "%"),
    ("percent", "%"),
    ("percentage", "%"),
    ("cal", "kcal"),
    ("kcal", "kcal"),
    ("calorie", "kcal"),
    ("calories", "kcal"),
    ("kj", "kj"),
    ("kwh", "kwh"),
    ("w", "w"),
    ("watt", "w"),
    ("watts", "w"),
    ("acre", "acre"),
    ("acres", "acre"),
    ("hectare", "ha"),
    ("hectares", "ha"),
    ("psi", "psi"),
];

/// Spellings that are units only right after a number ("5 m", "3 days", "2 cups"), because
/// they are also ordinary words or letters ("m", "second", "day", "stone", "a bit").
const NEEDS_NUMBER: &[&str] = &[
    "m", "g", "l", "c", "f", "k", "s", "h", "w", "ms", "min", "sec", "secs", "second", "seconds",
    "day", "days", "week", "weeks", "month", "months", "year", "years", "yr", "yrs", "hour",
    "hours", "minute", "minutes", "stone", "bit", "bits", "cal", "cad",
];

/// Temperature letters, also units next to "to"/"from"/"degrees" ("F to C", "from C").
const TEMPERATURE_LETTERS: &[&str] = &["c", "f", "k"];

/// Number words and their values; "hundred" and larger multiply what precedes them.
const NUMBER_WORDS: &[(&str, f64)] = &[
    ("zero", 0.0),
    ("one", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("thirteen", 13.0),
    ("fourteen", 14.0),
    ("fifteen", 15.0),
    ("sixteen", 16.0),
    ("seventeen", 17.0),
    ("eighteen", 18.0),
    ("nineteen", 19.0),
    ("twenty", 20.0),
    ("thirty", 30.0),
    ("forty", 40.0),
    ("fifty", 50.0),
    ("sixty", 60.0),
    ("seventy", 70.0),
    ("eighty", 80.0),
    ("ninety", 90.0),
    ("half", 0.5),
];

/// Number words that multiply the value before them ("two dozen", "a hundred").
const MULTIPLIER_WORDS: &[(&str, f64)] = &[
    ("dozen", 12.0),
    ("hundred", 100.0),
    ("thousand", 1_000.0),
    ("million", 1_000_000.0),
    ("billion", 1_000_000_000.0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Number,
    Identifier,
}

/// One word, number or identifier of a question.
#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Lower case, as written (numbers normalised: "1,000.50" → "1000.5").
    lower: String,
    /// Lower case with "'s" and a plural "s" removed: the form entities are compared in.
    canonical: String,
    /// Starts with a capital letter (or is all capitals) and does not start a sentence.
    capitalised: bool,
    /// Inside quotes or backticks.
    quoted: bool,
    /// A comma, full stop, question mark or the like follows it.
    clause_ends: bool,
}

/// Splits a question into tokens, recording case, quoting and clause ends.
fn tokenize(text: &str) -> Vec<Token> {
    let text = text
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .replace("->", " to ")
        .replace("=>", " to ")
        .replace('\u{2192}', " to ");
    let mut tokens = Vec::new();
    let mut sentence_start = true;
    let mut open_quote: Option<char> = None;
    for chunk in text.split_whitespace() {
        let mut core = chunk;
        // Leading punctuation; a quote mark at the start of a word opens a quotation.
        while let Some(first) = core.chars().next() {
            if matches!(first, '"' | '`' | '\'') && open_quote.is_none() && core.len() > 1 {
                open_quote = Some(first);
            } else if !matches!(first, '(' | '[' | '{' | '<' | '¿' | '¡' | '*' | '"' | '`') {
                break;
            }
            core = &core[first.len_utf8()..];
        }
        // Trailing punctuation: clause ends, closing quotes, and "()" of a call.
        let mut is_call = false;
        let mut closes_quote = false;
        let mut clause_ends = false;
        let mut sentence_ends = false;
        while let Some(last) = core.chars().last() {
            if core.ends_with("()") {
                is_call = true;
                core = &core[..core.len() - 2];
                continue;
            }
            if Some(last) == open_quote {
                closes_quote = true;
            } else if matches!(last, '.' | '?' | '!' | ':' | ';') {
                clause_ends = true;
                sentence_ends |= last != ';';
            } else if last == ',' {
                clause_ends = true;
            } else if !matches!(last, ')' | ']' | '}' | '>' | '*' | '"' | '`' | '\'') {
                break;
            }
            core = &core[..core.len() - last.len_utf8()];
        }
        if let Some(paren) = core.find('(')
            && paren > 0
        {
            // "foo(x)" is a call of foo.
            core = &core[..paren];
            is_call = true;
        }
        let context = ChunkContext {
            sentence_start,
            quoted: open_quote.is_some(),
            is_call,
        };
        let first_new = tokens.len();
        push_chunk(&mut tokens, core, &context);
        if tokens.len() > first_new {
            if let Some(last) = tokens.last_mut() {
                last.clause_ends = clause_ends;
            }
            sentence_start = sentence_ends;
        } else if sentence_ends {
            sentence_start = true;
        }
        if closes_quote {
            open_quote = None;
        }
    }
    tokens
}

/// What the tokenizer knows about the chunk being split.
struct ChunkContext {
    sentence_start: bool,
    quoted: bool,
    is_call: bool,
}

/// Pushes the tokens of one whitespace-separated chunk, punctuation already trimmed.
fn push_chunk(tokens: &mut Vec<Token>, core: &str, context: &ChunkContext) {
    if core.is_empty() {
        return;
    }
    if starts_number(core) {
        push_number(tokens, core, context);
        return;
    }
    let lower = core.to_lowercase();
    if let Some((spelling, _)) = UNITS
        .iter()
        .find(|(spelling, _)| spelling.contains('/') && *spelling == lower)
    {
        tokens.push(word_token(spelling, spelling, false, context.quoted));
        return;
    }
    // "iPhone's" is the identifier "iphone".
    let without_possessive = core.strip_suffix("'s").unwrap_or(core);
    if context.is_call || is_identifier(without_possessive) {
        let lower = without_possessive.to_lowercase();
        tokens.push(Token {
            kind: Kind::Identifier,
            lower: lower.clone(),
            canonical: lower.clone(),
            capitalised: false,
            quoted: context.quoted,
            clause_ends: false,
        });
        push_embedded_numbers(tokens, &lower);
        return;
    }
    // "U.S." and "e.g." are abbreviations: "us", "eg".
    let undotted = core.replace('.', "");
    let core = undotted.as_str();
    let parts: Vec<&str> = core
        .split(['-', '/', '\u{2013}'])
        .filter(|part| !part.is_empty())
        .collect();
    // "sugar-free" and "non-stick" negate; count them like "without".
    let last_part_is_free =
        parts.len() > 1 && parts.last().is_some_and(|p| p.eq_ignore_ascii_case("free"));
    let first_part_is_non =
        parts.len() > 1 && parts.first().is_some_and(|p| p.eq_ignore_ascii_case("non"));
    let first_token = tokens.len();
    for (index, part) in parts.iter().enumerate() {
        let is_marker =
            (last_part_is_free && index == parts.len() - 1) || (first_part_is_non && index == 0);
        if is_marker {
            tokens.push(word_token("not", "not", false, context.quoted));
            continue;
        }
        if starts_number(part) {
            push_number(tokens, part, context);
            continue;
        }
        let starts_sentence = context.sentence_start && index == 0;
        push_word(tokens, part, starts_sentence, context.quoted);
    }
    // "Wi-Fi" and "wifi", "T-Mobile" and "tmobile" name the same thing: the parts of a
    // hyphenated word share the joined form as their canonical form.
    let joinable = parts.len() > 1
        && !last_part_is_free
        && !first_part_is_non
        && parts
            .iter()
            .all(|part| part.chars().all(char::is_alphabetic));
    if joinable {
        let joined = canonical_word(&parts.concat().to_lowercase());
        for token in &mut tokens[first_token..] {
            token.canonical = joined.clone();
        }
    }
}

/// Pushes one word: undoes contractions ("don't" → "do", "not"), strips "'s", and notes
/// whether its capital marks it as a name.
fn push_word(tokens: &mut Vec<Token>, word: &str, starts_sentence: bool, quoted: bool) {
    let first_is_upper = word.chars().next().is_some_and(char::is_uppercase);
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    let all_capitals = letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase());
    let capitalised = all_capitals || (first_is_upper && !starts_sentence);
    let lower = word.to_lowercase();
    if let Some(base) = lower.strip_suffix("n't") {
        let base = match base {
            "ca" => "can",
            "wo" => "will",
            other => other,
        };
        tokens.push(word_token(base, base, false, quoted));
        tokens.push(word_token("not", "not", false, quoted));
        return;
    }
    if let Some(base) = NEGATION_WITHOUT_APOSTROPHE
        .iter()
        .find_map(|(typed, base)| (*typed == lower).then_some(*base))
    {
        tokens.push(word_token(base, base, false, quoted));
        tokens.push(word_token("not", "not", false, quoted));
        return;
    }
    let mut base = lower.as_str();
    for suffix in ["'s", "'re", "'ve", "'ll", "'d", "'m"] {
        if let Some(stripped) = base.strip_suffix(suffix) {
            base = stripped;
            break;
        }
    }
    let base = base.replace('\'', "");
    if base.is_empty() {
        return;
    }
    let canonical = canonical_word(&base);
    tokens.push(Token {
        kind: Kind::Word,
        lower: base.clone(),
        canonical,
        capitalised,
        quoted,
        clause_ends: false,
    });
    push_embedded_numbers(tokens, &base);
}

/// Negated contractions typed without the apostrophe, and the verb each stands for (the
/// embedder reads them the same way).
pub(crate) const NEGATION_WITHOUT_APOSTROPHE: &[(&str, &str)] = &[
    ("arent", "are"),
    ("cant", "can"),
    ("couldnt", "could"),
    ("didnt", "did"),
    ("doesnt", "does"),
    ("dont", "do"),
    ("hasnt", "has"),
    ("havent", "have"),
    ("isnt", "is"),
    ("shouldnt", "should"),
    ("wasnt", "was"),
    ("werent", "were"),
    ("wont", "will"),
    ("wouldnt", "would"),
];

fn word_token(lower: &str, canonical: &str, capitalised: bool, quoted: bool) -> Token {
    Token {
        kind: Kind::Word,
        lower: lower.to_owned(),
        canonical: canonical.to_owned(),
        capitalised,
        quoted,
        clause_ends: false,
    }
}

/// The form two mentions of one entity share: lower case, no plural "s" ("Macs" = "Mac").
fn canonical_word(lower: &str) -> String {
    let keeps_s = lower.ends_with("ss") || lower.ends_with("us") || lower.ends_with("is");
    match lower.strip_suffix('s') {
        Some(stem) if lower.chars().count() > 3 && !keeps_s => stem.to_owned(),
        _ => lower.to_owned(),
    }
}

/// Whether a chunk is code: `snake_case`, `camelCase`, `a.b`, `a::b`.
fn is_identifier(core: &str) -> bool {
    if core.contains('_') || core.contains("::") {
        return true;
    }
    let chars: Vec<char> = core.chars().collect();
    let camel = chars
        .windows(2)
        .any(|pair| pair[0].is_lowercase() && pair[1].is_uppercase());
    if camel {
        return true;
    }
    // "os.path" and "google.com" are identifiers; "e.g" and "U.S" are abbreviations.
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() > 1
        && parts.iter().all(|part| !part.is_empty())
        && parts.iter().any(|part| part.chars().count() > 1)
        && chars
            .windows(3)
            .any(|w| w[1] == '.' && w[0].is_alphanumeric() && w[2].is_alphabetic())
}

/// Whether a chunk starts like a number: "5", "-5", "$5", ".5".
fn starts_number(core: &str) -> bool {
    let mut chars = core.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('-' | '+' | '.' | '$' | '€' | '£' | '¥' | '₹') => {
            chars.next().is_some_and(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Pushes a number and whatever follows it in the same chunk: "$5" → "$", "5";
/// "10km" → "10", "km"; "5-year" → "5", "year"; "3rd" → "3".
fn push_number(tokens: &mut Vec<Token>, core: &str, context: &ChunkContext) {
    let mut rest = core;
    let mut sign = "";
    if let Some(first) = rest.chars().next() {
        if matches!(first, '$' | '€' | '£' | '¥' | '₹') {
            let symbol = first.to_string();
            tokens.push(word_token(&symbol, &symbol, false, context.quoted));
            rest = &rest[first.len_utf8()..];
        } else if first == '-' {
            sign = "-";
            rest = &rest[1..];
        } else if first == '+' {
            rest = &rest[1..];
        }
    }
    // Digits with separators that sit between digits: "1,000", "3.5", "1/2", "5:30".
    let bytes = rest.as_bytes();
    let mut end = 0;
    while end < bytes.len() {
        let byte = bytes[end];
        // A leading "." is allowed (".5"); other separators only between digits.
        let separator_between_digits = matches!(byte, b',' | b'.' | b'/' | b':')
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            && (end > 0 || byte == b'.');
        if byte.is_ascii_digit() || separator_between_digits {
            end += 1;
        } else {
            break;
        }
    }
    let digits = &rest[..end];
    if digits.is_empty() {
        // A lone sign or symbol: keep it as a word rather than looking for digits again.
        push_word(tokens, rest, false, context.quoted);
        return;
    }
    {
        let value = format!("{sign}{}", normalise_number(digits));
        tokens.push(Token {
            kind: Kind::Number,
            lower: value.clone(),
            canonical: value,
            capitalised: false,
            quoted: context.quoted,
            clause_ends: false,
        });
    }
    let suffix = rest[end..].trim_start_matches(['-', '\u{2013}', '/']);
    let suffix_lower = suffix.to_lowercase();
    if suffix.is_empty() || matches!(suffix_lower.as_str(), "st" | "nd" | "rd" | "th") {
        return;
    }
    let suffix_context = ChunkContext {
        sentence_start: false,
        quoted: context.quoted,
        is_call: false,
    };
    push_chunk(tokens, suffix, &suffix_context);
}

/// "1,000" → "1000", "3.50" → "3.5", "007" → "7"; fractions and times stay as written.
fn normalise_number(digits: &str) -> String {
    if digits.contains('/') || digits.contains(':') {
        return digits.to_owned();
    }
    let mut number = digits.replace(',', "");
    if number.contains('.') {
        number = number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned();
    }
    let trimmed = number.trim_start_matches('0');
    if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

/// Pushes the digit runs inside a word that starts with letters: "mp3" → "3", "ipv6" → "6".
fn push_embedded_numbers(tokens: &mut Vec<Token>, lower: &str) {
    if !lower.chars().next().is_some_and(char::is_alphabetic) {
        return;
    }
    let mut run = String::new();
    for c in lower.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || (c == '.' && !run.is_empty()) {
            run.push(c);
        } else if !run.is_empty() {
            let digits = run.trim_end_matches('.');
            let value = normalise_number(digits);
            tokens.push(Token {
                kind: Kind::Number,
                lower: value.clone(),
                canonical: value,
                capitalised: false,
                quoted: false,
                clause_ends: false,
            });
            run.clear();
        }
    }
}

/// The sorted numbers of a question, number words included, "1" left out.
fn numbers(tokens: &[Token]) -> Vec<String> {
    let mut numbers = Vec::new();
    // A run of number words ("two hundred and fifty") is one number.
    let mut total = 0.0_f64;
    let mut current = 0.0_f64;
    let mut in_run = false;
    for (index, token) in tokens.iter().enumerate() {
        let word = token.lower.as_str();
        let simple = NUMBER_WORDS.iter().find(|(w, _)| *w == word);
        let multiplier = MULTIPLIER_WORDS.iter().find(|(w, _)| *w == word);
        let continues_run = in_run
            && word == "and"
            && tokens
                .get(index + 1)
                .is_some_and(|next| is_number_word(&next.lower));
        match (token.kind, simple, multiplier) {
            (Kind::Word, Some((_, value)), _) => {
                current += value;
                in_run = true;
            }
            (Kind::Word, None, Some((_, scale))) => {
                if *scale >= 1_000.0 {
                    total += current.max(1.0) * scale;
                    current = 0.0;
                } else {
                    current = current.max(1.0) * scale;
                }
                in_run = true;
            }
            _ if continues_run => {}
            _ => {
                if in_run {
                    numbers.push(format_number(total + current));
                    total = 0.0;
                    current = 0.0;
                    in_run = false;
                }
                if token.kind == Kind::Number {
                    numbers.push(token.lower.clone());
                }
            }
        }
    }
    if in_run {
        numbers.push(format_number(total + current));
    }
    numbers.retain(|number| number != "1");
    numbers.sort();
    numbers
}

/// Whether a word is a number word ("five", "dozen", "hundred").
fn is_number_word(word: &str) -> bool {
    NUMBER_WORDS.iter().any(|(w, _)| *w == word) || MULTIPLIER_WORDS.iter().any(|(w, _)| *w == word)
}

/// A number-word value written like a normalised digit string: 12.0 → "12", 0.5 → "0.5".
fn format_number(value: f64) -> String {
    normalise_number(&format!("{value}"))
}

/// The unit id at `index`, if that token is a unit there: spellings that are also ordinary
/// words count only after a number ("3 days", not "every day").
fn unit_at(tokens: &[Token], index: usize) -> Option<&'static str> {
    let token = tokens.get(index)?;
    if token.kind != Kind::Word {
        return None;
    }
    let word = token.lower.as_str();
    let (_, id) = UNITS.iter().find(|(spelling, _)| *spelling == word)?;
    if !NEEDS_NUMBER.contains(&word) {
        return Some(id);
    }
    let previous = index.checked_sub(1).and_then(|i| tokens.get(i));
    if previous.is_some_and(|p| p.kind == Kind::Number) {
        return Some(id);
    }
    if TEMPERATURE_LETTERS.contains(&word) {
        let after_connector = previous.is_some_and(|p| {
            matches!(
                p.lower.as_str(),
                "to" | "into" | "from" | "in" | "degree" | "degrees" | "°"
            )
        });
        let before_connector = tokens
            .get(index + 1)
            .is_some_and(|next| matches!(next.lower.as_str(), "to" | "into"));
        if after_connector || before_connector {
            return Some(id);
        }
    }
    None
}

/// Whether capitals carry no information: most words of the question are capitalised
/// ("How To Reset My Password", "WHY IS MY CARD DECLINED").
fn is_title_case(tokens: &[Token]) -> bool {
    let words: Vec<&Token> = tokens
        .iter()
        .skip(1)
        .filter(|token| token.kind == Kind::Word && token.lower.chars().any(char::is_alphabetic))
        .collect();
    let capitalised = words.iter().filter(|token| token.capitalised).count();
    words.len() >= 3 && capitalised * 5 >= words.len() * 4
}

/// How a token takes part in a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// "to", "into": what follows is where things go.
    To,
    /// "from": what follows is where things come from.
    From,
    /// "per": the left thing per the right thing.
    Per,
    /// "than": the clause's subject compared with what follows.
    Than,
    /// "in": between two units, a conversion ("5 miles in km", "feet in a mile").
    In,
    /// A thing: a unit, a name, a content word.
    Term,
    /// A number: a thing for "from 30 to 15", skipped elsewhere ("5 km to miles").
    Number,
    /// Function words, skipped.
    Skip,
}

impl Role {
    fn is_connector(self) -> bool {
        matches!(
            self,
            Role::To | Role::From | Role::Per | Role::Than | Role::In
        )
    }
}

fn role(token: &Token) -> Role {
    match token.kind {
        Kind::Number => Role::Number,
        Kind::Identifier => Role::Term,
        Kind::Word => match token.lower.as_str() {
            "to" | "into" => Role::To,
            "from" => Role::From,
            "per" => Role::Per,
            "than" => Role::Than,
            "in" => Role::In,
            word if GUARD_STOP_WORDS.contains(&word)
                || NEGATIONS.contains(&word)
                || is_number_word(word) =>
            {
                Role::Skip
            }
            _ => Role::Term,
        },
    }
}

/// How far from a connector its two sides are looked for, in tokens.
const DIRECTION_WINDOW: usize = 4;

/// The ordered (from, to) pairs a question states: "5 km to miles" → (km, mi); "from London
/// to Paris" → (london, paris); "how many grams in an ounce" → (oz, g).
fn directions(tokens: &[Token], units: &[Option<&'static str>]) -> BTreeSet<(String, String)> {
    let roles: Vec<Role> = tokens.iter().map(role).collect();
    let raw_term = |index: usize| -> String {
        units
            .get(index)
            .copied()
            .flatten()
            .map_or_else(|| tokens[index].canonical.clone(), str::to_owned)
    };
    let is_thing = |index: usize, numbers_count: bool| -> bool {
        roles[index] == Role::Term || (numbers_count && roles[index] == Role::Number)
    };
    // The nearest thing before a connector, within its clause and before another connector.
    let left = |index: usize, numbers_count: bool| -> Option<usize> {
        let lowest = index.saturating_sub(DIRECTION_WINDOW);
        for j in (lowest..index).rev() {
            if tokens[j].clause_ends || roles[j].is_connector() {
                return None;
            }
            if is_thing(j, numbers_count) {
                return Some(j);
            }
        }
        None
    };
    // The nearest thing after a connector, likewise.
    let right = |index: usize, numbers_count: bool| -> Option<usize> {
        if tokens[index].clause_ends {
            return None;
        }
        let highest = (index + DIRECTION_WINDOW).min(tokens.len() - 1);
        for j in index + 1..=highest {
            if is_thing(j, numbers_count) {
                return Some(j);
            }
            if tokens[j].clause_ends || roles[j].is_connector() {
                return None;
            }
        }
        None
    };
    // "miles per hour" is one thing on either side of "to": "mi/hour".
    let mut compounds: Vec<Option<String>> = vec![None; tokens.len()];
    for (index, role) in roles.iter().enumerate() {
        if *role == Role::Per
            && let (Some(a), Some(b)) = (left(index, false), right(index, false))
        {
            let compound = format!("{}/{}", raw_term(a), raw_term(b));
            compounds[a] = Some(compound.clone());
            compounds[b] = Some(compound);
        }
    }
    let term =
        |index: usize| -> String { compounds[index].clone().unwrap_or_else(|| raw_term(index)) };
    let mut pairs = BTreeSet::new();
    let mut sources = Vec::new();
    let mut targets = Vec::new();
    for (index, role) in roles.iter().enumerate() {
        match role {
            Role::To => {
                if let Some(to) = right(index, true) {
                    targets.push(term(to));
                    if let Some(from) = left(index, true) {
                        pairs.insert((term(from), term(to)));
                    }
                }
            }
            Role::From => {
                if let Some(from) = right(index, true) {
                    sources.push(term(from));
                }
            }
            Role::Per => {
                if let (Some(a), Some(b)) = (left(index, false), right(index, false)) {
                    pairs.insert((raw_term(a), raw_term(b)));
                }
            }
            Role::Than => {
                // The subject is the clause's first thing: "is Python faster than Java".
                let clause_start = (0..index)
                    .rev()
                    .find(|&j| tokens[j].clause_ends)
                    .map_or(0, |j| j + 1);
                let subject = (clause_start..index).find(|&j| roles[j] == Role::Term);
                if let (Some(a), Some(b)) = (subject, right(index, false)) {
                    pairs.insert((term(a), term(b)));
                }
            }
            Role::In => {
                let (Some(a), Some(b)) = (left(index, false), right(index, false)) else {
                    continue;
                };
                if units[a].is_none() || units[b].is_none() {
                    continue;
                }
                // "5 miles in km" converts miles to km; "how many grams in an ounce" and
                // "feet in a mile" convert the right-hand unit to the left-hand one.
                let asks_how_many = (a.saturating_sub(2)..a)
                    .any(|j| matches!(tokens[j].lower.as_str(), "many" | "much"));
                // The amount is before the unit ("5 miles", "a cup", "half a cup") or after
                // its symbol ("$5").
                let has_amount = (a.saturating_sub(2)..index).any(|j| {
                    tokens[j].kind == Kind::Number
                        || is_number_word(&tokens[j].lower)
                        || matches!(tokens[j].lower.as_str(), "a" | "an")
                });
                if has_amount && !asks_how_many {
                    pairs.insert((term(a), term(b)));
                } else {
                    pairs.insert((term(b), term(a)));
                }
            }
            Role::Term | Role::Number | Role::Skip => {}
        }
    }
    for source in &sources {
        for target in &targets {
            if source != target {
                pairs.insert((source.clone(), target.clone()));
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts the pair is refused for `reason`, asked either way round.
    #[track_caller]
    fn assert_refused(a: &str, b: &str, reason: &str) {
        for (question, candidate) in [(a, b), (b, a)] {
            match near_miss(question, candidate) {
                Some(miss) => assert_eq!(
                    miss.reason(),
                    reason,
                    "{question:?} vs {candidate:?}: {miss}"
                ),
                None => panic!("{question:?} vs {candidate:?} passed, expected {reason}"),
            }
        }
    }

    /// Asserts the pair may share an answer, asked either way round.
    #[track_caller]
    fn assert_passes(a: &str, b: &str) {
        for (question, candidate) in [(a, b), (b, a)] {
            if let Some(miss) = near_miss(question, candidate) {
                panic!("{question:?} vs {candidate:?} refused: {miss}");
            }
        }
    }

    #[test]
    fn paraphrases_pass() {
        assert_passes("What's the capital of France?", "capital of France?");
        assert_passes("What's the capital of France?", "Tell me France's capital");
        assert_passes("capital of france", "What is the capital of France?");
        assert_passes("France capital?", "what's the capital city of france");
        assert_passes("How do I reset my password?", "password reset");
        assert_passes("How do I reset my password?", "HOW DO I RESET MY PASSWORD");
        assert_passes("How To Reset My Password", "how do i reset my password");
        assert_passes("How many grams in an ounce?", "ounces to grams");
        assert_passes("How many grams in an ounce?", "how many grams are in 1 oz");
        assert_passes("Convert 5 km to miles", "5 kilometres in miles?");
        assert_passes("5km to miles", "convert 5 km into miles please");
        assert_passes("flights from London to Paris", "London to Paris flights");
        assert_passes("flights to Paris from London", "London → Paris flights");
        assert_passes("Why can't I log in?", "why cant i log in");
        assert_passes("Why can't I log in?", "I can not log in, why?");
        assert_passes("Is it safe to eat raw eggs?", "are raw eggs safe to eat");
        assert_passes("How do I sort a list in Python?", "python: sort a list");
        assert_passes(
            "What does `os.path.join` do?",
            "what does os.path.join() do",
        );
        assert_passes("How many calories in five eggs?", "calories in 5 eggs");
        assert_passes("$1,000 in euros", "1000 dollars to EUR");
        assert_passes("What's a dozen eggs cost", "price of 12 eggs");
        assert_passes("Which one is cheaper?", "Which is cheaper?");
        assert_passes("Is Python faster than Java?", "is python faster than java");
        assert_passes("What does 'idempotent' mean?", "meaning of idempotent");
    }

    #[test]
    fn different_numbers_are_refused() {
        assert_refused("How long is 5 miles?", "How long is 50 miles?", "numbers");
        assert_refused("boil 2 eggs", "boil 3 eggs", "numbers");
        assert_refused("boil two eggs", "boil three eggs", "numbers");
        assert_refused("boil two eggs", "boil 3 eggs", "numbers");
        assert_refused(
            "Is 3.5 bigger than 3.50001",
            "Is 3.5 bigger than 3.5",
            "numbers",
        );
        assert_refused("taxes for 2023", "taxes for 2024", "numbers");
        assert_refused("What is 10% of 200?", "What is 10% of 300?", "numbers");
        assert_refused("Python 3.11 features", "Python 3.12 features", "numbers");
        assert_refused("ipv4 address format", "ipv6 address format", "numbers");
        assert_refused("convert -40 C to F", "convert 40 C to F", "numbers");
        assert_refused(
            "two hundred grams of flour",
            "250 grams of flour",
            "numbers",
        );
    }

    #[test]
    fn same_numbers_in_other_spellings_pass() {
        assert_passes("1,000 steps", "1000 steps");
        assert_passes("3.50 dollars", "$3.5");
        assert_passes("two hundred and fifty grams", "250 grams");
        assert_passes("half a cup of sugar", "0.5 cups of sugar");
        assert_passes("What is the 3rd planet?", "what's the 3 planet");
    }

    #[test]
    fn different_units_are_refused() {
        assert_refused("How much is 10 kg?", "How much is 10 lb?", "units");
        assert_refused("10 kg to grams", "10 kg to pounds", "units");
        assert_refused("price in dollars", "price in euros", "units");
        assert_refused("$100 to INR", "€100 to INR", "units");
        assert_refused("bake for 20 minutes", "bake for 20 hours", "units");
        assert_refused("a 5 GB file", "a 5 MB file", "units");
        assert_refused("100 F in C", "100 C in F", "direction");
        assert_refused("boil water at 100 C", "boil water at 100 F", "units");
        assert_refused(
            "how many cups in a liter",
            "how many tablespoons in a liter",
            "units",
        );
    }

    #[test]
    fn words_that_only_sometimes_are_units_need_a_number() {
        // "every day" is not a duration; "3 days" is.
        assert_passes(
            "Can I take ibuprofen every day?",
            "can i take ibuprofen daily every day",
        );
        assert_refused("Rest for 3 days", "Rest for 3 weeks", "units");
        assert_passes("Is a kidney stone dangerous?", "kidney stone: dangerous?");
        assert_refused("Convert F to C", "convert F to K", "units");
    }

    #[test]
    fn negation_is_refused() {
        assert_refused(
            "Is it safe to eat raw eggs?",
            "Is it not safe to eat raw eggs?",
            "negation",
        );
        assert_refused(
            "Why does my card work?",
            "Why doesn't my card work?",
            "negation",
        );
        assert_refused(
            "Why does my card work?",
            "Why doesnt my card work?",
            "negation",
        );
        assert_refused(
            "Should I ever microwave foil?",
            "Should I never microwave foil?",
            "negation",
        );
        assert_refused(
            "Bake a cake with eggs",
            "Bake a cake without eggs",
            "negation",
        );
        assert_refused("a cake recipe", "a sugar-free cake recipe", "negation");
        assert_refused(
            "Is there a way to undo a payment?",
            "Is there no way to undo a payment?",
            "negation",
        );
        assert_refused("Can I cancel?", "I cannot cancel", "negation");
    }

    #[test]
    fn different_entities_are_refused() {
        assert_refused(
            "What's the capital of France?",
            "What's the capital of Germany?",
            "entity",
        );
        assert_refused("capital of France", "Germany's capital", "entity");
        assert_refused(
            "How do I sort a list in Python?",
            "How do I sort a list in Java?",
            "entity",
        );
        assert_refused(
            "What does 'idempotent' mean?",
            "What does 'immutable' mean?",
            "entity",
        );
        assert_refused(
            "What does snake_case mean",
            "What does camelCase mean",
            "entity",
        );
        assert_refused(
            "what does user_id store",
            "what does userId store",
            "entity",
        );
        assert_refused("How do I call foo()?", "How do I call bar()?", "entity");
        assert_refused("What does os.path do?", "What does os.walk do?", "entity");
        assert_refused(
            "Is the iPhone waterproof?",
            "Is the Pixel waterproof?",
            "entity",
        );
        assert_refused(
            "Reset password on my Mac",
            "Reset password on my PC",
            "entity",
        );
        assert_refused("Weather in New York", "Weather in York", "entity");
        assert_refused(
            "How do I use `map` in JS?",
            "How do I use `filter` in JS?",
            "entity",
        );
    }

    #[test]
    fn same_entity_in_other_forms_passes() {
        assert_passes("France's population", "population of France");
        assert_passes("population of FRANCE", "population of france");
        assert_passes("Is my Mac compatible?", "are macs compatible");
        assert_passes("Python list comprehension", "list comprehension in python");
        assert_passes(
            "call Array.prototype.map()",
            "what does array.prototype.map do",
        );
    }

    #[test]
    fn opposite_directions_are_refused() {
        assert_refused("Convert miles to km", "Convert km to miles", "direction");
        assert_refused("5 miles to km", "5 km to miles", "direction");
        assert_refused(
            "flights from London to Paris",
            "flights from Paris to London",
            "direction",
        );
        assert_refused(
            "flights from London to Paris",
            "Paris to London flights",
            "direction",
        );
        assert_refused(
            "convert Celsius into Fahrenheit",
            "convert Fahrenheit into Celsius",
            "direction",
        );
        assert_refused(
            "How many grams in an ounce?",
            "How many ounces in a gram?",
            "direction",
        );
        assert_refused(
            "How many grams in an ounce?",
            "grams to ounces",
            "direction",
        );
        assert_refused("miles per hour", "hours per mile", "direction");
        assert_refused(
            "Is Python faster than Java?",
            "Is Java faster than Python?",
            "direction",
        );
        assert_refused(
            "translate English to Spanish",
            "translate Spanish to English",
            "direction",
        );
        assert_refused("convert pdf to word", "convert word to pdf", "direction");
        assert_refused(
            "move money from savings to checking",
            "move money from checking to savings",
            "direction",
        );
    }

    #[test]
    fn reasons_and_messages_are_readable() {
        let miss = near_miss("5 miles", "50 miles");
        assert_eq!(
            miss.map(|miss| miss.to_string()),
            Some("different numbers: [5] vs [50]".to_owned())
        );
        let miss = near_miss("miles to km", "km to miles");
        assert_eq!(
            miss.map(|miss| miss.to_string()),
            Some("opposite directions: mi → km vs km → mi".to_owned())
        );
    }

    #[test]
    fn tokenizer_handles_punctuation_and_symbols() {
        let lowers = |text: &str| -> Vec<String> {
            tokenize(text)
                .into_iter()
                .map(|token| token.lower)
                .collect()
        };
        assert_eq!(lowers("What's $3.50?"), ["what", "$", "3.5"]);
        assert_eq!(lowers("(10km/h)"), ["10", "km/h"]);
        assert_eq!(lowers("don't"), ["do", "not"]);
        assert_eq!(lowers("5-year plan"), ["5", "year", "plan"]);
        assert_eq!(lowers("foo(x)"), ["foo"]);
        assert_eq!(tokenize("foo()")[0].kind, Kind::Identifier);
    }
}
