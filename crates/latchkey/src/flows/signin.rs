//! Sign in, create an account, sign out (SPEC 2.6). Sign-in attempts are rate limited per account and per
//! address in the shared store, passwords are Argon2id, and a new session id is minted at every sign-in. These
//! flows decide and commit; the web layer (`browser::signin`) turns their outcomes into pages, redirects and cookies.

use crate::app::AppState;
use crate::flows::activity::{self, Activity};
use crate::flows::error::Failure;
use crate::flows::SignedIn;
use crate::limits::{self, Bucket};
use crate::metrics::OutcomeLabels;
use crate::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::store::{Created, User};
use latchkey_core::ids;
use latchkey_core::secret::{self, Kind, Secret};

/// Only local paths may be returned to after sign-in (no open redirect).
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && p.len() <= 4096
                // Visible ASCII only: it becomes a `Location` header, which nothing else may be in.
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Starts a session for `user_id` and returns its token (for the session cookie). The browser's previous session,
/// whoever's it was, ends first: a browser holds one session, and the one it leaves behind is not left alive on
/// the server.
pub async fn start_session(
    state: &AppState,
    previous: Option<&SignedIn>,
    user_id: &str,
) -> Result<Secret, Failure> {
    if let Some(previous) = previous {
        state.store.delete_session(&previous.id_hash).await?;
    }
    let token = secret::mint(&mut rand::thread_rng(), "");
    let now = state.clock.now();
    let hash = state.hasher.token(Kind::Session, token.expose());
    state
        .store
        .create_session(&hash, user_id, now, now + state.config.session_ttl)
        .await?;
    Ok(token)
}

/// A sign-in attempt: the form's fields, and whether this browser signed in to the account of `email` before.
pub struct SignInAttempt<'a> {
    /// Lowercase, trimmed.
    pub email: &'a str,
    pub password: &'a Secret,
    pub return_to: Option<&'a str>,
    /// `Browser::knows` for `email`: a browser the account knows is not counted per account.
    pub known_browser: bool,
    /// Where the attempt came from, for the account's security activity.
    pub origin: &'a crate::flows::activity::Origin,
}

