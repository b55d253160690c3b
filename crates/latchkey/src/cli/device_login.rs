//! `latchkey device-login`: an example device client, as a TV app would be written. It asks for a code pair (LWA's
//! `/auth/o2/create/codepair`), shows the code and where to enter it, polls politely (the interval it was given,
//! five seconds more after each `slow_down`), and prints the customer's profile once they approve.

use serde_json::Value;
use std::time::Duration;

/// What the device needs to know.
pub struct DeviceLogin {
    pub issuer: String,
    pub client_id: String,
    pub scope: String,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    let res = http.post(url).form(form).send().await?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| {
        anyhow::anyhow!("{url} answered {status} with a body that is not JSON: {e}")
    })?;
    Ok((status, body))
}

fn text<'a>(body: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    body[field]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the answer has no {field}: {body}"))
}

pub async fn run(d: DeviceLogin) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = d.issuer.trim_end_matches('/');
    let (status, pair) = post(
        &http,
        &format!("{base}/auth/o2/create/codepair"),
        &[
            ("response_type", "device_code"),
            ("client_id", &d.client_id),
            ("scope", &d.scope),
        ],
    )
    .await?;
    if status != 200 {
        anyhow::bail!("the code pair was refused ({status}): {pair}");
    }
    let (device_code, user_code) = (text(&pair, "device_code")?, text(&pair, "user_code")?);
    println!(
        "To sign in, open {} on your phone or computer",
        text(&pair, "verification_uri")?
    );
    println!("and enter the code:  {user_code}");
    if let Some(complete) = pair["verification_uri_complete"].as_str() {
        println!("(or open {complete})");
    }
    println!();
    let mut interval = pair["interval"].as_u64().unwrap_or(5).max(1);
    let expires_in = pair["expires_in"].as_u64().unwrap_or(600);
    let started = std::time::Instant::now();
    let tokens = loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if started.elapsed() > Duration::from_secs(expires_in) {
            anyhow::bail!("the code expired before it was entered; run again for a new one");
        }
        let (status, body) = post(
            &http,
            &format!("{base}/auth/o2/token"),
            &[
                ("grant_type", "device_code"),
                ("device_code", device_code),
                ("user_code", user_code),
            ],
        )
        .await?;
        if status == 200 {
            break body;
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some("access_denied") => anyhow::bail!("the sign-in was declined"),
            Some("invalid_code_pair" | "expired_token") => {
                anyhow::bail!("the code expired or is no longer valid; run again for a new one")
            }
            _ => anyhow::bail!("the token endpoint answered {status}: {body}"),
        }
    };
    println!("Signed in. Profile:");
    let profile: Value = http
        .get(format!("{base}/user/profile"))
        .bearer_auth(text(&tokens, "access_token")?)
        .send()
        .await?
        .json()
        .await?;
    println!("{}", serde_json::to_string_pretty(&profile)?);
    Ok(())
}
