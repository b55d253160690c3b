//! `/account`: the customer's profile (name, postal code; the email address changes by a mailed code), password and sessions (SPEC 2.6). Every change
//! is checked in full before anything is written; a password change needs the current password (counted against
//! the sign-in rate limit) and ends every other session; "Sign out everywhere" ends them all. The forms' CSRF
//! tokens are checked by the web layer (`browser::account`) before these flows run.

use super::signin::{check_password, check_profile};
use crate::app::AppState;
use crate::flows::activity::{self, Activity, Origin};
use crate::flows::error::Failure;
use crate::flows::SignedIn;
use crate::limits::{self, Bucket};
use crate::store::{CodeEffect, CodePurpose, CodeRedeemed, DeleteUser, User};
use latchkey_core::secret::{Digest, Kind, Secret};

/// The account page's path: where the browser comes back to after signing in.
pub const PAGE: &str = "/account";

/// The session's name in forms: a MAC of its stored hash, so the page never shows the hash itself.
fn handle(state: &AppState, id_hash: &Digest) -> String {
    state
        .hasher
        .mac_b64(Kind::Session, &[b"session-handle", id_hash])
}

/// One of the customer's signed-in sessions, as the page lists it.
pub struct SessionView {
    /// A MAC of the session's stored hash, naming it in the sign-out form.
    pub handle: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// The session of the browser looking at the page.
    pub current: bool,
}

/// `GET /account`: the customer's live sessions (the profile is `signed_in.session.user`).
pub async fn sessions(state: &AppState, signed_in: &SignedIn) -> Result<Vec<SessionView>, Failure> {
    let now = state.clock.now();
    let sessions = state
        .store
        .list_sessions(&signed_in.session.user.id, now)
        .await?;
    Ok(sessions
        .iter()
        .map(|s| SessionView {
            handle: handle(state, &s.id_hash),
            auth_time: s.auth_time,
            expires_at: s.expires_at,
            current: s.id_hash == signed_in.id_hash,
        })
        .collect())
}

/// The profile form's fields (trimmed; the email lowercase).
pub struct ProfileInput<'a> {
    pub name: &'a str,
    /// Empty: none.
    pub postal_code: &'a str,
}

/// How a profile change ended.
pub enum ProfileOutcome {
    Saved,
    /// A field breaks the rules: nothing was written.
    Invalid {
        message: &'static str,
    },
    /// The account is gone: sign in again.
    SignInFirst,
}

/// `POST /account/profile`.
pub async fn update_profile(
    state: &AppState,
    signed_in: &SignedIn,
    input: ProfileInput<'_>,
) -> Result<ProfileOutcome, Failure> {
    if let Err(message) = check_profile(input.name, input.postal_code) {
        return Ok(ProfileOutcome::Invalid { message });
    }
    let postal_code = Some(input.postal_code).filter(|p| !p.is_empty());
    Ok(
        if state
            .store
            .update_user_profile(&signed_in.session.user.id, input.name, postal_code)
            .await?
        {
            ProfileOutcome::Saved
        } else {
            ProfileOutcome::SignInFirst
        },
    )
}

/// What the current password, asked again before a change, says.
enum Current {
    Right,
    Wrong,
    /// Past the per-account limit on guessing it: try again after this many seconds.
    Throttled(i64),
}

/// Checks the current password under the per-account limit: only whoever holds this session can guess here.
/// Counted before the (costly) check, so parallel guesses cannot pass the limit together; refunded when right.
async fn check_current_password(
    state: &AppState,
    user: &User,
    password: &Secret,
) -> Result<Current, Failure> {
    let bucket = [Bucket::new(
        format!("password:account:{}", user.id),
        state.config.signin_limit,
        state.config.signin_window,
    )];
    if let Some(wait) = limits::hit(state, &bucket).await? {
        return Ok(Current::Throttled(wait));
    }
    if !state
        .passwords
        .verify(password, Some(&user.password_hash))
        .await?
    {
        return Ok(Current::Wrong);
    }
    limits::refund(state, &bucket).await?;
    Ok(Current::Right)
}