/// How a sign-in ended.
pub enum SignInOutcome {
    /// Signed in: a new session, to be set as the session cookie, and where to go now.
    Started {
        session_token: Secret,
        return_to: String,
        /// The account's email (lowercase), for the known-browser cookie.
        email: String,
    },
    /// The form is incomplete or too long: nothing was counted.
    Invalid { message: &'static str },
    /// The email address or password is wrong (or the account is disabled).
    Incorrect { message: &'static str },
    /// Past the sign-in limit: try again after `wait` seconds.
    Throttled { wait: i64 },
}

/// `POST /ap/signin`. `previous` is the session the browser holds now, if any (ended when a new one starts).
pub async fn signin(
    state: &AppState,
    previous: Option<&SignedIn>,
    client_ip: &str,
    attempt: SignInAttempt<'_>,
) -> Result<SignInOutcome, Failure> {
    let password = attempt.password.expose();
    if attempt.email.is_empty()
        || password.is_empty()
        || attempt.email.len() > 254
        || password.len() > MAX_PASSWORD_LEN
    {
        return Ok(SignInOutcome::Invalid {
            message: "Enter your email address and password.",
        });
    }
    // Counted before the (costly) check, so parallel guesses cannot pass the limit together; refunded when the
    // password was right, so that only failures count. Per account and address, so that a stranger's wrong
    // guesses never lock the owner out, and per address. Per account too, against guesses spread over many
    // addresses, but never for a browser that signed in to the account before: under such an attack the owner
    // still gets in from a browser the account knows.
    let (window, limit) = (state.config.signin_window, state.config.signin_limit);
    let email = attempt.email.to_lowercase();
    let mut buckets = vec![
        Bucket::new(
            format!("signin:account-ip:{email}|{client_ip}"),
            limit,
            window,
        ),
        Bucket::new(format!("signin:ip:{client_ip}"), limit * 5, window),
    ];
    if !attempt.known_browser {
        buckets.push(Bucket::new(
            format!("signin:account:{email}"),
            limit * 10,
            window,
        ));
    }
    if let Some(wait) = limits::hit(state, &buckets).await? {
        state
            .metrics
            .signins
            .get_or_create(&OutcomeLabels {
                outcome: "throttled",
            })
            .inc();
        return Ok(SignInOutcome::Throttled { wait });
    }
    let user = state
        .store
        .find_user_by_email(attempt.email)
        .await?
        .filter(|u| !u.disabled);
    let ok = state
        .passwords
        .verify(
            attempt.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    if let (false, Some(user)) = (ok, &user) {
        // A wrong password for an existing account: the owner sees it among their security activity.
        activity::record(state, &user.id, Activity::SignInFailed, attempt.origin).await?;
    }
    match (ok, user) {
        (true, Some(user)) => {
            state
                .metrics
                .signins
                .get_or_create(&OutcomeLabels { outcome: "success" })
                .inc();
            limits::refund(state, &buckets).await?;
            let session_token = start_session(state, previous, &user.id).await?;
            activity::record(state, &user.id, Activity::SignedIn, attempt.origin).await?;
            Ok(SignInOutcome::Started {
                session_token,
                return_to: safe_return_to(attempt.return_to),
                email,
            })
        }
        _ => {
            state
                .metrics
                .signins
                .get_or_create(&OutcomeLabels { outcome: "failure" })
                .inc();
            Ok(SignInOutcome::Incorrect {
                message: "The email address or password is not correct.",
            })
        }
    }
}

/// What is wrong with a new account's fields, in words for the person filling the form.
pub fn check_new_account(
    name: &str,
    email: &str,
    password: &str,
    postal_code: &str,
) -> Result<(), &'static str> {
    check_name_and_email(name, email)?;
    check_password(password)?;
    check_postal_code(postal_code)
}

/// What is wrong with the fields of a profile (the account page): the rules of a new account.
pub fn check_profile(name: &str, postal_code: &str) -> Result<(), &'static str> {
    check_name(name)?;
    check_postal_code(postal_code)
}

fn check_name_and_email(name: &str, email: &str) -> Result<(), &'static str> {
    check_name(name)?;
    check_email(email)
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(|c| c.is_control()) {
        return Err("Enter your name (up to 100 characters).");
    }
    Ok(())
}

/// What is wrong with an email address as a form gave it (trimmed, lowercase).
pub fn check_email(email: &str) -> Result<(), &'static str> {
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        // An address Latchkey mails codes to must be one the mail library can address: otherwise the account
        // would be stored and its mail fail (a 500 after a half-done sign-up).
        && email.parse::<lettre::Address>().is_ok();
    if !valid_email {
        return Err("Enter a valid email address, like name@example.com.");
    }
    Ok(())
}

/// The rule for a new password (sign-up and password change).
pub fn check_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err("Choose a password of at least 8 characters.");
    }
    Ok(())
}

fn check_postal_code(postal_code: &str) -> Result<(), &'static str> {
    if postal_code.chars().count() > 20 || postal_code.chars().any(|c| c.is_control()) {
        return Err("Enter a postal code of up to 20 characters, or leave it empty.");
    }
    Ok(())
}

/// A new customer account: the fields of the sign-up form or of `latchkey user add`, already trimmed (the email
/// lowercase).
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub name: &'a str,
    /// Empty: none.
    pub postal_code: &'a str,
    pub password: &'a Secret,
    /// Whether the address counts as verified from the start: true only when the operator vouches for it
    /// (`latchkey user add`, the demo); sign-up proves it by a mailed code.
    pub verified: bool,
}

