//! Running a gRPC server with a shutdown handle: bind a listener (tests bind
//! `127.0.0.1:0` and read the port back), serve until told to stop, and stop the
//! server's background tasks with it. A graceful stop waits for the connections to
//! close, but not for ever: after [`STOP_GRACE`] the server cuts those still open (a
//! client that stops reading a stream would otherwise hold it open for good). A server
//! may also take connections of another protocol on the same port ([`SideDoor`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, Router, TcpConnectInfo, TcpIncoming};

use crate::error::{Error, Result};

mod side_door;
pub use side_door::SideDoor;
use side_door::{Accepted, sort};

/// Binds `addr` (e.g. `127.0.0.1:0`).
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {addr}: {e}")))
}

/// A receiver that background tasks watch to learn that the server is stopping.
pub type ShutdownSignal = watch::Receiver<bool>;

/// Waits until the shutdown signal fires (or its sender is gone).
pub async fn stopped(mut signal: ShutdownSignal) {
    while !*signal.borrow() {
        if signal.changed().await.is_err() {
            return;
        }
    }
}

/// How long a graceful stop waits for the server's connections to close before it
/// cuts them. Streams end themselves when their server stops (after answering what is in
/// flight, for at most 5 s); this bounds what they cannot end — answers a client never
/// reads.
pub const STOP_GRACE: Duration = Duration::from_secs(8);

/// The HTTP/2 pings a server sends a client whose connection has been silent this long,
/// and how long it waits for the answer before it drops the connection (a client host
/// that vanished would otherwise hold its streams, and its server's stop, until TCP gives
/// up).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// A gRPC server builder with the settings every Ballast server uses.
pub fn builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
}

/// A running server: its address, and the means to stop it and its background tasks.
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    cut: watch::Sender<bool>,
    cut_flag: Arc<AtomicBool>,
    serve: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// Serves `router` on `listener`, and runs the tasks `spawn_tasks` makes (given the
    /// shutdown signal) until [`ServerHandle::shutdown`] or drop.
    pub fn start<F>(router: Router, listener: TcpListener, spawn_tasks: F) -> Result<ServerHandle>
    where
        F: FnOnce(ShutdownSignal) -> Vec<JoinHandle<()>>,
    {
        ServerHandle::start_with_door(router, listener, None, spawn_tasks)
    }

    /// [`ServerHandle::start`], with `door` (if any) taking its connections on the
    /// same port.
    pub fn start_with_door<F>(
        router: Router,
        listener: TcpListener,
        door: Option<SideDoor>,
        spawn_tasks: F,
    ) -> Result<ServerHandle>
    where
        F: FnOnce(ShutdownSignal) -> Vec<JoinHandle<()>>,
    {
        let addr = listener.local_addr()?;
        let (shutdown, signal) = watch::channel(false);
        let (cut, cut_signal) = watch::channel(false);
        let cut_flag = Arc::new(AtomicBool::new(false));
        let flag = cut_flag.clone();
        let mut tasks = spawn_tasks(signal.clone());
        // TCP_NODELAY on every accepted connection: without it a small answer (a prepare's
        // acknowledgement) can wait for the peer's delayed ACK, ~40 ms per round trip.
        let accepted = TcpIncoming::from(listener).with_nodelay(Some(true));
        let incoming: Accepted = match door {
            None => Box::pin(accepted),
            Some(door) => {
                let (grpc, taken) = mpsc::channel(64);
                tasks.push(tokio::spawn(sort(accepted, door, grpc, signal.clone())));
                Box::pin(ReceiverStream::new(taken))
            }
        };
        let incoming = incoming.map(move |accepted| {
            accepted.map(|io| Cuttable::new(io, flag.clone(), cut_signal.clone()))
        });
        let serve = router.serve_with_incoming_shutdown(incoming, stopped(signal));
        Ok(ServerHandle {
            addr,
            shutdown,
            cut,
            cut_flag,
            serve: Some(tokio::spawn(log_exit(serve))),
            tasks,
        })
    }

    /// Cuts every connection still open: their reads and writes fail from now on.
    fn cut_connections(&self) {
        self.cut_flag.store(true, Ordering::Release);
        let _ = self.cut.send(true);
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server and its tasks to end: for the connections
    /// to close by themselves for up to [`STOP_GRACE`], then cutting those still open.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut serve) = self.serve.take()
            && tokio::time::timeout(STOP_GRACE, &mut serve).await.is_err()
        {
            tracing::warn!(
                "connections still open {STOP_GRACE:?} into the stop (a client not reading its answers?); cutting them"
            );
            self.cut_connections();
            let _ = serve.await;
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

async fn log_exit<E: std::fmt::Display>(serve: impl Future<Output = Result<(), E>>) {
    if let Err(e) = serve.await {
        tracing::error!("server stopped: {e}");
    }
}

impl Drop for ServerHandle {
    /// A handle dropped without `shutdown` stops everything at once, like a crash.
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.cut_connections();
        for task in self.serve.iter().chain(&self.tasks) {
            task.abort();
        }
    }
}

/// An accepted connection its server can cut: once cut, every read and write fails, and
/// the connection's task ends (with the streams it served).
struct Cuttable {
    io: TcpStream,
    /// Set (before the signal fires) when the server cuts its connections: checked first,
    /// so a connection that keeps making progress pays one atomic load per operation.
    flag: Arc<AtomicBool>,
    /// The signal, polled only when the connection is about to wait (to be woken by it).
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    is_cut: bool,
}

impl Cuttable {
    fn new(io: TcpStream, flag: Arc<AtomicBool>, signal: watch::Receiver<bool>) -> Cuttable {
        Cuttable {
            io,
            flag,
            cut: Box::pin(stopped(signal)),
            is_cut: false,
        }
    }

    /// Runs one I/O operation unless the connection is cut; when it has to wait, the wait
    /// also ends when the connection is cut.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let cut = || {
            Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the server stopped",
            )))
        };
        if self.is_cut || self.flag.load(Ordering::Acquire) {
            return cut();
        }
        let result = op(Pin::new(&mut self.io), cx);
        if result.is_pending() && self.cut.as_mut().poll(cx).is_ready() {
            self.is_cut = true;
            return cut();
        }
        result
    }
}