/// How a password change ended.
pub enum PasswordOutcome {
    /// Changed; every other session ended.
    Changed,
    /// A field is missing or breaks the rules, or the current password is wrong: nothing was written.
    Invalid { message: &'static str },
    /// The password changed elsewhere meanwhile: nothing was written.
    Conflict { message: &'static str },
    /// Past the limit on guessing the current password: try again after `wait` seconds.
    Throttled { wait: i64 },
}

/// `POST /account/password`: the current password, then the new one; other sessions end.
pub async fn change_password(
    state: &AppState,
    signed_in: &SignedIn,
    current_password: &Secret,
    new_password: &Secret,
    origin: &Origin,
) -> Result<PasswordOutcome, Failure> {
    let user = &signed_in.session.user;
    if current_password.expose().is_empty()
        || current_password.expose().len() > crate::password::MAX_PASSWORD_LEN
    {
        return Ok(PasswordOutcome::Invalid {
            message: "Enter your current password.",
        });
    }
    if let Err(message) = check_password(new_password.expose()) {
        return Ok(PasswordOutcome::Invalid { message });
    }
    match check_current_password(state, user, current_password).await? {
        Current::Right => {}
        Current::Wrong => {
            return Ok(PasswordOutcome::Invalid {
                message: "Your current password is not correct.",
            })
        }
        Current::Throttled(wait) => return Ok(PasswordOutcome::Throttled { wait }),
    }
    let new_hash = state.passwords.hash(new_password).await?;
    let changed = state
        .store
        .change_password(
            &user.id,
            &user.password_hash,
            &new_hash,
            Some(&signed_in.id_hash),
        )
        .await?;
    if changed {
        activity::record(state, &user.id, Activity::PasswordChanged, origin).await?;
    }
    Ok(if changed {
        PasswordOutcome::Changed
    } else {
        PasswordOutcome::Conflict {
            message:
                "Your password was changed somewhere else meanwhile. Enter your current password again.",
        }
    })
}

/// How ending one session ended.
pub enum EndSessionOutcome {
    /// Another browser is signed out (or the session was already gone, or never this customer's).
    Ended,
    /// This very browser's session ended: it is signed out here.
    EndedHere,
}

/// `POST /account/sessions/end`: signs one browser out, named by its `handle`.
pub async fn end_session(
    state: &AppState,
    signed_in: &SignedIn,
    handle: &str,
) -> Result<EndSessionOutcome, Failure> {
    let user_id = &signed_in.session.user.id;
    let sessions = state
        .store
        .list_sessions(user_id, state.clock.now())
        .await?;
    let Some(target) = sessions.iter().find(|s| {
        state
            .hasher
            .verify_b64(Kind::Session, &[b"session-handle", &s.id_hash], handle)
    }) else {
        // Already signed out (or never one of this customer's sessions): nothing to do.
        return Ok(EndSessionOutcome::Ended);
    };
    state
        .store
        .delete_user_session(user_id, &target.id_hash)
        .await?;
    Ok(if target.id_hash == signed_in.id_hash {
        EndSessionOutcome::EndedHere
    } else {
        EndSessionOutcome::Ended
    })
}

/// `POST /account/sessions/end-all`: "Sign out everywhere", this browser included.
pub async fn end_all_sessions(
    state: &AppState,
    signed_in: &SignedIn,
    origin: &Origin,
) -> Result<(), Failure> {
    let user_id = &signed_in.session.user.id;
    state.store.delete_user_sessions(user_id).await?;
    activity::record(state, user_id, Activity::SignedOutEverywhere, origin).await?;
    Ok(())
}

/// How deleting the account ended.
pub enum DeleteOutcome {
    /// Gone: every token, consent, session and device link with it.
    Deleted,
    /// The password is missing or wrong, or the box is not ticked: nothing was deleted.
    Invalid { message: &'static str },
    /// The customer owns apps: nothing was deleted.
    OwnsApps { count: i64 },
    /// Past the limit on guessing the current password.
    Throttled { wait: i64 },
}

/// `POST /account/delete`: the current password again and a ticked box, then everything goes at once (SPEC 2.6).
/// The address may sign up again; as a new account it gets new pairwise ids.
pub async fn delete_account(
    state: &AppState,
    signed_in: &SignedIn,
    current_password: &Secret,
    confirmed: bool,
) -> Result<DeleteOutcome, Failure> {
    let user = &signed_in.session.user;
    if current_password.expose().is_empty()
        || current_password.expose().len() > crate::password::MAX_PASSWORD_LEN
    {
        return Ok(DeleteOutcome::Invalid {
            message: "Enter your current password to delete your account.",
        });
    }
    if !confirmed {
        return Ok(DeleteOutcome::Invalid {
            message: "Tick the box to confirm that your account is to be deleted.",
        });
    }
    match check_current_password(state, user, current_password).await? {
        Current::Right => {}
        Current::Wrong => {
            return Ok(DeleteOutcome::Invalid {
                message: "Your current password is not correct.",
            })
        }
        Current::Throttled(wait) => return Ok(DeleteOutcome::Throttled { wait }),
    }
    delete_user(state, user).await
}

/// Deletes `user` at once (the account page, `latchkey user delete`), and tells the address.
pub async fn delete_user(state: &AppState, user: &User) -> Result<DeleteOutcome, Failure> {
    match state.store.delete_user(&user.id, state.clock.now()).await? {
        DeleteUser::OwnsApps(count) => Ok(DeleteOutcome::OwnsApps { count }),
        DeleteUser::Unknown | DeleteUser::Deleted => {
            tracing::info!(
                event = "account_deleted",
                user = %user.id,
                "security activity"
            );
            state
                .queue_mail(crate::mail::Mail {
                    to: user.email.clone(),
                    kind: "account_deleted",
                    subject: format!("Your {} account is deleted", state.config.operator_name()),
                    before: vec![
                        "Your account and everything it held are deleted: your profile, the apps you allowed, your \
                         sessions and your security activity. Apps you signed in to can no longer use it."
                            .into(),
                    ],
                    code: None,
                    link: None,
                    after: vec![
                        "If you did not do this, someone who knew your password did: you can create a new account \
                         with this address."
                            .into(),
                    ],
                })
                .await?;
            Ok(DeleteOutcome::Deleted)
        }
    }
}

/// `POST /account/export`: the customer's data as JSON (SPEC 2.6): profile, allowed apps, sessions, activity. No
/// secret: no password hash, no token, session or code hash.
pub async fn export(state: &AppState, signed_in: &SignedIn) -> Result<serde_json::Value, Failure> {
    let user = &signed_in.session.user;
    let now = state.clock.now();
    let mut apps = Vec::new();
    for consent in state.store.list_consents(&user.id).await? {
        let name = state
            .store
            .find_client(&consent.client_id)
            .await?
            .map(|c| c.name);
        apps.push(serde_json::json!({
            "client_id": consent.client_id,
            "name": name,
            "scopes": consent.scopes.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            "allowed_at": consent.created_at,
            "updated_at": consent.updated_at,
        }));
    }
    let sessions: Vec<_> = state
        .store
        .list_sessions(&user.id, now)
        .await?
        .iter()
        .map(|s| {
            serde_json::json!({
                "started_at": s.created_at,
                "signed_in_at": s.auth_time,
                "expires_at": s.expires_at,
                "this_browser": s.id_hash == signed_in.id_hash,
            })
        })
        .collect();
    let activity: Vec<_> = state
        .store
        .list_events(&user.id, 10_000)
        .await?
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "at": e.at,
                "event": e.kind,
                "what": crate::flows::activity::describe(&e.kind, e.detail.as_deref()),
                "address": e.ip,
                "browser": e.user_agent,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "exported_at": now,
        "issuer": state.issuer,
        "profile": {
            "name": user.name,
            "email": user.email,
            "email_verified": user.email_verified,
            "postal_code": user.postal_code,
            "created_at": user.created_at,
        },
        "allowed_apps": apps,
        "sessions": sessions,
        "activity": activity,
    }))
}

