//! Customer passwords: Argon2id (RFC 9106 / OWASP parameters) on the blocking pool, behind a bounded hashing
//! queue (SPEC 4): at most `concurrency` hashes run at once, at most `queue` requests wait for one, and a request
//! that finds the line full is refused at once ([`PasswordError::Busy`], a 503 with `Retry-After`) rather than
//! holding its memory and connection in an ever longer line.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use latchkey_core::secret::Secret;
use std::sync::Arc;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The shortest and longest password accepted at sign-up.
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Clone)]
pub struct Passwords {
    /// One per request admitted: those hashing and those in line (`concurrency + queue` in all).
    places: Arc<Semaphore>,
    /// One per hash running (`concurrency`).
    hashing: Arc<Semaphore>,
    /// Places new passwords (sign-up, password changes) may take: half of them, so that a flood of sign-ups
    /// cannot keep customers from signing in.
    new_places: Arc<Semaphore>,
    /// A real hash of a random password, verified when the account does not exist so that timing does not tell.
    dummy: Arc<OnceCell<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Join,
    /// Every hashing slot is taken and the line is full: try again shortly.
    #[error("the password hashing queue is full")]
    Busy,
}

/// A request's turn to hash: its place among those admitted and a hashing slot. It moves into the blocking task,
/// so a request that gives up (its client went away) frees neither until the hash it started has finished.
pub struct Turn {
    _place: OwnedSemaphorePermit,
    _hashing: OwnedSemaphorePermit,
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

impl Passwords {
    /// `concurrency` hashes at once (at least one), and up to `queue` requests waiting for a turn.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        let places = concurrency
            .saturating_add(queue)
            .min(Semaphore::MAX_PERMITS);
        Passwords {
            new_places: Arc::new(Semaphore::new(places.div_ceil(2))),
            places: Arc::new(Semaphore::new(places)),
            hashing: Arc::new(Semaphore::new(concurrency)),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    /// Waits for a turn to hash, or refuses at once with [`PasswordError::Busy`] when the line is full. Hashing
    /// and verifying take one themselves; public so that tests can fill the queue.
    pub async fn turn(&self) -> Result<Turn, PasswordError> {
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => PasswordError::Busy,
                TryAcquireError::Closed => PasswordError::Join,
            })?;
        let hashing = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Join)?;
        Ok(Turn {
            _place: place,
            _hashing: hashing,
        })
    }

    /// Runs `job` on the blocking pool in its turn.
    async fn in_turn<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let turn = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            job()
        })
        .await
        .map_err(|_| PasswordError::Join)
    }

    /// Hashes a new password (Argon2id, random salt, PHC string), in one of the places new passwords may take.
    pub async fn hash(&self, password: &Secret) -> Result<String, PasswordError> {
        let _new = self
            .new_places
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => PasswordError::Busy,
                TryAcquireError::Closed => PasswordError::Join,
            })?;
        let password = password.clone();
        self.in_turn(move || hash_blocking(password.expose()))
            .await?
    }

    /// Checks a password against a stored hash; with `None` (no such account) spends the same time and fails.
    pub async fn verify(
        &self,
        password: &Secret,
        phc: Option<&str>,
    ) -> Result<bool, PasswordError> {
        let (phc, real) = match phc {
            Some(p) => (p.to_owned(), true),
            None => {
                let dummy = self
                    .dummy
                    .get_or_try_init(|| async {
                        let random = latchkey_core::secret::mint(&mut rand::thread_rng(), "");
                        self.hash(&random).await
                    })
                    .await?;
                (dummy.clone(), false)
            }
        };
        let password = password.clone();
        let ok = self
            .in_turn(move || verify_blocking(password.expose(), &phc))
            .await?;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::Poll;

    /// Polls `fut` once: what it gives without waiting, if anything.
    async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
    }

    /// Whether `fut` is refused with `Busy` at once (a caller that waits instead fails the test, not hangs it).
    async fn refused_at_once<T>(fut: impl Future<Output = Result<T, PasswordError>>) -> bool {
        matches!(
            poll_once(&mut Box::pin(fut)).await,
            Poll::Ready(Err(PasswordError::Busy))
        )
    }

    #[tokio::test]
    async fn past_the_queue_callers_are_refused_at_once_and_admitted_again_when_it_moves() {
        let passwords = Passwords::new(1, 1);
        let hashing = passwords.turn().await.unwrap();
        // The second caller waits in line for the one hashing slot.
        let mut waiting = Box::pin(passwords.turn());
        assert!(poll_once(&mut waiting).await.is_pending());
        // The third finds the line full: refused at once, whatever it came to do.
        let password = Secret::new("correct horse battery");
        assert!(refused_at_once(passwords.turn()).await);
        assert!(refused_at_once(passwords.hash(&password)).await);
        assert!(refused_at_once(passwords.verify(&password, None)).await);
        // When the hash finishes, the one in line gets the slot, and there is room in line again.
        drop(hashing);
        let second = waiting.await.unwrap();
        let mut third = Box::pin(passwords.turn());
        assert!(poll_once(&mut third).await.is_pending());
        drop(second);
        drop(third.await.unwrap());
        let phc = passwords.hash(&password).await.unwrap();
        assert!(passwords.verify(&password, Some(&phc)).await.unwrap());
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_the_line() {
        let passwords = Passwords::new(1, 1);
        let hashing = passwords.turn().await.unwrap();
        let mut waiting = Box::pin(passwords.turn());
        assert!(poll_once(&mut waiting).await.is_pending());
        drop(waiting);
        let mut next = Box::pin(passwords.turn());
        assert!(
            poll_once(&mut next).await.is_pending(),
            "the place of the caller that left is free"
        );
        assert!(refused_at_once(passwords.turn()).await);
        drop(hashing);
        next.await.unwrap();
    }

    #[tokio::test]
    async fn with_no_queue_only_the_hashing_slots_are_admitted() {
        let passwords = Passwords::new(2, 0);
        let one = passwords.turn().await.unwrap();
        let two = passwords.turn().await.unwrap();
        assert!(refused_at_once(passwords.turn()).await);
        drop(one);
        let _three = passwords.turn().await.unwrap();
        drop(two);
    }

    #[test]
    fn absurd_sizes_do_not_panic() {
        let _ = Passwords::new(0, usize::MAX);
        let _ = Passwords::new(usize::MAX, usize::MAX);
    }
}
