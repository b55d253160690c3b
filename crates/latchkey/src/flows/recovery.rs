//! "Forgot your password?" (SPEC 2.8): the address always gets the same answer; if an account has it, a mailed
//! code (and link) lets the customer choose a new password, which ends every session of the account, signs this
//! browser in afresh and is confirmed by mail. An address with no account gets a decoy code that never matches,
//! so that nothing on the page tells the two apart. (Second factors, once an account has them, still apply at its
//! next sign-in: a reset replaces the password only.)

use crate::app::AppState;
use crate::flows::activity::{self, Activity, Origin};
use crate::flows::codes::{self, Presented};
use crate::flows::error::Failure;
use crate::flows::signin::{check_email, check_password, start_session};
use crate::limits::{self, Bucket};
use crate::mail::Mail;
use crate::store::{CodeEffect, CodePurpose, CodeRedeemed};
use latchkey_core::secret::Secret;

/// How asking for a reset code ended.
pub enum ForgotOutcome {
    /// Whether or not an account has the address: the id of the code this browser now waits for.
    Sent {
        code_id: String,
    },
    Invalid {
        message: &'static str,
    },
    Throttled {
        wait: i64,
    },
}

/// `POST /ap/forgot`.
pub async fn forgot(
    state: &AppState,
    client_ip: &str,
    email: &str,
) -> Result<ForgotOutcome, Failure> {
    if let Err(message) = check_email(email) {
        return Ok(ForgotOutcome::Invalid { message });
    }
    // Per address and per client address (SPEC 4): a stranger cannot flood a mailbox or the mail server.
    let buckets = [
        Bucket::new(format!("reset:email:{email}"), 3, 900),
        Bucket::new(format!("reset:ip:{client_ip}"), 10, 3600),
    ];
    if let Some(wait) = limits::hit(state, &buckets).await? {
        return Ok(ForgotOutcome::Throttled { wait });
    }
    let user = state
        .store
        .find_user_by_email(email)
        .await?
        .filter(|u| !u.disabled);
    let operator = state.config.operator_name();
    let code_id = codes::send(
        state,
        CodePurpose::Reset,
        user.as_ref().map(|u| u.id.as_str()),
        email,
        |fresh| {
            user.as_ref().map(|_| Mail {
                to: email.to_owned(),
                kind: "reset",
                subject: format!("Your {operator} password reset code"),
                before: vec![
                    format!("Someone asked to reset the password of your {operator} account. Enter this code to choose a new one:"),
                ],
                code: Some(fresh.code.clone()),
                link: Some(("Or open this link".into(), fresh.link.clone())),
                after: vec![
                    "The code works once, for 15 minutes.".into(),
                    "If you did not ask for this, ignore this mail: your password stays as it is.".into(),
                ],
            })
        },
    )
    .await?;
    Ok(ForgotOutcome::Sent { code_id })
}

/// How choosing a new password ended.
pub enum ResetOutcome {
    /// The password is replaced and every session ended; this browser's new session.
    Done {
        session_token: Secret,
    },
    /// The new password breaks the rules: nothing was counted or written.
    Invalid {
        message: &'static str,
    },
    Wrong {
        tries_left: i64,
    },
    Locked,
    Gone,
}

/// `POST /ap/reset`: the code (or the link's token) and the new password.
pub async fn reset(
    state: &AppState,
    presented: Presented<'_>,
    new_password: &Secret,
    origin: &Origin,
) -> Result<ResetOutcome, Failure> {
    if let Err(message) = check_password(new_password.expose()) {
        return Ok(ResetOutcome::Invalid { message });
    }
    let hash = state.passwords.hash(new_password).await?;
    let code = match codes::redeem(
        state,
        presented,
        CodePurpose::Reset,
        CodeEffect::NewPassword(&hash),
    )
    .await?
    {
        CodeRedeemed::Done(code) => code,
        CodeRedeemed::Wrong { tries_left } => return Ok(ResetOutcome::Wrong { tries_left }),
        CodeRedeemed::Locked => return Ok(ResetOutcome::Locked),
        CodeRedeemed::Gone | CodeRedeemed::EmailTaken => return Ok(ResetOutcome::Gone),
    };
    let Some(user_id) = code.user_id.as_deref() else {
        return Ok(ResetOutcome::Gone);
    };
    // Every session ended with the reset (in its transaction); this browser starts afresh.
    let session_token = start_session(state, None, user_id).await?;
    activity::record(state, user_id, Activity::PasswordReset, origin).await?;
    let operator = state.config.operator_name();
    state
        .queue_mail(Mail {
            to: code.email.clone(),
            kind: "password_changed",
            subject: format!("Your {operator} password was changed"),
            before: vec![format!(
                "The password of your {operator} account was just changed with a reset code, and every browser \
                 signed in to it was signed out."
            )],
            code: None,
            link: None,
            after: vec![format!(
                "If this was not you, reset your password again at {}/ap/forgot and tell the operator.",
                state.issuer
            )],
        })
        .await?;
    Ok(ResetOutcome::Done { session_token })
}
