//! Email verification (SPEC 2.8, 2.1): the mails sign-up sends, the code page's outcomes, and new codes on
//! request (limited per address and per client address, SPEC 4). The web layer (`browser::verify`) turns these
//! outcomes into pages, redirects and cookies.

use crate::app::AppState;
use crate::flows::codes::{self, Presented};
use crate::flows::error::Failure;
use crate::flows::signin::start_session;
use crate::flows::SignedIn;
use crate::limits::{self, Bucket};
use crate::mail::Mail;
use crate::store::{CodeEffect, CodePurpose, CodeRedeemed, EmailCode};
use latchkey_core::secret::Secret;

fn verify_mail(state: &AppState, email: &str, fresh: &codes::FreshCode) -> Mail {
    Mail {
        to: email.to_owned(),
        kind: "verify",
        subject: format!("Your {} verification code", state.config.operator_name()),
        before: vec!["Enter this code to verify your email address:".into()],
        code: Some(fresh.code.clone()),
        link: Some((fresh.link.clone(), "Or open this link to verify it".into())),
        after: vec![
            "The code expires in 15 minutes.".into(),
            "If you did not ask for this, ignore this mail.".into(),
        ],
    }
}

/// Mails a verification code for the account `user_id` at `email`; returns the code's id.
pub async fn send_verify(
    state: &AppState,
    user_id: Option<&str>,
    email: &str,
) -> Result<String, Failure> {
    codes::send(state, CodePurpose::Verify, user_id, email, |fresh| {
        Some(verify_mail(state, email, fresh))
    })
    .await
}

/// Sign-up with an address that has an account: a decoy code (never matches), and a mail telling the owner.
pub async fn send_signup_attempt(state: &AppState, email: &str) -> Result<String, Failure> {
    let signin = format!("{}/ap/signin", state.issuer);
    codes::send(state, CodePurpose::Verify, None, email, |_| {
        Some(Mail {
            to: email.to_owned(),
            kind: "signup_attempt",
            subject: format!(
                "Someone tried to create a {} account with your address",
                state.config.operator_name()
            ),
            before: vec![
                "Someone tried to create an account with your email address, which already has one.".into(),
                format!("If it was you, sign in or reset your password: {signin}"),
            ],
            code: None,
            link: None,
            after: vec!["If it was not you, ignore this mail: nothing changed.".into()],
        })
    })
    .await
}

/// The code the code page is about: the browser's pending code, else a signed-in unverified customer's newest
/// live one.
pub async fn current_code(
    state: &AppState,
    pending: Option<&str>,
    signed_in: Option<&SignedIn>,
) -> Result<Option<EmailCode>, Failure> {
    if let Some(id) = pending {
        if let Some(code) = state.store.find_email_code(id).await? {
            if code.purpose == CodePurpose::Verify {
                return Ok(Some(code));
            }
        }
    }
    match signed_in {
        Some(s) if !s.session.user.email_verified => Ok(state
            .store
            .live_email_code(&s.session.user.id, CodePurpose::Verify, state.clock.now())
            .await?),
        _ => Ok(None),
    }
}

/// How entering a code (or confirming a link) ended.
pub enum VerifyOutcome {
    /// Verified, and this browser started the sign-up: a new session.
    SignedIn {
        session_token: Secret,
    },
    /// Verified, and this browser is signed in as that customer: carry on.
    Continue,
    /// Verified, but the browser is someone else's or nobody's: sign in to continue.
    VerifiedElsewhere,
    Wrong {
        tries_left: i64,
    },
    Locked,
    Gone,
}

/// `POST /ap/verify`.
pub async fn submit(
    state: &AppState,
    pending: Option<&str>,
    signed_in: Option<&SignedIn>,
    presented: Presented<'_>,
) -> Result<VerifyOutcome, Failure> {
    let outcome = codes::redeem(state, presented, CodePurpose::Verify, CodeEffect::Apply).await?;
    Ok(match outcome {
        CodeRedeemed::Done(code) => {
            let Some(user_id) = code.user_id.as_deref() else {
                return Ok(VerifyOutcome::Gone);
            };
            if signed_in.is_some_and(|s| s.session.user.id == user_id) {
                VerifyOutcome::Continue
            } else if pending == Some(code.id.as_str()) {
                VerifyOutcome::SignedIn {
                    session_token: start_session(state, signed_in, user_id).await?,
                }
            } else {
                VerifyOutcome::VerifiedElsewhere
            }
        }
        CodeRedeemed::Wrong { tries_left } => VerifyOutcome::Wrong { tries_left },
        CodeRedeemed::Locked => VerifyOutcome::Locked,
        CodeRedeemed::Gone | CodeRedeemed::EmailTaken => VerifyOutcome::Gone,
    })
}

/// How asking for a new code ended.
pub enum ResendOutcome {
    Sent {
        code_id: String,
    },
    /// No code or unverified account to send one for.
    Nothing,
    Throttled {
        wait: i64,
    },
}

/// `POST /ap/verify/resend`: per address 3 per 15 minutes, per client address 10 per hour (SPEC 4).
pub async fn resend(
    state: &AppState,
    client_ip: &str,
    pending: Option<&str>,
    signed_in: Option<&SignedIn>,
) -> Result<ResendOutcome, Failure> {
    let (user_id, email) = match current_code(state, pending, signed_in).await? {
        Some(code) => (code.user_id, code.email),
        None => match signed_in {
            Some(s) if !s.session.user.email_verified => (
                Some(s.session.user.id.clone()),
                s.session.user.email.clone(),
            ),
            _ => return Ok(ResendOutcome::Nothing),
        },
    };
    let buckets = [
        Bucket::new(format!("verify:email:{email}"), 3, 900),
        Bucket::new(format!("verify:ip:{client_ip}"), 10, 3600),
    ];
    if let Some(wait) = limits::hit(state, &buckets).await? {
        return Ok(ResendOutcome::Throttled { wait });
    }
    let code_id = match user_id.as_deref() {
        Some(id) => send_verify(state, Some(id), &email).await?,
        // A decoy stays a decoy, and its owner is not mailed again.
        None => codes::send(state, CodePurpose::Verify, None, &email, |_| None).await?,
    };
    Ok(ResendOutcome::Sent { code_id })
}
