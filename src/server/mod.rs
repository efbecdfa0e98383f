//! The transport: one thin file per etcd service, each calling the engine and filling response
//! headers, and the server that carries them.
//!
//! One server is one thread with a current-thread runtime, so it serves whatever runtime (or
//! none) the test uses. It serves one endpoint per started member of the simulated cluster;
//! each endpoint is its own listener whose services answer as that member (its ID in headers,
//! learner restrictions), and endpoints come and go at run time as members start or are
//! removed. Every endpoint speaks gRPC over h2c and etcd's HTTP/1.1 endpoints on the same port,
//! as etcd's client port does.

mod auth;
mod cluster;
mod election;
mod etcdhttp;
mod gateway;
mod health;
#[cfg(feature = "__fuzz")]
pub(crate) use gateway::fuzz_body as fuzz_gateway_body;
mod hooks;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod metrics;
mod oversize;
mod routes;
#[cfg(feature = "tls")]
mod tls;
mod watch;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::thread;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;

use crate::engine::{Engine, EtcdError};
use crate::pb::etcdserverpb::ResponseHeader;

pub(crate) use hooks::{is_known_method, Hooks};
pub(crate) use metrics::Metrics;
#[cfg(feature = "tls")]
pub(crate) use tls::{Tls, TlsError};
pub(crate) use watch::DEFAULT_PROGRESS_INTERVAL;

/// Where gRPC carries a call's status: in the trailers, or in the headers of an early error.
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The `grpc-status` among `headers`. Every answer is read for it (metrics, the size refusal),
/// and tonic's answers carry a header or two: a scan costs less than hashing the name.
fn grpc_status(headers: &http::HeaderMap) -> Option<&http::HeaderValue> {
    headers
        .iter()
        .find_map(|(name, value)| (*name == GRPC_STATUS).then_some(value))
}

/// Who answers: the member whose endpoint a request came in on. Cluster ID and raft term are
/// read from the engine at each answer, since leader moves and removals change the term.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) member_id: u64,
    engine: Engine,
}

impl Identity {
    pub(crate) fn new(member_id: u64, engine: Engine) -> Self {
        Identity { member_id, engine }
    }

    /// A top-level response header at `revision`, as etcd fills it.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        let (cluster_id, raft_term) = self.engine.header_ids();
        ResponseHeader {
            cluster_id,
            member_id: self.member_id,
            revision,
            raft_term,
        }
    }

    /// Fills the identity into a header the engine made (keeping its revision, or the current
    /// revision if the engine left it at 0).
    pub(crate) fn fill(&self, header: &mut Option<ResponseHeader>, engine: &Engine) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        let revision = if revision == 0 {
            engine.revision()
        } else {
            revision
        };
        *header = Some(self.header(revision));
    }
}

/// What the services of one endpoint share.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) engine: Engine,
    pub(crate) identity: Identity,
    pub(crate) max_message_bytes: usize,
    /// The server's endpoints, so that MemberRemove can stop the removed member's.
    pub(crate) endpoints: Endpoints,
    pub(crate) metrics: Arc<Metrics>,
    /// How often watchers that asked for progress notifications get one.
    pub(crate) progress_interval: Duration,
    /// Faults, the request log and the watcher registry, shared by every endpoint.
    pub(crate) hooks: Arc<Hooks>,
}

/// How endpoints carry their connections: plaintext, or (feature `tls`) TLS for every endpoint
/// of a server, its forks' included.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transport {
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<Tls>>,
}

impl Transport {
    /// The scheme of the endpoints' URLs.
    pub(crate) fn scheme(&self) -> &'static str {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return "https";
        }
        "http"
    }
}

/// One member's listener.
#[derive(Debug)]
struct Endpoint {
    addr: SocketAddr,
    stop: CancellationToken,
}

/// The endpoints being served, by member ID.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoints(Arc<Mutex<BTreeMap<u64, Endpoint>>>);

