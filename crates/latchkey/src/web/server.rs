//! The server loop (SPEC 4 "Slow clients", SPEC 5): accepts at most `max_connections` connections, plain or TLS
//! (rustls, HTTP/1.1 and HTTP/2 by ALPN, certificates reread on SIGHUP), and bounds what each may cost: the TLS
//! handshake and every request's headers must arrive within [`HEADER_TIMEOUT`], a request (its body included)
//! within [`REQUEST_TIMEOUT`] (the router's `TimeoutLayer`), and a connection idle between requests is closed
//! after [`IDLE_TIMEOUT`]. On shutdown it stops accepting, lets every connection finish its request, and returns.

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Semaphore};

/// A request's headers (and a TLS handshake) must arrive within this long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, its body included, within this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A keep-alive connection with no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The certificate and key Latchkey serves HTTPS with, reread from their files on demand (SIGHUP).
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl Tls {
    /// Reads the PEM files; an unreadable or mismatched pair is an error that names the file.
    pub fn load(cert: &Path, key: &Path) -> io::Result<Tls> {
        let config = read_tls(cert, key)?;
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Rereads the files; on failure the certificate in use stays, and the error says why.
    pub fn reload(&self) -> io::Result<()> {
        let config = read_tls(&self.cert, &self.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(config);
        }
        Ok(())
    }

    fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.current
            .read()
            .ok()
            .map(|c| tokio_rustls::TlsAcceptor::from(Arc::clone(&c)))
    }
}

fn read_tls(cert: &Path, key: &Path) -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let named = |path: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| named(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(cert, &e))?;
    if certs.is_empty() {
        return Err(named(cert, &"no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| named(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| named(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| named(key, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How many connections one client may hold open (per address; IPv6 per /64); trusted proxies are not limited.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// File descriptors kept free of connections: the database, files, logs.
const SPARE_DESCRIPTORS: u64 = 256;

/// What bounds connections: in all, and per address.
pub struct Limits {
    pub max_connections: usize,
    pub per_address: usize,
    /// Peers that may hold any number (the reverse proxies every client comes through).
    pub trusted: latchkey_core::address::TrustedProxies,
}

/// Raises the soft limit on open files as far as the hard limit allows, and clamps `wanted` below it, so that
/// `accept` never fails for want of a descriptor while the database still needs one.
fn connections_the_process_can_hold(wanted: usize) -> usize {
    let fds = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(fds) => fds,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return wanted;
        }
    };
    let room = usize::try_from(fds.saturating_sub(SPARE_DESCRIPTORS).max(16)).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = fds,
            "max_connections lowered to what the open-file limit allows"
        );
    }
    wanted.min(room)
}

/// Open connections per address key.
#[derive(Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// A connection counted against its address until dropped.
struct Counted {
    table: Arc<PerAddress>,
    key: Option<String>,
}

impl PerAddress {
    fn admit(self: &Arc<Self>, key: String, cap: usize) -> Option<Counted> {
        let mut table = self.0.lock().ok()?;
        let open = table.entry(key.clone()).or_insert(0);
        if *open >= cap {
            return None;
        }
        *open += 1;
        Some(Counted {
            table: self.clone(),
            key: Some(key),
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut table)) = (self.key.take(), self.table.0.lock()) {
            if let Some(open) = table.get_mut(&key) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    table.remove(&key);
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<Tls>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max_connections =
        connections_the_process_can_hold(limits.max_connections).clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // A free slot first: past `max_connections`, new connections wait in the kernel's backlog.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // One client cannot hold every slot: past its share, its new connections are closed at once.
        let counted = if limits.trusted.contains(peer.ip()) {
            None
        } else {
            let key = latchkey_core::address::limit_key(peer.ip());
            match per_address.admit(key, limits.per_address) {
                Some(counted) => Some(counted),
                None => {
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.as_ref().and_then(|t| t.acceptor());
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let (_slot, _counted) = (slot, counted);
            let activity = Arc::new(Activity::new());
            let stream = Watched {
                inner: stream,
                activity: activity.clone(),
            };
            match tls {
                None => connection(stream, peer, app, activity, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            // The handshake is done: the first request head has its own 10 s, and an HTTP/2
                            // connection, whose frames between requests are not request heads, only an idle limit.
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            activity.handshake_done(h2);
                            connection(stream, peer, app, activity, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all connections drained.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// Serves one connection until it ends, its watchdog closes it, or shutdown asks it to finish.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let counted = activity.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = InFlight::start(counted.clone());
            let app = app.clone();
            async move {
                let res = tower::ServiceExt::oneshot(app, req).await;
                drop(in_flight);
                res
            }
        });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog, not hyper, bounds header reads: hyper's timer would also close idle keep-alive connections
    // after the (much shorter) header timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let watchdog = activity.watchdog();
    tokio::pin!(watchdog);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = &mut watchdog => {
            tracing::debug!("connection closed: too slow or idle");
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // Shutting down: finish the request in flight (still under the watchdog), then close.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = &mut watchdog => {}
    }
}

/// What a connection's watchdog looks at, in milliseconds since `origin`.
struct Activity {
    origin: Instant,
    /// The last byte read or written.
    last: AtomicU64,
    /// When the bytes of a request head began to arrive (0: no head pending).
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// HTTP/2: bytes between requests are frames (pings, window updates), not the start of a request head.
    h2: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last: AtomicU64::new(1),
            // A new connection owes its first request head (or TLS handshake) at once.
            head_since: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            h2: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn handshake_done(&self, h2: bool) {
        self.h2.store(h2, Ordering::Relaxed);
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        self.head_since
            .store(if h2 { 0 } else { now }, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn read(&self) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed) {
            let _ = self
                .head_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// Completes when the connection must be closed: a request head slower than [`HEADER_TIMEOUT`], or no
    /// request for [`IDLE_TIMEOUT`].
    async fn watchdog(&self) {
        let header = u64::try_from(HEADER_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
        let idle = u64::try_from(IDLE_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
        loop {
            let now = self.now();
            let head = self.head_since.load(Ordering::Relaxed);
            let busy = self.in_flight.load(Ordering::Relaxed) > 0;
            let due = if head != 0 {
                head.saturating_add(header)
            } else if busy {
                // A request is being answered; its own deadline is the router's.
                now.saturating_add(idle)
            } else {
                self.last.load(Ordering::Relaxed).saturating_add(idle)
            };
            if now >= due {
                return;
            }
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
    }
}

/// A request being answered on a connection: its head has arrived.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_since.store(0, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.wrote();
    }
}

/// A socket that tells its [`Activity`] about every read and write.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
