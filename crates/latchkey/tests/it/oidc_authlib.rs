//! A second ecosystem's OpenID Connect client, Python's Authlib (pinned in tests/oidc/requirements.txt), goes
//! through the whole flow against a running Latchkey: discovery, login on the real pages, code exchange with
//! PKCE, ID token validation, userinfo, refresh, introspection, revocation. The relying party is
//! tests/oidc/authlib_rp.py; `.ci/run` installs its virtualenv and points `LATCHKEY_TEST_PYTHON` at it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey_core::ids::pairwise_user_id;
use serde_json::Value;
use std::path::PathBuf;
use tokio::process::Command;

/// The interpreter with Authlib installed, or `None` (after saying why) when there is none here. Under
/// `CI=true` a missing interpreter or library fails the test instead: CI must run the second client.
async fn authlib_python() -> Option<String> {
    let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/latchkey-venv/bin/python")
    });
    let probe = Command::new(&python)
        .args(["-c", "import authlib, requests; print(authlib.__version__)"])
        .output()
        .await;
    let problem = match probe {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => format!(
            "{python} cannot import authlib and requests: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("{python} cannot be run: {e}"),
    };
    if crate::support::under_ci() {
        panic!(
            "the Authlib relying party is required under CI=true, but {problem}. .ci/run creates the virtualenv \
             (pip install -r crates/latchkey/tests/oidc/requirements.txt) and sets LATCHKEY_TEST_PYTHON."
        );
    }
    eprintln!("skipping: {problem} (run .ci/run once, or set LATCHKEY_TEST_PYTHON)");
    None
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/authlib_rp.py")
}

/// The pinned Authlib version, as requirements.txt names it.
fn pinned_authlib() -> String {
    let reqs = std::fs::read_to_string(script().with_file_name("requirements.txt")).unwrap();
    reqs.lines()
        .find_map(|l| l.strip_prefix("Authlib=="))
        .expect("requirements.txt pins Authlib==x.y.z")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn authlib_completes_discovery_login_id_token_userinfo_refresh_introspection_revocation() {
    let Some(python) = authlib_python().await else {
        return;
    };
    let app = spawn_app().await;
    let shop = app.register_app(|_| {}).await;
    let user = app
        .create_user("grace@example.com", "Grace Hopper", None)
        .await;

    let out = Command::new(&python)
        .arg(script())
        .env("LATCHKEY_RP_ISSUER", &app.base)
        .env("LATCHKEY_RP_CLIENT_ID", &shop.client_id)
        .env("LATCHKEY_RP_CLIENT_SECRET", shop.secret.as_deref().unwrap())
        .env("LATCHKEY_RP_REDIRECT_URI", &shop.redirect_uri)
        .env("LATCHKEY_RP_EMAIL", &user.email)
        .env("LATCHKEY_RP_PASSWORD", PASSWORD)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("authlib_rp.py printed no JSON summary ({e}); status {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status)
    });
    assert!(
        out.status.success() && summary["ok"] == true,
        "Authlib's flow failed at {}:\n{stdout}\nstderr:\n{stderr}",
        summary["failed"]
    );

    eprintln!("{stdout}");
    let steps = &summary["steps"];
    for step in [
        "discovery",
        "authorize",
        "login",
        "token",
        "id_token",
        "userinfo",
        "refresh",
        "introspection",
        "revocation",
        "after_revocation",
    ] {
        assert_eq!(steps[step]["ok"], true, "step {step}:\n{stdout}");
    }
    assert_eq!(summary["authlib"], pinned_authlib().as_str(), "{stdout}");

    // The customer went through the real sign-in and consent pages.
    let pages = steps["login"]["result"]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{stdout}");
    assert_eq!(pages[0], "/ap/signin");

    // The ID token Authlib accepted: RS256 by default, for this client, about this customer's pairwise id.
    let id_token = &steps["id_token"]["result"];
    let owner = app
        .store()
        .find_client(&shop.client_id)
        .await
        .unwrap()
        .unwrap()
        .owner;
    let sub = pairwise_user_id(&app.state.hasher, &owner, &user.id);
    assert_eq!(id_token["alg"], "RS256", "{stdout}");
    assert_eq!(id_token["sub"], sub.as_str(), "{stdout}");
    assert_eq!(id_token["aud"], shop.client_id.as_str(), "{stdout}");

    let userinfo = &steps["userinfo"]["result"];
    assert_eq!(userinfo["sub"], sub.as_str(), "{stdout}");
    assert_eq!(userinfo["email"], "grace@example.com");
    assert_eq!(userinfo["name"], "Grace Hopper");

    let introspected = &steps["introspection"]["result"];
    assert_eq!(introspected["active"], true, "{stdout}");
    assert_eq!(introspected["client_id"], shop.client_id.as_str());
    assert_eq!(introspected["sub"], sub.as_str(), "{stdout}");
    assert_eq!(
        steps["after_revocation"]["result"]["refresh_error"],
        "invalid_grant"
    );
}
