//! The operator's own scopes (SPEC 1): defined in the configuration, a customer scope is described on the
//! consent page, granted and reported by tokeninfo and introspection; an app scope is granted only through
//! `client_credentials`, and only to apps the operator allowed it; no customer scope is granted without a customer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use latchkey::config::{Config, ScopeSetting};
use latchkey_core::client::Feature;
use latchkey_core::scope::ScopeKind;
use oauth2::{AuthorizationCode, TokenResponse};
use serde_json::Value;
use std::sync::Arc;

const EMAIL: &str = "ada@example.com";
const ORDERS: &str = "orders:read";
const ORDERS_DESCRIPTION: &str = "See the orders you placed at the shop";
const MESSAGING: &str = "alexa::skill_messaging";

/// A configuration with one operator customer scope and one app scope.
fn with_operator_scopes(config: &mut Config) {
    config.scopes.insert(
        ORDERS.into(),
        ScopeSetting {
            description: ORDERS_DESCRIPTION.into(),
            kind: ScopeKind::Customer,
        },
    );
    config.scopes.insert(
        MESSAGING.into(),
        ScopeSetting {
            description: "Send messages to the app's Alexa skill".into(),
            kind: ScopeKind::App,
        },
    );
}

/// An HTTP answer: status and JSON body.
async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}")),
    )
}

