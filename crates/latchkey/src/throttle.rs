//! The failure throttle of the client-authenticated API (SPEC 4: rate limits on the token endpoints): failed
//! token, introspection and revocation requests (`invalid_client`, `invalid_grant`) are counted per app and
//! address, and per address, in the shared store, so every node counts alike; past a limit the bucket is refused
//! with 429 and `Retry-After` until its window ends. One app's or one address's failures never refuse another
//! app's requests from another address. Successful requests cost nothing: the counters are written only on a
//! failure, and a refusal is remembered by the node that saw the limit crossed (any other node learns it at the
//! bucket's next failure there), so the hot path reads one atomic flag.

use crate::store::Store;
use latchkey_core::error::ErrorCode;
use latchkey_core::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct Throttle {
    /// Failures an app and address may have in a window (the address alone may have five times as many).
    limit: i64,
    /// The window's length, in seconds; a refused bucket waits this long.
    window: i64,
    /// Whether `refused` may hold anything: the hot path checks only this.
    any: AtomicBool,
    /// Buckets refused, and until when.
    refused: Mutex<HashMap<String, Timestamp>>,
}

/// Whether a failure counts: a wrong secret or a wrong code, refresh token or device code. Device polls that are
/// merely early (`authorization_pending`, `slow_down`) do not.
pub fn counts(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::InvalidClient | ErrorCode::InvalidGrant)
}

/// The buckets of a request: its app (the client id it presents, whether or not it exists) and address, and its
/// address alone (which allows five times as many, for an address that serves several apps' servers).
pub struct Buckets<'a> {
    address: &'a str,
    client_id: Option<&'a str>,
}

impl<'a> Buckets<'a> {
    pub fn new(address: &'a str, client_id: Option<&'a str>) -> Self {
        // A client id is short; a longer "id" is not worth a bucket of its own.
        let client_id = client_id.map(|id| id.get(..100).unwrap_or(id));
        Buckets { address, client_id }
    }

    fn keys(&self) -> [String; 2] {
        [
            format!(
                "token:app-ip:{}|{}",
                self.client_id.unwrap_or("-"),
                self.address
            ),
            format!("token:ip:{}", self.address),
        ]
    }
}

impl Throttle {
    pub fn new(limit: i64, window: i64) -> Self {
        Throttle {
            limit,
            window,
            any: AtomicBool::new(false),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any bucket may be refused: the one read a request costs while nothing is.
    pub fn refusing(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Seconds the request must still wait, if one of its buckets is refused.
    pub fn wait(&self, buckets: &Buckets<'_>, now: Timestamp) -> Option<i64> {
        if !self.refusing() {
            return None;
        }
        let mut refused = self.refused.lock().ok()?;
        refused.retain(|_, until| *until > now);
        if refused.is_empty() {
            self.any.store(false, Ordering::Relaxed);
        }
        buckets
            .keys()
            .iter()
            .filter_map(|k| refused.get(k).map(|until| until - now))
            .max()
    }

    /// Counts a failure; the seconds to wait if that crossed a limit.
    pub async fn failed(
        &self,
        store: &dyn Store,
        buckets: &Buckets<'_>,
        now: Timestamp,
    ) -> Option<i64> {
        let window = self.window;
        let mut crossed = None;
        for (key, limit) in buckets.keys().into_iter().zip([self.limit, self.limit * 5]) {
            let count = match store.hit_rate_limit(&key, window, now).await {
                Ok(count) => count,
                Err(e) => {
                    // The failure itself is still answered; only its counting is lost.
                    tracing::error!(error = %e, "token failure count failed");
                    return None;
                }
            };
            if count > limit {
                if let Ok(mut refused) = self.refused.lock() {
                    refused.insert(key, now + window);
                    self.any.store(true, Ordering::Relaxed);
                }
                crossed = Some(window);
            }
        }
        crossed
    }
}