/// How asking to change the address ended.
pub enum EmailChangeOutcome {
    /// A code went to the new address (or, if another account has it, a notice to that account, with the same
    /// answer here): the id of the code this browser waits for.
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

/// `POST /account/email`: the new address and the current password (SPEC 2.6). Nothing changes until the code
/// mailed to the new address is entered; the old address is told now and when it happens.
pub async fn request_email_change(
    state: &AppState,
    signed_in: &SignedIn,
    new_email: &str,
    current_password: &Secret,
) -> Result<EmailChangeOutcome, Failure> {
    let user = &signed_in.session.user;
    if let Err(message) = crate::flows::signin::check_email(new_email) {
        return Ok(EmailChangeOutcome::Invalid { message });
    }
    if new_email == user.email {
        return Ok(EmailChangeOutcome::Invalid {
            message: "That is already your address.",
        });
    }
    if current_password.expose().is_empty()
        || current_password.expose().len() > crate::password::MAX_PASSWORD_LEN
    {
        return Ok(EmailChangeOutcome::Invalid {
            message: "Enter your current password to change your address.",
        });
    }
    match check_current_password(state, user, current_password).await? {
        Current::Right => {}
        Current::Wrong => {
            return Ok(EmailChangeOutcome::Invalid {
                message: "Your current password is not correct.",
            })
        }
        Current::Throttled(wait) => return Ok(EmailChangeOutcome::Throttled { wait }),
    }
    let mails = [Bucket::new(format!("email-change:{}", user.id), 5, 3600)];
    if let Some(wait) = limits::hit(state, &mails).await? {
        return Ok(EmailChangeOutcome::Throttled { wait });
    }
    let operator = state.config.operator_name();
    let taken = state.store.find_user_by_email(new_email).await?.is_some();
    let code_id = if taken {
        // No enumeration: the same answer; the address's owner hears of it instead.
        state
            .queue_mail(crate::mail::Mail {
                to: new_email.to_owned(),
                kind: "email_change_attempt",
                subject: format!("Someone tried to use your address at {operator}"),
                before: vec![format!(
                    "Someone signed in to another {operator} account asked to change its address to yours. Your \
                     account is unchanged, and nothing more happens."
                )],
                code: None,
                link: None,
                after: vec![],
            })
            .await?;
        crate::flows::codes::send(state, CodePurpose::Change, None, new_email, |_| None).await?
    } else {
        crate::flows::codes::send(
            state,
            CodePurpose::Change,
            Some(&user.id),
            new_email,
            |fresh| {
                Some(crate::mail::Mail {
                    to: new_email.to_owned(),
                    kind: "email_change",
                    subject: format!("Confirm your new {operator} address"),
                    before: vec![format!(
                        "Enter this code to make this the address of your {operator} account:"
                    )],
                    code: Some(fresh.code.clone()),
                    link: Some(("Or open this link".into(), fresh.link.clone())),
                    after: vec!["The code works once, for 15 minutes.".into()],
                })
            },
        )
        .await?
    };
    state
        .queue_mail(crate::mail::Mail {
            to: user.email.clone(),
            kind: "email_change_notice",
            subject: format!("A change of your {operator} address was asked"),
            before: vec![format!(
                "Someone signed in to your account asked to change its address to {new_email}. It changes only \
                 once the code sent there is entered."
            )],
            code: None,
            link: None,
            after: vec!["If this was not you, change your password now.".into()],
        })
        .await?;
    Ok(EmailChangeOutcome::Sent { code_id })
}

/// How entering the code for a new address ended.
pub enum EmailConfirmOutcome {
    Changed,
    Wrong {
        tries_left: i64,
    },
    Locked,
    Gone,
    /// Another account took the address meanwhile: nothing changed.
    Taken,
}

/// `POST /account/email/verify`: the code (or link) for the new address.
pub async fn confirm_email_change(
    state: &AppState,
    signed_in: &SignedIn,
    presented: crate::flows::codes::Presented<'_>,
    origin: &Origin,
) -> Result<EmailConfirmOutcome, Failure> {
    let user = &signed_in.session.user;
    let outcome =
        crate::flows::codes::redeem(state, presented, CodePurpose::Change, CodeEffect::Apply)
            .await?;
    let code = match outcome {
        CodeRedeemed::Done(code) => code,
        CodeRedeemed::Wrong { tries_left } => return Ok(EmailConfirmOutcome::Wrong { tries_left }),
        CodeRedeemed::Locked => return Ok(EmailConfirmOutcome::Locked),
        CodeRedeemed::Gone => return Ok(EmailConfirmOutcome::Gone),
        CodeRedeemed::EmailTaken => return Ok(EmailConfirmOutcome::Taken),
    };
    if code.user_id.as_deref() != Some(user.id.as_str()) {
        // Another account's link, opened in this browser: its owner's mailbox proved the address all the same.
        return Ok(EmailConfirmOutcome::Changed);
    }
    activity::record(state, &user.id, Activity::EmailChanged, origin).await?;
    let operator = state.config.operator_name();
    state
        .queue_mail(crate::mail::Mail {
            to: user.email.clone(),
            kind: "email_changed",
            subject: format!("Your {operator} address was changed"),
            before: vec![format!(
                "The address of your {operator} account is now {}. This address no longer signs in to it.",
                code.email
            )],
            code: None,
            link: None,
            after: vec!["If this was not you, tell the operator at once.".into()],
        })
        .await?;
    Ok(EmailConfirmOutcome::Changed)
}