impl Endpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Endpoint>> {
        // The map is only inserted into and removed from: always consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops serving member `id`: its listener closes at once, its connections shortly after
    /// (so that an answer in flight, such as the MemberRemove that removed it, still goes out).
    pub(crate) fn stop(&self, id: u64) {
        if let Some(endpoint) = self.lock().remove(&id) {
            endpoint.stop.cancel();
        }
    }

    /// Every served address, in member ID order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.lock().values().map(|e| e.addr).collect()
    }
}

/// A server running on its own thread. Stopping it (or dropping it) ends every endpoint,
/// connection and stream, and frees the ports.
#[derive(Debug)]
pub(crate) struct Running {
    runtime: tokio::runtime::Handle,
    transport: Transport,
    endpoints: Endpoints,
    stop: Option<oneshot::Sender<()>>,
    /// In a mutex only so that the guard is `Sync` (a test binary may share one server).
    done: Mutex<mpsc::Receiver<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// A cheap handle on a running server's runtime.
#[derive(Debug, Clone)]
pub(crate) struct RunningHandle {
    runtime: tokio::runtime::Handle,
}

impl RunningHandle {
    /// Serves one in-memory connection (the server's half of a duplex pipe) as `ctx`'s member:
    /// the same services as a TCP endpoint, with no port. It ends with the server.
    pub(crate) fn serve_in_memory(&self, io: tokio::io::DuplexStream, ctx: Context) {
        let service = MemberService::new(ctx);
        self.runtime.spawn(async move {
            let builder = connection_builder();
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
                .await;
        });
    }
}

/// How long a stop waits for the server thread before leaving it behind.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped endpoint's connections may finish what they were sending.
const ENDPOINT_GRACE: Duration = Duration::from_millis(100);

impl Running {
    /// Starts the server thread, with no endpoint yet; endpoints will use `transport`.
    pub(crate) fn start(transport: Transport) -> io::Result<Running> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("test-etcd".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async move {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime here cancels every endpoint, connection and stream
                // task, which closes their sockets: nothing of this server outlives the thread.
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        let runtime = match ready_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(io::Error::other("the server thread ended before serving")),
        };
        Ok(Running {
            runtime,
            transport,
            endpoints: Endpoints::default(),
            stop: Some(stop_tx),
            done: Mutex::new(done_rx),
            thread: Some(thread),
        })
    }

    /// How the endpoints carry connections.
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The endpoints, for contexts and the guard.
    pub(crate) fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Serves `ctx`'s member on `listener` (already bound, so no other process can take the
    /// port) until the member is stopped or the server is.
    pub(crate) fn serve(&self, listener: TcpListener, ctx: Context) -> io::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let listener = {
            // Registering with the reactor needs the runtime's context.
            let _entered = self.runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let stop = CancellationToken::new();
        self.endpoints.lock().insert(
            ctx.identity.member_id,
            Endpoint {
                addr,
                stop: stop.clone(),
            },
        );
        let service = MemberService::new(ctx);
        self.runtime
            .spawn(accept(listener, service, self.transport.clone(), stop));
        Ok(addr)
    }

    /// A handle to reach the server's runtime, for in-memory connections.
    pub(crate) fn handle(&self) -> RunningHandle {
        RunningHandle {
            runtime: self.runtime.clone(),
        }
    }

    /// Runs the lease expiry task of `engine` on this server's runtime, so that it stops with the
    /// server.
    pub(crate) fn run_expiry(&self, engine: Engine) {
        self.runtime.spawn(crate::engine::run_expiry(engine));
    }

    /// Stops the server and waits (a bounded time) until its thread has ended.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let done = self
                .done
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if done.recv_timeout(STOP_TIMEOUT).is_ok() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    service: MemberService,
    transport: Transport,
    stop: CancellationToken,
) {
    let connections = CancellationToken::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // An accept error concerns one connection (e.g. out of fds for a moment): go on.
        let Ok((stream, _)) = accepted else { continue };
        // Requests are small and answered at once: Nagle's algorithm would hold them back.
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let closed = connections.clone();
        // `TestEtcd::end_streams` and restarts close every connection through this token.
        let (dropped, open) = service.ctx().hooks.connection();
        let transport = transport.clone();
        let serving = tokio::spawn(async move {
            let _open = open;
            serve_connection(stream, service, transport).await;
        });
        // A task of its own waits for the tokens, so that the connection's task, woken
        // several times per request, polls only the connection.
        let abort = serving.abort_handle();
        tokio::spawn(async move {
            tokio::select! {
                _ = serving => {}
                _ = closed.cancelled() => abort.abort(),
                _ = dropped.cancelled() => abort.abort(),
            }
        });
    }
    drop(listener);
    tokio::time::sleep(ENDPOINT_GRACE).await;
    connections.cancel();
}