async fn introspect(app: &TestApp, caller: &RegisteredApp, token: &str) -> Value {
    let (status, body) = json_of(
        app.api()
            .post(app.url("/oauth2/introspect"))
            .basic_auth(&caller.client_id, caller.secret.as_deref())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A client credentials request by `machine` (secret in the body), with `scope` if given.
async fn client_credentials(
    app: &TestApp,
    machine: &RegisteredApp,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", machine.client_id.as_str()),
        ("client_secret", machine.secret.as_deref().unwrap()),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    json_of(
        app.api()
            .post(app.url("/auth/o2/token"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn authorize_url(shop: &RegisteredApp, scope: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &shop.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &shop.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "s-1")
        .finish();
    format!("/ap/oa?{query}")
}

/// SPEC 1, 2.1, 2.4, 3: a customer scope the operator defines is listed on the consent page in the operator's
/// words, granted with the customer's consent, stated in the redirect and the token response, and reported by
/// tokeninfo and introspection; it releases no profile field. An app scope cannot be asked for at `/ap/oa` or in
/// a code pair: it is `invalid_scope` there, like an unknown scope.
#[tokio::test]
async fn an_operator_customer_scope_is_described_on_consent_granted_and_reported() {
    let app = spawn_app_with(Arc::new(sqlite_db()), with_operator_scopes).await;
    let shop = app
        .register_app(|i| i.features.insert(Feature::Device))
        .await;
    app.create_user(EMAIL, "Ada Lovelace", None).await;
    let browser = app.browser();

    let step = browser
        .open(&authorize_url(&shop, &format!("profile {ORDERS}")))
        .await;
    let step = browser.sign_in_on(step, EMAIL, PASSWORD).await;
    let Step::Page { html, .. } = &step else {
        panic!("expected the consent page, got {step:?}");
    };
    assert!(
        html.contains(&format!("<strong>{ORDERS_DESCRIPTION}</strong>")),
        "the consent page describes the operator's scope:\n{html}"
    );
    assert!(
        html.contains("Your name and email address"),
        "and the standard one beside it:\n{html}"
    );
    let back = browser.consent_on(step, true, &[]).await.left_to();
    assert_eq!(
        Step::param(&back, "scope").as_deref(),
        Some("orders:read profile"),
        "{back}"
    );
    let code = Step::param(&back, "code").unwrap();
    let tokens = app
        .oauth_client(&shop)
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&http_client())
        .await
        .unwrap();
    let granted: Vec<String> = tokens
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(granted, [ORDERS, "profile"]);
    let token = tokens.access_token().secret();
    let (status, info) = tokeninfo_by_header(&app, token).await.parts();
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["scope"], "orders:read profile", "tokeninfo: {info}");
    let i = introspect(&app, &shop, token).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["scope"], "orders:read profile", "introspection: {i}");

    // The customer allowed it, so asking for the operator's scope alone needs no second consent; such a token
    // reads no profile field.
    let back = browser.open(&authorize_url(&shop, ORDERS)).await.left_to();
    assert_eq!(
        Step::param(&back, "scope").as_deref(),
        Some(ORDERS),
        "{back}"
    );
    let tokens = app
        .oauth_client(&shop)
        .exchange_code(AuthorizationCode::new(Step::param(&back, "code").unwrap()))
        .request_async(&http_client())
        .await
        .unwrap();
    let (status, body) = json_of(
        app.api()
            .get(app.url("/user/profile"))
            .bearer_auth(tokens.access_token().secret())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope", "{body}");

    // The apps page says what the app can see in the same words.
    let (_, _, html) = browser.open("/ap/adam").await.page();
    assert!(html.contains(ORDERS_DESCRIPTION), "{html}");

    // An app scope is not the customer's to grant: refused at /ap/oa (a verified app: redirected) ...
    let back = browser
        .open(&authorize_url(&shop, &format!("profile {MESSAGING}")))
        .await
        .left_to();
    assert_eq!(
        Step::param(&back, "error").as_deref(),
        Some("invalid_scope"),
        "{back}"
    );
    assert!(
        Step::param(&back, "error_description")
            .unwrap()
            .contains(MESSAGING),
        "{back}"
    );
    // ... and in a code pair.
    let (status, body) = json_of(
        app.api()
            .post(app.url("/auth/o2/create/codepair"))
            .form(&[
                ("response_type", "device_code"),
                ("client_id", shop.client_id.as_str()),
                ("scope", MESSAGING),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_scope", "{body}");
    // Control: the operator's customer scope is accepted there.
    let (status, body) = json_of(
        app.api()
            .post(app.url("/auth/o2/create/codepair"))
            .form(&[
                ("response_type", "device_code"),
                ("client_id", shop.client_id.as_str()),
                ("scope", ORDERS),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// SPEC 1, 2.2: an app scope is granted through `client_credentials` to an app the operator allowed it, asked
/// for or (nothing asked) by default, and reported by tokeninfo and introspection; another app asking for it is
/// refused with `invalid_scope`, and with nothing asked gets a token that states no scope at all. Only defined
/// app scopes can be allowed, and only to apps that use the grant. Both engines store the app's scopes.
#[tokio::test]
async fn an_app_scope_is_granted_by_client_credentials_only_to_apps_allowed_it() {
    for (engine, db) in each_db().await {
        let app = spawn_app_with(Arc::new(db), with_operator_scopes).await;
        let skill = app
            .register_app(|i| {
                i.name = "Skill".into();
                i.features.insert(Feature::ClientCredentials);
                i.app_scopes = vec![MESSAGING.into()];
            })
            .await;
        let other = app
            .register_app(|i| {
                i.name = "Other".into();
                i.features.insert(Feature::ClientCredentials);
            })
            .await;

        for asked in [Some(MESSAGING), None] {
            let (status, body) = client_credentials(&app, &skill, asked).await;
            assert_eq!(status, 200, "{engine} {asked:?}: {body}");
            assert_eq!(body["scope"], MESSAGING, "{engine} {asked:?}: {body}");
            let token = body["access_token"].as_str().unwrap();
            let (status, info) = tokeninfo_by_header(&app, token).await.parts();
            assert_eq!(status, 200, "{info}");
            assert_eq!(info["scope"], MESSAGING, "{engine}: tokeninfo {info}");
            let i = introspect(&app, &skill, token).await;
            assert_eq!(i["scope"], MESSAGING, "{engine}: introspection {i}");
        }

        let (status, body) = client_credentials(&app, &other, Some(MESSAGING)).await;
        assert_eq!(status, 400, "{engine}: {body}");
        assert_eq!(body["error"], "invalid_scope", "{engine}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains(MESSAGING),
            "{body}"
        );
        // Nothing asked and nothing allowed: a token for the app, with no `scope` (not one empty scope).
        let (status, body) = client_credentials(&app, &other, None).await;
        assert_eq!(status, 200, "{engine}: {body}");
        assert!(body.get("scope").is_none(), "{engine}: {body}");
        let token = body["access_token"].as_str().unwrap();
        let i = introspect(&app, &other, token).await;
        assert_eq!(i["active"], true, "{i}");
        assert!(i.get("scope").is_none(), "{engine}: {i}");
        assert_eq!(
            tokeninfo_by_header(&app, token).await.json["scope"],
            "",
            "{engine}"
        );

        // A customer scope, the operator's or a standard one, needs a customer.
        for scope in [
            ORDERS,
            "profile",
            "profile:user_id",
            &format!("{MESSAGING} profile"),
        ] {
            let (status, body) = client_credentials(&app, &skill, Some(scope)).await;
            assert_eq!(status, 400, "{engine} {scope}: {body}");
            assert_eq!(body["error"], "invalid_scope", "{engine} {scope}: {body}");
        }

        // Only the operator's defined app scopes can be allowed, and only with the grant that uses them.
        let mut input = default_app_input();
        input.features.insert(Feature::ClientCredentials);
        input.app_scopes = vec!["alexa::undefined".into()];
        let problems = latchkey::flows::registration::register(&app.state, &input)
            .await
            .unwrap()
            .into_result()
            .unwrap_err();
        assert!(
            problems[0].contains("\"alexa::undefined\" is not defined"),
            "{problems:?}"
        );
        input.app_scopes = vec![ORDERS.into()];
        let problems = latchkey::flows::registration::register(&app.state, &input)
            .await
            .unwrap()
            .into_result()
            .unwrap_err();
        assert!(problems[0].contains("is not defined"), "{problems:?}");
        input.app_scopes = vec![MESSAGING.into()];
        input.features.remove(Feature::ClientCredentials);
        let problems = latchkey::flows::registration::register(&app.state, &input)
            .await
            .unwrap()
            .into_result()
            .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("client credentials")),
            "{problems:?}"
        );
    }
}
