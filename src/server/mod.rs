//! The gRPC transport: one thin file per etcd service, each validating nothing itself but
//! calling the engine and filling response headers. This module starts a server on its own
//! thread and runtime, so it serves whatever runtime (or none) the test uses, and stops it.

mod auth;
mod election;
mod kv;
mod lease;
mod lock;
mod oversize;
mod unimplemented;
mod watch;

pub(crate) use watch::DEFAULT_PROGRESS_INTERVAL;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::Server;

use crate::engine::Engine;
use crate::pb::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
    ResponseHeader,
};
use crate::pb::v3electionpb::election_server::ElectionServer;
use crate::pb::v3lockpb::lock_server::LockServer;

/// Who this server says it is in every response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) cluster_id: u64,
    pub(crate) member_id: u64,
    pub(crate) raft_term: u64,
}

impl Default for Identity {
    /// The IDs of a single etcd started with default flags (name `default`, peer URL
    /// `http://localhost:2380`, token `etcd-cluster`), and the raft term such a node has after
    /// bootstrapping, so headers look like a fresh real etcd's.
    fn default() -> Self {
        Identity {
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            member_id: 0x8e9e_05c5_2164_694d,
            raft_term: 2,
        }
    }
}

impl Identity {
    /// A top-level response header at `revision`, as etcd fills it.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term,
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

/// What the services share.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) engine: Engine,
    pub(crate) identity: Identity,
    pub(crate) max_message_bytes: usize,
    /// How often watchers that asked for progress notifications get one.
    pub(crate) progress_interval: Duration,
}

/// A server running on its own thread. Stopping it (or dropping it) ends every connection and
/// stream and frees the port.
#[derive(Debug)]
pub(crate) struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: mpsc::Receiver<()>,
    thread: Option<thread::JoinHandle<()>>,
}

/// How long a stop waits for the server thread before leaving it behind.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl Running {
    /// Serves `ctx` on `listener` (already bound, so no other process can take the port).
    pub(crate) fn start(listener: TcpListener, ctx: Context) -> io::Result<Running> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(format!("test-etcd-{}", addr.port()))
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
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = serve(listener, ctx) => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime here cancels every connection and stream task, which
                // closes their sockets: nothing of this server outlives this thread.
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(io::Error::other("the server thread ended before serving")),
        }
        Ok(Running {
            addr,
            stop: Some(stop_tx),
            done: done_rx,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits (a bounded time) until its thread has ended.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if self.done.recv_timeout(STOP_TIMEOUT).is_ok() {
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

async fn serve(listener: tokio::net::TcpListener, ctx: Context) {
    // Lives on this runtime, so it stops when the server does.
    tokio::spawn(crate::engine::run_expiry(ctx.engine.clone()));
    let limit = ctx.max_message_bytes;
    // Requests are small and answered at once: Nagle's algorithm would hold them back.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let result = Server::builder()
        .layer(tower::util::MapResponseLayer::new(oversize::as_grpc_go))
        .add_service(
            KvServer::new(kv::KvService::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            WatchServer::new(watch::WatchService::new(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            LeaseServer::new(lease::LeaseService::new(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            ClusterServer::new(unimplemented::Unimplemented).max_decoding_message_size(limit),
        )
        .add_service(
            MaintenanceServer::new(unimplemented::Unimplemented).max_decoding_message_size(limit),
        )
        .add_service(
            AuthServer::new(auth::AuthService::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            LockServer::new(lock::LockService::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ElectionServer::new(election::ElectionService::new(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .serve_with_incoming(incoming)
        .await;
    // Serving ends only if the listener fails; the guard sees the server stop answering.
    let _ = result;
}
