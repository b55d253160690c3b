//! Customer passwords: Argon2id (RFC 9106 / OWASP parameters) on the blocking pool, with a bounded number of
//! hashes at once so a burst of sign-ins queues instead of exhausting memory and CPU (SPEC 4).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use latchkey_core::secret::Secret;
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

/// The shortest and longest password accepted at sign-up.
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified when the account does not exist so that timing does not tell.
    dummy: Arc<OnceCell<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Join,
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
    pub fn new(concurrency: usize) -> Self {
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    /// Hashes a new password (Argon2id, random salt, PHC string).
    pub async fn hash(&self, password: &Secret) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Join)?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_blocking(password.expose()))
            .await
            .map_err(|_| PasswordError::Join)?
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
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Join)?;
        let password = password.clone();
        let ok = tokio::task::spawn_blocking(move || verify_blocking(password.expose(), &phc))
            .await
            .map_err(|_| PasswordError::Join)?;
        Ok(ok && real)
    }
}
