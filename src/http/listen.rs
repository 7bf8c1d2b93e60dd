//! Accepting connections, with what `axum::serve` does not bound: a client must send a
//! request's headers within `header_read_timeout` (a slowloris connection is closed, and so is a
//! keep-alive connection idle that long), and at most `max_connections` are open at once (more
//! are closed on accept). With rate limits, each connection's requests carry its peer address
//! (for per-address limits). Shutdown stops accepting, lets in-flight requests finish and closes
//! idle keep-alive connections.
//!
//! The header timeout is kept per connection, not per request: the connection notes (two relaxed
//! atomic stores) when it starts waiting for a request and when one arrives, and one timer per
//! connection wakes at most once per `header_read_timeout` to close it if it has waited too long.
//! (The HTTP library's own header timeout boxes and registers a timer for every request.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Whether requests carry their peer address (`ConnectInfo`): only rate limits by address read
    /// it, and inserting it costs every request an allocation.
    pub peer_addresses: bool,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let builder = Builder::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: {} already open", limits.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let waiting = Waiting::new();
        let (arrived, answered) = (waiting.clone(), waiting.clone());
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                arrived.arrived();
                if limits.peer_addresses {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                }
                req
            })
            // The connection waits for the next request only once the answer's body has been
            // sent (or dropped): a long-lived stream (`/events`) is not idle while it streams.
            .map_response(move |response: axum::response::Response| {
                let answered = answered.clone();
                response.map(|inner| Sending { inner, waiting: answered })
            });
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let header_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let watchdog = tokio::time::sleep(header_timeout);
            let mut watchdog = std::pin::pin!(watchdog);
            loop {
                tokio::select! {
                    biased;
                    ended = &mut connection => {
                        if let Err(e) = ended {
                            tracing::trace!("connection ended: {e}");
                        }
                        break;
                    }
                    () = &mut watchdog => match waiting.overdue(header_timeout) {
                        Ok(()) => {
                            tracing::debug!(%peer, "connection closed: no request headers within {header_timeout:?}");
                            break;
                        }
                        Err(next) => watchdog.as_mut().reset(next.into()),
                    },
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An answer's body on its way out; when it is done (or dropped with the connection) the
/// connection starts waiting for its next request. Delegates every call; allocates nothing.
struct Sending {
    inner: axum::body::Body,
    waiting: Waiting,
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.waiting.waiting();
    }
}

impl http_body::Body for Sending {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Since when a connection has been waiting for a request's headers (milliseconds after it was
/// accepted), or [`Waiting::BUSY`] while a request is being answered.
#[derive(Debug, Clone)]
struct Waiting(Arc<(Instant, AtomicU64)>);

impl Waiting {
    const BUSY: u64 = u64::MAX;

    fn new() -> Self {
        Self(Arc::new((Instant::now(), AtomicU64::new(0))))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.0.elapsed().as_millis()).unwrap_or(Self::BUSY - 1)
    }

    /// A request's headers have arrived.
    fn arrived(&self) {
        self.0.1.store(Self::BUSY, Ordering::Relaxed);
    }

    /// The answer is out: from now on the connection waits for the next request.
    fn waiting(&self) {
        self.0.1.store(self.now_ms(), Ordering::Relaxed);
    }

    /// `Ok` when the connection has waited `limit` or more for headers; otherwise when to look
    /// again (a request being answered is bounded by the request timeout, not this one).
    fn overdue(&self, limit: Duration) -> Result<(), Instant> {
        let since = self.0.1.load(Ordering::Relaxed);
        let now = self.now_ms();
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX / 2);
        if since == Self::BUSY {
            return Err(Instant::now() + limit);
        }
        if now.saturating_sub(since) >= limit_ms {
            return Ok(());
        }
        Err(self.0.0 + Duration::from_millis(since + limit_ms))
    }
}
