//! The secrets the auth service hands out, and how each is kept: virtual keys and refresh
//! tokens as SHA-256 hashes (they are long random strings, so a fast hash is enough and keeps
//! verification in microseconds), passwords with argon2id.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every virtual key starts with this, so that leaked keys are easy to recognize and scan for.
pub const KEY_PREFIX: &str = "tg-";

/// Characters of a key kept for display (`tg-` and the next eight).
const DISPLAY_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;

/// A freshly generated virtual key: the secret, to be shown once, and what is stored.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: String,
    pub display_prefix: String,
}

/// A new virtual key: `tg-` and 256 random bits in URL-safe base64 (43 characters).
pub fn generate_key() -> GeneratedKey {
    let secret = format!("{KEY_PREFIX}{}", random_token());
    GeneratedKey {
        hash: hash_token(&secret),
        display_prefix: secret[..DISPLAY_PREFIX_LEN].to_owned(),
        secret,
    }
}

/// Every admin API token starts with this, so that it is never mistaken for a virtual key
/// or an access token.
pub const ADMIN_TOKEN_PREFIX: &str = "tga-";

/// A new admin API token: `tga-` and 256 random bits, with its hash and display prefix.
pub fn generate_admin_token() -> GeneratedKey {
    let secret = format!("{ADMIN_TOKEN_PREFIX}{}", random_token());
    GeneratedKey {
        hash: hash_token(&secret),
        display_prefix: secret[..ADMIN_TOKEN_PREFIX.len() + 8].to_owned(),
        secret,
    }
}

/// 256 random bits from the thread's CSPRNG (ChaCha, seeded by the OS), base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, in lower-case hex: what is stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The same hash as raw bytes, for the in-memory key cache.
pub fn hash_token_bytes(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `text` has the shape of a virtual key (so that anything else is refused before
/// any lookup).
pub fn looks_like_key(text: &str) -> bool {
    text.len() == KEY_PREFIX.len() + 43
        && text.starts_with(KEY_PREFIX)
        && text[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Password hashing with argon2id at one of OWASP's recommended settings: 7 MiB, five passes,
/// one lane (OWASP rates its settings, 19 MiB × 2 ... 7 MiB × 5, as equally strong).
///
/// The 7 MiB of working memory is allocated once and reused: allocated per hash, the system
/// allocator raises its threshold for returning large blocks after the first one and keeps
/// every later copy (measured: tens of MB held after a burst of logins).
pub struct PasswordHashing {
    params: Params,
    memory: Vec<Block>,
}

/// The password rules, checked before anything is stored.
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Stored hashes asking for more memory than this are refused rather than computed.
const MAX_VERIFY_BLOCKS: usize = 64 * 1024;

impl Default for PasswordHashing {
    fn default() -> Self {
        PasswordHashing {
            params: Params::new(7 * 1024, 5, 1, None).unwrap_or_default(),
            memory: Vec::new(),
        }
    }
}

impl PasswordHashing {
    /// Runs argon2 with this instance's reused working memory.
    fn compute(
        &mut self,
        argon2: &Argon2<'_>,
        params: &Params,
        password: &str,
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let blocks = params.block_count();
        if self.memory.len() < blocks {
            self.memory.resize(blocks, Block::new());
        }
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            out,
            &mut self.memory[..blocks],
        )
    }

    /// A PHC string (`$argon2id$v=19$m=7168,t=5,p=1$...`). CPU-heavy: call off the executor.
    pub fn hash(&mut self, password: &str) -> Result<String, String> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let params = self.params.clone();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; 32];
        self.compute(&argon2, &params, password, &salt, &mut out)
            .map_err(|e| e.to_string())?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
            hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches `phc` (compared in constant time). CPU-heavy: call off the
    /// executor.
    pub fn verify(&mut self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Ok(params), Some(salt), Some(expected)) =
            (Params::try_from(&parsed), parsed.salt, parsed.hash)
        else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::V0x13,
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        if params.block_count() > MAX_VERIFY_BLOCKS {
            return false;
        }
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        self.compute(&argon2, &params, password, salt.as_ref(), &mut out)
            .is_ok()
            && Output::new(&out).is_ok_and(|computed| computed == expected)
    }
}

/// The threads that hash and verify passwords: a fixed few, so that argon2's memory is taken
/// from the same few allocator arenas every time (with short-lived threads, each new one would
/// keep its own copy), and so that a flood of logins queues, boundedly, instead of taking every
/// core and ever more memory.
pub struct PasswordWorkers {
    jobs: std::sync::mpsc::SyncSender<PasswordJob>,
}

type PasswordJob = Box<dyn FnOnce(&mut PasswordHashing) + Send>;

/// Why a password computation did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordWorkError {
    /// More computations are waiting than the queue holds.
    Busy,
    /// The workers are gone (the process is shutting down).
    Stopped,
}