/// What creating an account did.
pub enum CreateUser {
    Created(User),
    /// A field breaks the rules of [`check_new_account`]: nothing was written.
    Invalid(&'static str),
    /// An account with this email address exists: nothing was written.
    AlreadyExists,
}

/// Creates a customer account: the one way an account is made (sign-up, `latchkey user add`). Checks the fields
/// with [`check_new_account`], hashes the password, and stores the account unless the email address is taken.
pub async fn create_user(
    state: &AppState,
    account: &NewAccount<'_>,
) -> Result<CreateUser, Failure> {
    if let Err(why) = check_new_account(
        account.name,
        account.email,
        account.password.expose(),
        account.postal_code,
    ) {
        return Ok(CreateUser::Invalid(why));
    }
    let password_hash = state.passwords.hash(account.password).await?;
    let user = User {
        id: ids::new_internal_id(&mut rand::thread_rng()),
        email: account.email.to_owned(),
        email_verified: account.verified,
        name: account.name.to_owned(),
        postal_code: Some(account.postal_code.to_owned()).filter(|p| !p.is_empty()),
        password_hash,
        disabled: false,
        created_at: state.clock.now(),
    };
    Ok(match state.store.create_user(&user).await? {
        Created::Created => CreateUser::Created(user),
        Created::AlreadyExists => CreateUser::AlreadyExists,
    })
}

/// How a sign-up ended.
pub enum RegisterOutcome {
    /// A code was mailed (to a new account, or a decoy when the address has an account: the same answer, so that
    /// sign-up does not tell who has an account). No session yet: the browser proves the address first.
    CodeSent { code_id: String, return_to: String },
    /// A field breaks the rules: nothing was counted or written.
    Invalid { message: &'static str },
    /// Past the sign-up limit: try again after `wait` seconds.
    Throttled { wait: i64 },
}

/// `POST /ap/register`. An address that has an account gets the same answer as a new one (a decoy code, and a
/// mail to its owner); its account and password are not touched.
pub async fn register(
    state: &AppState,
    client_ip: &str,
    account: NewAccount<'_>,
    return_to: Option<&str>,
) -> Result<RegisterOutcome, Failure> {
    if let Err(message) = check_new_account(
        account.name,
        account.email,
        account.password.expose(),
        account.postal_code,
    ) {
        return Ok(RegisterOutcome::Invalid { message });
    }
    // Every sign-up costs a password hash: counted per address before it is computed (SPEC 4).
    let bucket = [Bucket::new(
        format!("signup:ip:{client_ip}"),
        state.config.signup_limit,
        state.config.signup_window,
    )];
    if let Some(wait) = limits::hit(state, &bucket).await? {
        return Ok(RegisterOutcome::Throttled { wait });
    }
    // `create_user` hashes the password in both cases, so a taken address costs the same time as a new one.
    let code_id = match create_user(state, &account).await? {
        CreateUser::Created(user) => {
            crate::flows::verify::send_verify(state, Some(&user.id), &user.email).await?
        }
        CreateUser::Invalid(message) => return Ok(RegisterOutcome::Invalid { message }),
        CreateUser::AlreadyExists => {
            crate::flows::verify::send_signup_attempt(state, account.email).await?
        }
    };
    Ok(RegisterOutcome::CodeSent {
        code_id,
        return_to: safe_return_to(return_to),
    })
}

/// `POST /ap/signout`: ends the browser's session on the server (web removes the cookie).
pub async fn signout(state: &AppState, signed_in: Option<&SignedIn>) -> Result<(), Failure> {
    if let Some(s) = signed_in {
        state.store.delete_session(&s.id_hash).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_local_only() {
        for (raw, expected) in [
            (Some("/ap/oa?x=1"), "/ap/oa?x=1"),
            (Some("//evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example"), "/"),
            (Some("/a\r\nSet-Cookie: x"), "/"),
            (Some("/\0"), "/"),
            (Some("/\x01"), "/"),
            (Some("/\x7f"), "/"),
            (Some("/a b"), "/"),
            (Some("/caf\u{e9}"), "/"),
            (None, "/"),
        ] {
            assert_eq!(safe_return_to(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn new_account_rules() {
        assert!(check_new_account("Ada", "ada@example.com", "correct horse", "").is_ok());
        assert!(check_new_account("", "ada@example.com", "correct horse", "").is_err());
        assert!(check_new_account("Ada", "ada@", "correct horse", "").is_err());
        assert!(check_new_account("Ada", "ada@example", "correct horse", "").is_err());
        // Addresses no mail can go to: refused before anything is stored.
        for unmailable in [
            "a,b@example.com",
            "a..b@example.com",
            "<a>@example.com",
            "a@exa mple.com",
        ] {
            assert!(
                check_new_account("Ada", unmailable, "correct horse", "").is_err(),
                "{unmailable}"
            );
        }
        assert!(check_new_account("Ada", "ada@example.com", "short", "").is_err());
        assert!(
            check_new_account("Ada", "ada@example.com", "correct horse", &"9".repeat(21)).is_err()
        );
    }
}