impl Connected for Cuttable {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Cuttable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.get_mut().guard(cx, |io, cx| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().guard(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut()
            .guard(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().guard(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Sets up logging to stderr for a server binary at `level` (error, warn, info, debug).
pub fn init_logging(level: &str) -> Result<()> {
    use std::io::IsTerminal;
    let level: tracing::Level = level.parse().map_err(|_| {
        Error::InvalidInput(format!(
            "'{level}' is not a log level (error, warn, info, debug, trace)"
        ))
    })?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .try_init()
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Where the logs of servers run inside the shell (`--local`) go: a file in the embedded
/// cluster's directory once it is known; until then they are kept in memory (up to 1 MB).
enum LogSlot {
    Pending(Vec<u8>),
    File(std::fs::File),
}

static LOG_SLOT: std::sync::Mutex<LogSlot> = std::sync::Mutex::new(LogSlot::Pending(Vec::new()));

/// A writer into [`LOG_SLOT`].
struct SlotWriter;

impl std::io::Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut slot = LOG_SLOT.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *slot {
            LogSlot::Pending(held) if held.len() < 1 << 20 => held.extend_from_slice(buf),
            LogSlot::Pending(_) => {}
            LogSlot::File(file) => file.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs at `level` into a file set later with [`set_log_file`] (for servers run inside
/// the shell, whose logs must not be drawn over the prompt).
pub fn init_logging_to_file(level: &str) -> Result<()> {
    let level: tracing::Level = level
        .parse()
        .map_err(|_| Error::InvalidInput(format!("'{level}' is not a log level")))?;
    tracing_subscriber::fmt()
        .with_writer(|| SlotWriter)
        .with_max_level(level)
        .with_ansi(false)
        .try_init()
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Sends the logs to `path` (appending), with what was logged before.
pub fn set_log_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut slot = LOG_SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if let LogSlot::Pending(held) = &*slot {
        file.write_all(held)?;
    }
    *slot = LogSlot::File(file);
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A server binary's main: runs `serve` on a multi-threaded runtime of `threads` worker
/// threads (`None`: one per core, or `TOKIO_WORKER_THREADS`), and turns an error into one
/// `ERROR: ...` line on stderr and exit code 1.
pub fn run_main<F>(threads: Option<u64>, serve: F) -> std::process::ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1) as usize);
    }
    let result = builder
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(serve));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// A server binary's main: its flags (and `--config` file) parsed into `A`, then
/// [`run_main`] of `serve(args)` on `threads(&args)` worker threads.
pub fn main_with_args<A, F, Fut>(threads: fn(&A) -> Option<u64>, serve: F) -> std::process::ExitCode
where
    A: clap::Parser,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let argv = crate::config_file::args_with_config(&A::command(), std::env::args_os().collect());
    match argv {
        Ok(argv) => {
            let args = A::parse_from(argv);
            run_main(threads(&args), serve(args))
        }
        Err(e) => fail(anyhow::anyhow!(e)),
    }
}

/// Prints `e` as one `ERROR: ...` line on stderr; exit code 1.
fn fail(e: anyhow::Error) -> std::process::ExitCode {
    eprintln!("ERROR: {e:#}");
    std::process::ExitCode::FAILURE
}

/// The help of a server's `--worker-threads`.
pub const WORKER_THREADS_HELP: &str = "Threads that run the server's requests and background work (default: one per core, or TOKIO_WORKER_THREADS); servers sharing a machine do best with their share of its cores";