/// Serves one accepted connection, after its TLS handshake if the endpoint serves TLS.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    service: MemberService,
    transport: Transport,
) {
    #[cfg(feature = "tls")]
    if let Some(tls) = &transport.tls {
        if let Some((stream, common_name)) = tls.accept(stream).await {
            let service = service.with_peer(common_name);
            serve_io(stream, service).await;
        }
        return;
    }
    let _ = transport;
    serve_io(stream, service).await;
}

/// Serves HTTP/1.1 and HTTP/2 with etcd's connection settings. etcd allows any number of
/// concurrent streams on a connection (its `--max-concurrent-streams` defaults to 2^32-1); hyper's
/// default of 200 would leave a client that opens more (watchers, keep-alives) waiting forever.
///
/// gRPC answers carry no `Date` header, as grpc-go's do not (hyper would add one to each);
/// etcd's HTTP/1.1 handlers, Go's net/http, do send one.
pub(crate) fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(u32::MAX)
        .auto_date_header(false);
    builder
}

/// HTTP/1.1 or HTTP/2, whichever the client speaks.
async fn serve_io<I>(io: I, service: MemberService)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = connection_builder();
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
        .await;
}

/// What a learner still serves (spec §0.3): Status, Snapshot and, checked by the KV service,
/// a serializable Range.
fn learner_may_call(path: &str) -> bool {
    matches!(
        path,
        "/etcdserverpb.Maintenance/Status"
            | "/etcdserverpb.Maintenance/Snapshot"
            | "/etcdserverpb.KV/Range"
    )
}

/// How a refused request reads to a client: what grpc-go reports when it cannot connect to an
/// etcd that is down.
fn refused(ctx: &Context) -> tonic::Status {
    let addr = ctx
        .endpoints
        .lock()
        .get(&ctx.identity.member_id)
        .map(|e| e.addr.to_string())
        .unwrap_or_default();
    tonic::Status::unavailable(format!(
        "connection error: desc = \"transport: Error while dialing: dial tcp {addr}: \
         connect: connection refused\""
    ))
}

/// One member's endpoint: HTTP/1.x requests go to etcd's HTTP handlers, HTTP/2 to gRPC.
///
/// hyper clones the service for every request: behind one `Arc`, that is one count.
#[derive(Clone)]
struct MemberService(Arc<Member>);

struct Member {
    grpc: routes::Services,
    ctx: Context,
    /// The common name of the connection's verified client certificate, with client
    /// certificate auth on.
    peer: Option<Arc<str>>,
}

impl MemberService {
    /// A call with a fault or the request log in its way: delayed, failed or recorded as planned.
    fn faulty_call(
        &self,
        request: http::Request<Body>,
        plan: hooks::Plan,
        hooks: Arc<hooks::Hooks>,
        path: String,
    ) -> impl Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static {
        let request = if plan.record {
            request.map(|body| Body::new(hooks::Tap::new(body, Arc::clone(&hooks), path.clone())))
        } else {
            request.map(Body::new)
        };
        // The member outlives the delay; its services serve the call after it.
        let member = Arc::clone(&self.0);
        async move {
            if !plan.delay.is_zero() {
                // On the server's runtime, which a test's paused tokio clock does not stop.
                tokio::time::sleep(plan.delay).await;
            }
            if let Some(fault) = plan.fail {
                hooks.record_unread(&path);
                return Ok(fault.status().into_http());
            }
            member.grpc.call(request).await
        }
    }
    fn new(ctx: Context) -> Self {
        MemberService(Arc::new(Member {
            grpc: routes::Services::new(&ctx),
            ctx,
            peer: None,
        }))
    }

