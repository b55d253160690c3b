//! The failure throttle of the client-authenticated API (SPEC 4: rate limits on the token endpoints): failed
//! token, introspection and revocation requests (`invalid_client`, `invalid_grant`) are counted per source address
//! in the shared store, so every node counts alike; past the limit the address is refused with 429 and
//! `Retry-After` until its window ends. Successful requests cost nothing: the counter is written only on a
//! failure, and the refusal is remembered by the node that saw the limit crossed (any other node learns it at the
//! address's next failure there), so the hot path reads one atomic flag.

use crate::app::AppState;
use latchkey_core::error::ErrorCode;
use latchkey_core::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Throttle {
    /// Whether `refused` may hold anything: the hot path checks only this.
    any: AtomicBool,
    /// Addresses refused, and until when.
    refused: Mutex<HashMap<String, Timestamp>>,
}

/// Whether a failure counts against the address: a wrong secret or a wrong code, refresh token or device code.
/// Device polls that are merely early (`authorization_pending`, `slow_down`) do not.
pub fn counts(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::InvalidClient | ErrorCode::InvalidGrant)
}

impl Throttle {
    /// Seconds the address must still wait, if it is refused.
    pub fn wait(&self, address: &str, now: Timestamp) -> Option<i64> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let mut refused = self.refused.lock().ok()?;
        refused.retain(|_, until| *until > now);
        if refused.is_empty() {
            self.any.store(false, Ordering::Relaxed);
        }
        refused.get(address).map(|until| until - now)
    }

    /// Counts a failure of `address`; the seconds to wait if that crossed the limit.
    pub async fn failed(&self, state: &AppState, address: &str) -> Option<i64> {
        let now = state.clock.now();
        let window = state.config.token_failure_window;
        let count = match state
            .store
            .hit_rate_limit(&format!("token:ip:{address}"), window, now)
            .await
        {
            Ok(count) => count,
            Err(e) => {
                // The failure itself is still answered; only its counting is lost.
                tracing::error!(error = %e, "token failure count failed");
                return None;
            }
        };
        if count <= state.config.token_failure_limit {
            return None;
        }
        if let Ok(mut refused) = self.refused.lock() {
            refused.insert(address.to_owned(), now + window);
            self.any.store(true, Ordering::Relaxed);
        }
        Some(window)
    }
}
