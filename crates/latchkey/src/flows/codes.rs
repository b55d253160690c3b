//! Mailed codes (SPEC 2.8), the one way verification, password reset and email change send and check them: a
//! 6-digit code and a link with the same effect, 15 minutes, single use, 5 wrong tries, stored only as keyed
//! hashes (the code hashed with its row's id, so two rows never share a hash). The mail is queued in the same
//! request, before the page answers.

use crate::app::AppState;
use crate::flows::error::Failure;
use crate::mail::Mail;
use crate::store::{CodeEffect, CodeProof, CodePurpose, CodeRedeemed, NewEmailCode};
use latchkey_core::secret::{self, Kind};
use rand::Rng;

/// How long a mailed code lives.
pub const CODE_TTL_SECS: i64 = 900;

/// Where a code's link leads, by purpose (the page that takes the code).
pub fn page(purpose: CodePurpose) -> &'static str {
    match purpose {
        CodePurpose::Verify => "/ap/verify",
        CodePurpose::Reset => "/ap/reset",
        CodePurpose::Change => "/account/email/verify",
    }
}

fn code_hash(state: &AppState, id: &str, code: &str) -> secret::Digest {
    state
        .hasher
        .hash(Kind::EmailCode, &[id.as_bytes(), code.as_bytes()])
}

/// A code just made: what the mail shows. Never logged, never stored in the clear.
pub struct FreshCode {
    pub code: String,
    /// The whole link (issuer, page, token).
    pub link: String,
}

/// Makes and stores a code for `purpose` to `email` (for `user_id`, or a decoy when `None`), ending the earlier
/// ones, and queues the mail `compose` makes of it (`None`: no mail, e.g. for a decoy). Returns the code's id, the
/// handle the browser keeps (a cookie) to name it on the code page.
pub async fn send(
    state: &AppState,
    purpose: CodePurpose,
    user_id: Option<&str>,
    email: &str,
    compose: impl FnOnce(&FreshCode) -> Option<Mail>,
) -> Result<String, Failure> {
    let (id, fresh, token) = {
        let mut rng = rand::thread_rng();
        let id = latchkey_core::ids::new_internal_id(&mut rng);
        let code = format!("{:06}", rng.gen_range(0..1_000_000u32));
        let token = secret::mint(&mut rng, "");
        let link = format!("{}{}?link={}", state.issuer, page(purpose), token.expose());
        (id, FreshCode { code, link }, token)
    };
    let now = state.clock.now();
    state
        .store
        .create_email_code(
            &NewEmailCode {
                id: id.clone(),
                purpose,
                user_id: user_id.map(str::to_owned),
                email: email.to_owned(),
                code_hash: code_hash(state, &id, &fresh.code),
                link_hash: state.hasher.token(Kind::EmailLink, token.expose()),
                created_at: now,
                expires_at: now + CODE_TTL_SECS,
            },
            now,
        )
        .await?;
    if let Some(m) = compose(&fresh) {
        state.queue_mail(m).await?;
    }
    Ok(id)
}

/// What the customer typed or followed.
pub enum Presented<'a> {
    /// The digits typed on the page, for the code the browser's handle names.
    Code { id: &'a str, code: &'a str },
    /// The token of a mailed link.
    Link(&'a str),
}

/// Checks a presented code and, if right, applies its effect (see [`CodeRedeemed`]). Spaces and dashes in typed
/// digits are ignored; any other wrong input, whatever its length, is a wrong code and counts a try.
pub async fn redeem(
    state: &AppState,
    presented: Presented<'_>,
    purpose: CodePurpose,
    effect: CodeEffect<'_>,
) -> Result<CodeRedeemed, Failure> {
    let now = state.clock.now();
    let outcome = match presented {
        Presented::Code { id, code } => {
            let digits: String = code
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect();
            if id.len() > 64 {
                return Ok(CodeRedeemed::Gone);
            }
            let hash = code_hash(state, id, &digits);
            state
                .store
                .redeem_email_code(
                    CodeProof::Code {
                        id,
                        code_hash: &hash,
                    },
                    purpose,
                    effect,
                    now,
                )
                .await?
        }
        Presented::Link(token) => {
            if token.len() > 128 {
                return Ok(CodeRedeemed::Gone);
            }
            let hash = state.hasher.token(Kind::EmailLink, token);
            state
                .store
                .redeem_email_code(CodeProof::Link { link_hash: &hash }, purpose, effect, now)
                .await?
        }
    };
    Ok(outcome)
}
