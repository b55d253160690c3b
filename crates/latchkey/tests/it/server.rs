//! The server loop under slow and greedy clients (SPEC 4 "Slow clients"): headers within 10 s, a request with
//! its body within 30 s, idle keep-alive connections kept up to 60 s, at most `max_connections` at once; and
//! through all of it, everyone else is still served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or `limit` passes); returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    started.elapsed(),
                    String::from_utf8_lossy(&got).into_owned(),
                ))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A connection to `addr` from the loopback address `local`: another client, as far as the server can tell.
async fn connect_from(local: &str, addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

async fn healthz(base: &str) -> u16 {
    tokio::time::timeout(
        Duration::from_secs(5),
        http_client().get(format!("{base}/healthz")).send(),
    )
    .await
    .expect("/healthz did not answer within 5 s")
    .unwrap()
    .status()
    .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_headers_are_cut_off_while_everyone_else_is_served() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // A well-behaved keep-alive connection that then sits idle.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // 300 slowloris connections from one address: a request line, then one header byte a second, never
    // finishing. Past its share (256), that address's connections are closed at once.
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = connect_from("127.0.0.2", &addr).await;
        // A connection past the address's share may already be closed.
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
        slow.push(s);
    }
    let trickle = tokio::spawn(async move {
        let mut closed = Vec::new();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for s in slow.iter_mut() {
                let _ = s.write_all(b"a").await;
            }
        }
        for mut s in slow {
            closed.push(until_closed(&mut s, Duration::from_secs(1)).await);
        }
        closed
    });
    // Meanwhile the service answers at once.
    for _ in 0..3 {
        assert_eq!(healthz(&app.base).await, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let closed = trickle.await.unwrap();
    // Each was closed once its 10 s for the headers ran out (the trickle went on for 20 s), without an answer
    // beyond, at most, a 408.
    assert!(started.elapsed() >= Duration::from_secs(20));
    for c in &closed {
        let (_, sent) = c
            .as_ref()
            .expect("a trickling connection was still open after 20 s");
        assert!(
            sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
            "{sent}"
        );
    }
    assert_eq!(healthz(&app.base).await, 200);

    // The idle keep-alive connection (idle for over 20 s, under the 60 s limit) still serves a request.
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "an idle keep-alive connection was closed before 60 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_off_after_30_seconds() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /auth/o2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 1000\r\n\r\ngrant_type=",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (mut read, mut write) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(45), read.read_to_end(&mut got)).await;
        (
            started.elapsed(),
            String::from_utf8_lossy(&got).into_owned(),
        )
    });
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if write.write_all(b"a").await.is_err() || reader.is_finished() {
            break;
        }
    }
    let (after, sent) = reader.await.unwrap();
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(40)).contains(&after),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_connections_wait_until_one_is_free() {
    let app = spawn_app_with(Arc::new(sqlite_db()), |c| c.max_connections = 4).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Four connections that say nothing take every slot.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let waiting = tokio::spawn({
        let base = app.base.clone();
        async move {
            http_client()
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    // It is served only once the silent ones are closed for saying nothing for 10 s.
    let status = waiting.await.unwrap();
    assert_eq!(status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8),
        "served after {waited:?}, while every slot was taken"
    );
    for mut s in silent {
        assert!(until_closed(&mut s, Duration::from_secs(2)).await.is_some());
    }
}
