//! Load test for code-based linking (issue: device flow benchmark). Holds N code pairs pending and has each
//! poll at its interval for a while, as N televisions would, then approves them all through the real `/code`
//! pages and collects every device's tokens. Reports errors (any answer a polite device should not get), poll
//! latency percentiles and the server's CPU use. Run it with `bench/device-poll.sh`, which starts the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

struct Args {
    base: String,
    client_id: String,
    email: String,
    password: String,
    codes: usize,
    seconds: u64,
    server_pid: Option<u32>,
}

fn args() -> Args {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        client_id: String::new(),
        email: String::new(),
        password: String::new(),
        codes: 1000,
        seconds: 60,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--base" => a.base = value,
            "--client-id" => a.client_id = value,
            "--email" => a.email = value,
            "--password" => a.password = value,
            "--codes" => a.codes = value.parse().expect("--codes is a number"),
            "--seconds" => a.seconds = value.parse().expect("--seconds is a number"),
            "--server-pid" => a.server_pid = value.parse().ok(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.client_id.is_empty(), "--client-id is required");
    a
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .replace("&#38;", "&")
}

struct Pair {
    device_code: String,
    user_code: String,
    interval: u64,
}

#[tokio::main]
async fn main() {
    let a = args();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let errors = Arc::new(AtomicU64::new(0));

    // 1. N code pairs.
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(a.codes);
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..a.codes {
        let (http, base, client_id) = (http.clone(), a.base.clone(), a.client_id.clone());
        batch.spawn(async move {
            let res = http
                .post(format!("{base}/auth/o2/create/codepair"))
                .form(&[
                    ("response_type", "device_code"),
                    ("client_id", client_id.as_str()),
                    ("scope", "profile"),
                ])
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = res.json().await.ok()?;
            Some(Pair {
                device_code: body["device_code"].as_str()?.to_owned(),
                user_code: body["user_code"].as_str()?.to_owned(),
                interval: body["interval"].as_u64()?,
            })
        });
        if batch.len() >= 32 {
            if let Some(Ok(p)) = batch.join_next().await {
                match p {
                    Some(p) => pairs.push(p),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    while let Some(Ok(p)) = batch.join_next().await {
        match p {
            Some(p) => pairs.push(p),
            None => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    println!(
        "created {} code pairs in {:.1} s",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );

    // 2. Every device polls at its interval for the whole period, starting at a random moment of its first interval.
    let latencies = Arc::new(Mutex::new(Vec::<f64>::with_capacity(a.codes * 16)));
    let cpu_before = a.server_pid.and_then(cpu_seconds);
    let poll_start = Instant::now();
    let deadline = poll_start + Duration::from_secs(a.seconds);
    let mut devices = tokio::task::JoinSet::new();
    for (i, p) in pairs.iter().enumerate() {
        let (http, base) = (http.clone(), a.base.clone());
        let (device_code, user_code, mut interval) =
            (p.device_code.clone(), p.user_code.clone(), p.interval);
        let (errors, latencies) = (errors.clone(), latencies.clone());
        let offset =
            Duration::from_millis((i as u64 * 5_000 / a.codes.max(1) as u64) % (interval * 1000));
        devices.spawn(async move {
            tokio::time::sleep(offset).await;
            let mut mine = Vec::new();
            while Instant::now() + Duration::from_secs(interval) < deadline {
                let t = Instant::now();
                let res = http
                    .post(format!("{base}/auth/o2/token"))
                    .form(&[
                        ("grant_type", "device_code"),
                        ("device_code", device_code.as_str()),
                        ("user_code", user_code.as_str()),
                    ])
                    .send()
                    .await;
                let outcome = match res {
                    Ok(r) => r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|b| b["error"].as_str().map(str::to_owned)),
                    Err(_) => None,
                };
                mine.push(t.elapsed().as_secs_f64() * 1000.0);
                match outcome.as_deref() {
                    Some("authorization_pending") => {}
                    Some("slow_down") => {
                        interval += 5;
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_secs(interval)).await;
            }
            latencies.lock().await.extend(mine);
        });
    }
    while devices.join_next().await.is_some() {}
    let wall = poll_start.elapsed().as_secs_f64();
    let cpu_after = a.server_pid.and_then(cpu_seconds);

    // 3. One customer approves every code on the real pages; each device then collects its tokens once.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap();
    let signin = browser
        .get(format!("{}/ap/signin", a.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = field(&signin, "csrf");
    browser
        .post(format!("{}/ap/signin", a.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("return_to", "/"),
            ("email", a.email.as_str()),
            ("password", a.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let approve_start = Instant::now();
    let mut approved = 0;
    let mut tokens = 0;
    for p in &pairs {
        let confirm = browser
            .post(format!("{}/code", a.base))
            .form(&[("csrf", csrf.as_str()), ("user_code", p.user_code.as_str())])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = field(&confirm, "confirm_token");
        let done = browser
            .post(format!("{}/code/confirm", a.base))
            .form(&[
                ("csrf", csrf.as_str()),
                ("user_code", field(&confirm, "user_code").as_str()),
                ("confirm_token", token.as_str()),
                ("decision", "allow"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if done.contains("Your device is linked") {
            approved += 1;
        } else {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let approve_secs = approve_start.elapsed().as_secs_f64();
    for p in &pairs {
        let res = http
            .post(format!("{}/auth/o2/token", a.base))
            .form(&[
                ("grant_type", "device_code"),
                ("device_code", p.device_code.as_str()),
                ("user_code", p.user_code.as_str()),
            ])
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 200 {
            tokens += 1;
        } else {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    let mut lat = latencies.lock().await.clone();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    println!(
        "polls: {} in {:.1} s ({:.0}/s)",
        lat.len(),
        wall,
        lat.len() as f64 / wall
    );
    println!(
        "poll latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    if let (Some(b), Some(after)) = (cpu_before, cpu_after) {
        println!(
            "server CPU while polling: {:.1} s over {:.1} s = {:.1}% of one core",
            after - b,
            wall,
            (after - b) / wall * 100.0
        );
    }
    println!("approved {approved} codes on the pages in {approve_secs:.1} s; {tokens} devices got tokens");
    let errors = errors.load(Ordering::Relaxed);
    println!("errors: {errors}");
    if errors > 0 || tokens != a.codes {
        std::process::exit(1);
    }
}
