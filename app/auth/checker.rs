//! argon2id verification with bounded cost. Each verification takes ~19 MiB and tens of
//! milliseconds of a core, so the number running at once is fixed: a few dedicated threads
//! (sized to the cores) do them all, and a caller who finds them busy waits briefly, then is
//! told to come back ([`CheckError::Busy`]). However many requests arrive, password checking
//! holds at most `threads × 19 MiB` and leaves the other cores to everyone else.
//!
//! Dedicated threads rather than tokio's blocking pool, each with its own argon2 memory kept
//! between verifications: the pool grows to hundreds of threads under load, and allocating
//! and freeing 19 MiB per verification leaves the allocator holding up to 64 MiB per thread.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{oneshot, Semaphore, SemaphorePermit};

/// How long a caller waits for a free verifier before being told to retry.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// The most verifiers: past four, more threads buy sign-ins nobody needs at the price of
/// 19 MiB each and cores taken from answering requests.
const MAX_THREADS: usize = 4;

/// The largest argon2 memory a stored hash may ask for (ours use 19 MiB); a hash asking for
/// more is treated as not matching rather than allowed to take the server's memory.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// What a busy server tells the caller to wait, in seconds (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("the server is busy checking other passwords; retry in {RETRY_AFTER_SECS} s")]
    Busy,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that verify passwords.
pub struct PasswordChecker {
    permits: Semaphore,
    jobs: Mutex<mpsc::Sender<Job>>,
    wait: Duration,
}

impl PasswordChecker {
    /// `threads` verifiers (at least one); callers wait up to `wait` for one.
    pub fn new(threads: usize, wait: Duration) -> PasswordChecker {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || run_jobs(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password verification thread");
            }
        }
        PasswordChecker {
            permits: Semaphore::new(threads),
            jobs: Mutex::new(tx),
            wait,
        }
    }

    /// One verifier per core (at most [`MAX_THREADS`]): the most that can run without
    /// queueing on the CPU.
    pub fn sized_to_cores() -> PasswordChecker {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordChecker::new(cores.min(MAX_THREADS), DEFAULT_WAIT)
    }

    /// A verifier of one's own, waiting up to the configured time for one to come free.
    /// Whatever precedes the verification (looking the user up) is done holding it too, so
    /// that a flood cannot queue on the user database either.
    pub async fn slot(&self) -> Result<Slot<'_>, CheckError> {
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| CheckError::Busy)?
            .map_err(|_| CheckError::Busy)?;
        Ok(Slot {
            checker: self,
            _permit: permit,
        })
    }

    /// Whether `password` matches the PHC `hash`; [`CheckError::Busy`] when no verifier
    /// came free within the wait.
    pub async fn verify(&self, password: SecretString, hash: String) -> Result<bool, CheckError> {
        self.slot().await?.verify(password, hash).await
    }
}

/// The right to run one verification now.
pub struct Slot<'a> {
    checker: &'a PasswordChecker,
    _permit: SemaphorePermit<'a>,
}

impl Slot<'_> {
    /// Whether `password` matches the PHC `hash`, verified on one of the checker's threads.
    pub async fn verify(self, password: SecretString, hash: String) -> Result<bool, CheckError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(matches(&password, &hash));
        });
        let sent = self
            .checker
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        if sent.is_err() {
            return Err(CheckError::Busy);
        }
        // The permit is held until the thread answers, so jobs never queue behind each other.
        rx.await.map_err(|_| CheckError::Busy)
    }
}

fn run_jobs(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

thread_local! {
    /// This verifier thread's argon2 memory, kept from one verification to the next.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn matches(password: &SecretString, hash: &str) -> bool {
    verify_in_place(password.expose_secret().as_bytes(), hash).unwrap_or(false)
}

/// Recomputes the PHC `hash` for `password` in this thread's memory and compares the outputs
/// in constant time (what `PasswordVerifier` does, without allocating the memory each time).
fn verify_in_place(password: &[u8], hash: &str) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return None;
    }
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
            .ok()
    })?;
    // `Output`'s equality is constant-time.
    Some(Output::new(&out).ok()? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn hash(p: &str) -> String {
        crate::users::hash_password(SecretString::from(p.to_string()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_password_matches_its_hash_and_no_other() {
        let checker = PasswordChecker::new(1, DEFAULT_WAIT);
        let h = hash("correct horse").await;
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert_eq!(
            checker
                .verify(SecretString::from("correct horse"), h.clone())
                .await,
            Ok(true)
        );
        assert_eq!(
            checker.verify(SecretString::from("correct hors"), h).await,
            Ok(false)
        );
        assert_eq!(
            checker
                .verify(SecretString::from("x"), "not a hash".into())
                .await,
            Ok(false)
        );
    }

    #[test]
    fn hashes_made_with_other_parameters_verify_and_greedy_ones_do_not() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0c2FsdA").unwrap();
        let small = Params::new(8 * 1024, 2, 1, None).unwrap();
        let hash = Argon2::new(Algorithm::Argon2i, Version::V0x13, small)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert_eq!(verify_in_place(b"pw", &hash), Some(true));
        assert_eq!(verify_in_place(b"pW", &hash), Some(false));
        // A stored hash asking for 1 GiB is not run at all.
        let greedy = hash.replace("m=8192", "m=1048576");
        assert_eq!(verify_in_place(b"pw", &greedy), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn callers_beyond_the_verifiers_wait_briefly_then_hear_busy() {
        // One verifier, a wait shorter than one verification: of many callers at once, the
        // first is checked and the ones that would have to queue are turned away quickly.
        let checker = Arc::new(PasswordChecker::new(1, Duration::from_millis(1)));
        let h = hash("pw").await;
        let (ok, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (checker, h, ok, busy) = (checker.clone(), h.clone(), ok.clone(), busy.clone());
                tokio::spawn(async move {
                    match checker.verify(SecretString::from("pw"), h).await {
                        Ok(true) => ok.fetch_add(1, Ordering::SeqCst),
                        Ok(false) => panic!("the right password was refused"),
                        Err(CheckError::Busy) => busy.fetch_add(1, Ordering::SeqCst),
                    };
                })
            })
            .collect();
        for c in calls {
            c.await.unwrap();
        }
        let (ok, busy) = (ok.load(Ordering::SeqCst), busy.load(Ordering::SeqCst));
        assert_eq!(ok + busy, 16);
        assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    }
}
