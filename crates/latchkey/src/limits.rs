//! Abuse limits on work a stranger can cause (SPEC 4): sign-in, sign-up, code pairs, user-code entry. Each attempt
//! is counted before the work is done, in the store that every node shares, so parallel attempts cannot pass a
//! limit together; an attempt that turns out not to count (a correct password or code) is refunded. Buckets are
//! per address, per account and address, per app and address or per session, never global, so that one
//! stranger's attempts never refuse someone else's.

use crate::app::AppState;
use crate::store::StoreResult;

/// One counter: its key, how many hits its window allows, and the window's length in seconds.
pub struct Bucket {
    pub key: String,
    pub limit: i64,
    pub window: i64,
}

impl Bucket {
    pub fn new(key: String, limit: i64, window: i64) -> Self {
        Bucket { key, limit, window }
    }
}

/// Counts one attempt in every bucket. `Some(seconds to wait)` if any is past its limit (the longest window of
/// those), `None` if the attempt may go ahead.
pub async fn hit(state: &AppState, buckets: &[Bucket]) -> StoreResult<Option<i64>> {
    let now = state.clock.now();
    let mut wait = None;
    for b in buckets {
        let count = state.store.hit_rate_limit(&b.key, b.window, now).await?;
        if count > b.limit {
            wait = Some(wait.unwrap_or(0).max(b.window));
        }
    }
    Ok(wait)
}

/// Takes back the attempt [`hit`] counted.
pub async fn refund(state: &AppState, buckets: &[Bucket]) -> StoreResult<()> {
    let now = state.clock.now();
    for b in buckets {
        state.store.refund_rate_limit(&b.key, b.window, now).await?;
    }
    Ok(())
}