    /// The same member, for a connection whose client certificate names `peer`.
    #[cfg(feature = "tls")]
    fn with_peer(&self, peer: Option<Arc<str>>) -> Self {
        MemberService(Arc::new(Member {
            grpc: self.0.grpc.clone(),
            ctx: self.0.ctx.clone(),
            peer,
        }))
    }

    fn ctx(&self) -> &Context {
        &self.0.ctx
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;
type GrpcFuture = BoxFuture<http::Response<Body>>;

impl tower::Service<http::Request<Incoming>> for MemberService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        // The gRPC services are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Incoming>) -> Self::Future {
        if let Some(common_name) = &self.0.peer {
            request
                .extensions_mut()
                .insert(auth::PeerCommonName(Arc::clone(common_name)));
        }
        // etcd's client port sends gRPC to its gRPC server, and the rest to its HTTP mux: the
        // JSON gateway under /v3/ (over HTTP/1.x or h2c), etcd's HTTP handlers otherwise.
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
        // etcd's CORS handler answers every preflight, gateway paths included.
        if !grpc
            && gateway::serves(request.uri().path())
            && request.method() != http::Method::OPTIONS
        {
            let member = self.clone();
            return Box::pin(async move {
                let mut response = gateway::respond(member, request).await;
                etcdhttp::cors(response.headers_mut());
                Ok(response)
            });
        }
        if request.version() < http::Version::HTTP_2 {
            let response = etcdhttp::respond(self.ctx(), &request);
            return Box::pin(async move { Ok(response) });
        }
        self.grpc_call(request.map(Body::new))
    }
}

impl MemberService {
    /// One gRPC call, from a client or from the JSON gateway: counted in the metrics, refused
    /// on a learner as etcd does, and subject to the faults and request log of `hooks`.
    fn grpc_call(&self, request: http::Request<Body>) -> GrpcFuture {
        let path = request.uri().path();
        let counted = self.ctx().metrics.started(path);
        if !learner_may_call(path) && self.ctx().engine.is_learner(self.ctx().identity.member_id) {
            let status = tonic::Status::from(EtcdError::LearnerNotSupported);
            let response = counted.finish(status.into_http());
            return Box::pin(async move { Ok(response) });
        }
        let hooks = Arc::clone(&self.ctx().hooks);
        let plan = hooks.plan(path);
        if plan.refuse {
            hooks.record_unread(path);
            let status = refused(self.ctx());
            let response = counted.finish(status.into_http());
            return Box::pin(async move { Ok(response) });
        }
        if plan.delay.is_zero() && plan.fail.is_none() && !plan.record {
            // No fault and no log: the request goes straight to its service.
            Box::pin(Call::new(self.0.grpc.call(request), counted))
        } else {
            let path = path.to_owned();
            let future = Box::pin(self.faulty_call(request, plan, hooks, path));
            Box::pin(Call::new(future, counted))
        }
    }
}

/// A gRPC call in flight: counted when it ends, answered in grpc-go's words when too large,
/// and failed alone (INTERNAL) if its handler panics.
struct Call<F> {
    future: F,
    counted: Option<metrics::Counted>,
}

impl<F> Call<F> {
    fn new(future: F, counted: metrics::Counted) -> Self {
        Call {
            future,
            counted: Some(counted),
        }
    }
}

impl<F> Future for Call<F>
where
    F: Future<Output = Result<http::Response<Body>, Infallible>> + Unpin,
{
    type Output = Result<http::Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let future = &mut this.future;
        // The engine's state stays consistent across a panic (writes commit or roll back
        // under its lock, and a poisoned lock is recovered), so going on is safe.
        let response = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut *future).poll(cx)
        })) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(response))) => response,
            Ok(Poll::Ready(Err(never))) => match never {},
            Err(_) => {
                tonic::Status::internal("test-etcd: the request handler panicked").into_http()
            }
        };
        let response = oversize::as_grpc_go(response);
        Poll::Ready(Ok(match this.counted.take() {
            Some(counted) => counted.finish(response),
            None => response,
        }))
    }
}