impl PasswordWorkers {
    /// Starts `threads` workers sharing a queue of at most `queue` waiting computations.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<PasswordJob>(queue);
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for n in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("tollgate-argon2-{n}"))
                .spawn(move || {
                    let mut hashing = PasswordHashing::default();
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut hashing),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(PasswordWorkers { jobs })
    }

    /// Queues `work` for a worker; the receiver yields its result.
    pub fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut PasswordHashing) -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, PasswordWorkError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: PasswordJob = Box::new(move |hashing| {
            let _ = done.send(work(hashing));
        });
        self.jobs.try_send(job).map_err(|err| match err {
            std::sync::mpsc::TrySendError::Full(_) => PasswordWorkError::Busy,
            std::sync::mpsc::TrySendError::Disconnected(_) => PasswordWorkError::Stopped,
        })?;
        Ok(result)
    }

    /// Runs `work` on a worker and waits for its result without blocking the executor.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut PasswordHashing) -> T + Send + 'static,
    ) -> Result<T, PasswordWorkError> {
        self.submit(work)?
            .await
            .map_err(|_| PasswordWorkError::Stopped)
    }
}

/// Why a password is refused, in words a person can act on; `None` if it is acceptable.
pub fn password_problem(password: &str, email: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Some(format!(
            "The password must be at least {PASSWORD_MIN_CHARS} characters long."
        ));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Some(format!(
            "The password must be at most {PASSWORD_MAX_CHARS} characters long."
        ));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some("The password must use at least 5 different characters.".into());
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if lower == email.trim().to_lowercase() || (local.len() >= 4 && lower.contains(&local)) {
        return Some("The password must not contain your email address.".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_256_bits_and_are_stored_only_as_a_hash() {
        let key = generate_key();
        assert!(key.secret.starts_with("tg-"));
        assert_eq!(key.secret.len(), 3 + 43); // 32 bytes in base64url
        assert!(looks_like_key(&key.secret));
        assert_eq!(key.hash, hash_token(&key.secret));
        assert_eq!(key.hash.len(), 64);
        assert!(!key.hash.contains(&key.secret[3..]));
        assert!(key.secret.starts_with(&key.display_prefix));
        assert_ne!(generate_key().secret, key.secret);
    }

    #[test]
    fn key_shape_check_refuses_anything_else() {
        assert!(!looks_like_key("sk-abc"));
        assert!(!looks_like_key(""));
        assert!(!looks_like_key(&format!("tg-{}'", "a".repeat(42))));
    }

    #[test]
    fn passwords_hash_with_argon2id_at_owasp_parameters() {
        let mut hashing = PasswordHashing::default();
        let phc = hashing.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{phc}");
        assert!(hashing.verify("correct horse battery", &phc));
        assert!(!hashing.verify("correct horse batterz", &phc));
        assert!(!hashing.verify("anything", "not a phc string"));
        // hashes made elsewhere with other parameters (the library's own, 19 MiB x 2) verify
        use argon2::password_hash::PasswordHasher;
        let foreign = Argon2::default()
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        assert!(
            foreign.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{foreign}"
        );
        assert!(hashing.verify("correct horse battery", &foreign));
        assert!(!hashing.verify("correct horse batterz", &foreign));
        // and ours verify with the library's verifier
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn password_workers_run_jobs_and_refuse_overflow() {
        let workers = PasswordWorkers::start(1, 1).unwrap();
        let phc = workers
            .run(|h| h.hash("a sensible passphrase"))
            .await
            .unwrap()
            .unwrap();
        let ok = workers
            .run(move |h| h.verify("a sensible passphrase", &phc))
            .await
            .unwrap();
        assert!(ok);
        // one running, one queued: a third is refused at once rather than waiting
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let running = workers
            .submit(move |_| {
                let _ = started.send(());
                wait.recv().ok()
            })
            .unwrap();
        has_started.recv().unwrap();
        let queued = workers.submit(|_| ()).unwrap();
        assert_eq!(
            workers.submit(|_| ()).map(|_| ()),
            Err(PasswordWorkError::Busy)
        );
        release.send(()).unwrap();
        assert!(running.await.unwrap().is_some());
        queued.await.unwrap();
    }

    #[test]
    fn password_policy_explains_itself() {
        assert!(password_problem("short", "a@b.c").unwrap().contains("12"));
        assert!(
            password_problem("aaaaaaaaaaaaaaaa", "a@b.c")
                .unwrap()
                .contains("different")
        );
        assert!(password_problem("alice.smith-2026!", "alice.smith@example.com").is_some());
        assert!(
            password_problem(&"x1y2z3".repeat(30), "a@b.c")
                .unwrap()
                .contains("128")
        );
        assert_eq!(
            password_problem("a sensible passphrase", "bob@example.com"),
            None
        );
    }
}
