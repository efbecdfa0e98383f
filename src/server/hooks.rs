//! What a test can do to a running server that a real etcd does not offer: faults injected per
//! request, a log of the requests received, the open watchers, and closing every connection.
//!
//! One [`Hooks`] is shared by every endpoint of a server. `MemberService` asks it what to do
//! with each gRPC request before routing it; the Watch service registers its watchers here.
//! Everything is behind a std mutex held only for bookkeeping, never across an await, so a
//! guard dropped on the test's thread (or runtime) undoes its fault without touching the
//! server's runtime.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::faults::{EtcdFault, RecordedRequest, WatcherInfo};

/// The per-server hooks.
#[derive(Debug)]
pub(crate) struct Hooks {
    state: Mutex<HookState>,
    /// Every connection of every endpoint ends when this generation is cancelled; a fresh one
    /// then replaces it for the connections that come next.
    connections: Mutex<Generation>,
    /// Bumped to cancel every open watcher as compacted.
    compact_watchers: tokio::sync::watch::Sender<u64>,
    next_stream: AtomicU64,
}

#[derive(Debug, Default)]
struct HookState {
    next_fault: u64,
    refusals: Vec<u64>,
    delays: BTreeMap<u64, (Option<String>, Duration)>,
    failures: BTreeMap<u64, Failure>,
    recording: bool,
    log: Vec<RecordedRequest>,
    watchers: BTreeMap<(u64, i64), WatcherInfo>,
}

#[derive(Debug)]
struct Failure {
    method: String,
    remaining: usize,
    error: EtcdFault,
}

/// How long ending connections waits for them to close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The connections accepted since the last `end_connections`.
#[derive(Debug, Default)]
struct Generation {
    stop: CancellationToken,
    /// How many are open, and a signal when that number drops.
    open: Arc<(Mutex<usize>, Condvar)>,
}

/// Counts a connection as open while it lives.
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<(Mutex<usize>, Condvar)>);

impl OpenConnection {
    fn new(open: &Arc<(Mutex<usize>, Condvar)>) -> Self {
        *open
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        OpenConnection(Arc::clone(open))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let (count, closed) = &*self.0;
        let mut count = count
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *count = count.saturating_sub(1);
        closed.notify_all();
    }
}

/// What to do with one gRPC request.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Answer UNAVAILABLE at once, as a server that is down would.
    pub(crate) refuse: bool,
    /// Wait this long (on the server's runtime) first.
    pub(crate) delay: Duration,
    /// Then fail with this instead of serving.
    pub(crate) fail: Option<EtcdFault>,
    /// Log the request's messages.
    pub(crate) record: bool,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            state: Mutex::default(),
            connections: Mutex::new(Generation::default()),
            compact_watchers: tokio::sync::watch::Sender::new(0),
            next_stream: AtomicU64::new(0),
        }
    }
}

impl Hooks {
    fn state(&self) -> MutexGuard<'_, HookState> {
        // Only bookkeeping happens under the lock: always consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether request logging is on.
    pub(crate) fn set_recording(&self, on: bool) {
        self.state().recording = on;
    }

    fn add(&self, f: impl FnOnce(&mut HookState, u64)) -> u64 {
        let mut state = self.state();
        state.next_fault += 1;
        let id = state.next_fault;
        f(&mut state, id);
        id
    }

    pub(crate) fn refuse(&self) -> u64 {
        self.add(|s, id| s.refusals.push(id))
    }

    pub(crate) fn delay(&self, method: Option<String>, by: Duration) -> u64 {
        self.add(|s, id| {
            s.delays.insert(id, (method, by));
        })
    }

    pub(crate) fn fail(&self, method: String, times: usize, error: EtcdFault) -> u64 {
        self.add(|s, id| {
            s.failures.insert(
                id,
                Failure {
                    method,
                    remaining: times,
                    error,
                },
            );
        })
    }

    /// Undoes one fault; an unknown ID (already undone) is ignored.
    pub(crate) fn remove(&self, id: u64) {
        let mut state = self.state();
        state.refusals.retain(|r| *r != id);
        state.delays.remove(&id);
        state.failures.remove(&id);
    }

    /// Undoes every request fault.
    pub(crate) fn clear(&self) {
        let mut state = self.state();
        state.refusals.clear();
        state.delays.clear();
        state.failures.clear();
    }

    /// Decides the fate of a request to `path`, counting it against "fail the next N".
    pub(crate) fn plan(&self, path: &str) -> Plan {
        let mut state = self.state();
        if !state.refusals.is_empty() {
            return Plan {
                refuse: true,
                record: state.recording,
                ..Plan::default()
            };
        }
        // The longest matching delay applies: delays do not add up.
        let delay = state
            .delays
            .values()
            .filter(|(method, _)| method.as_deref().is_none_or(|m| m == path))
            .map(|(_, by)| *by)
            .max()
            .unwrap_or_default();
        // The oldest fault for this method fails it first.
        let fail = state
            .failures
            .values_mut()
            .find(|f| f.method == path && f.remaining > 0)
            .map(|f| {
                f.remaining -= 1;
                f.error
            });
        state.failures.retain(|_, f| f.remaining > 0);
        Plan {
            refuse: false,
            delay,
            fail,
            record: state.recording,
        }
    }

    /// Logs a request that was answered before its message was read.
    pub(crate) fn record_unread(&self, path: &str) {
        let mut state = self.state();
        if state.recording {
            state.log.push(RecordedRequest::new(path.to_owned(), None));
        }
    }

    fn record(&self, path: &str, message: &[u8]) {
        let mut state = self.state();
        if state.recording {
            let text = decode(path, message);
            state
                .log
                .push(RecordedRequest::new(path.to_owned(), Some(text)));
        }
    }

    pub(crate) fn is_recording(&self) -> bool {
        self.state().recording
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.state().log.clone()
    }

    pub(crate) fn clear_requests(&self) {
        self.state().log.clear();
    }

    /// The token a new connection ends with, and what counts it as open until it ends.
    pub(crate) fn connection(&self) -> (CancellationToken, OpenConnection) {
        let generation = self.generation();
        let open = OpenConnection::new(&generation.open);
        (generation.stop.clone(), open)
    }

    fn generation(&self) -> MutexGuard<'_, Generation> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes every open connection of every endpoint (so every stream ends as on a dropped
    /// connection), and waits (a bounded time) until they are closed; new connections are
    /// served as before. Called from the test's thread, never from the server's.
    pub(crate) fn end_connections(&self) {
        let old = std::mem::take(&mut *self.generation());
        old.stop.cancel();
        let (count, closed) = &*old.open;
        let open = count
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The server thread drops each connection at its next turn: quick, but not synchronous.
        let _ = closed.wait_timeout_while(open, CLOSE_WAIT, |open| *open > 0);
    }

    /// Cancels every open watcher as compacted.
    pub(crate) fn cancel_watchers_compacted(&self) {
        self.compact_watchers.send_modify(|n| *n += 1);
    }

    /// Wakes a watch stream when its watchers are to be cancelled as compacted.
    pub(crate) fn compact_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.compact_watchers.subscribe()
    }

    /// A new ID for a watch stream's watchers in the registry.
    pub(crate) fn new_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn watcher_opened(&self, stream: u64, info: WatcherInfo) {
        self.state().watchers.insert((stream, info.id), info);
    }

    pub(crate) fn watcher_closed(&self, stream: u64, id: i64) {
        self.state().watchers.remove(&(stream, id));
    }

    pub(crate) fn stream_closed(&self, stream: u64) {
        self.state().watchers.retain(|(s, _), _| *s != stream);
    }

    pub(crate) fn watchers(&self) -> Vec<WatcherInfo> {
        self.state().watchers.values().cloned().collect()
    }
}

/// A request body that logs each gRPC message as it passes through to the service.
pub(crate) struct Tap<B> {
    inner: B,
    hooks: Arc<Hooks>,
    path: String,
    buffer: BytesMut,
}

impl<B> Tap<B> {
    pub(crate) fn new(inner: B, hooks: Arc<Hooks>, path: String) -> Self {
        Tap {
            inner,
            hooks,
            path,
            buffer: BytesMut::new(),
        }
    }

    /// Logs every complete message in the buffer (gRPC frames: a flag byte, a big-endian
    /// length, the message).
    fn drain(&mut self) {
        loop {
            let Some(header) = self.buffer.get(..5) else {
                return;
            };
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if self.buffer.len() < 5 + len {
                return;
            }
            self.buffer.advance(5);
            let message = self.buffer.split_to(len);
            self.hooks.record(&self.path, &message);
        }
    }
}

impl<B> HttpBody for Tap<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let data = data.clone();
                self.buffer.extend_from_slice(&data);
                self.drain();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The Debug rendering of a request message of the method at `path`.
fn decode(path: &str, bytes: &[u8]) -> String {
    use crate::pb::etcdserverpb as e;
    use crate::pb::health as h;
    use crate::pb::v3electionpb as el;
    use crate::pb::v3lockpb as l;
    fn show<M: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> String {
        match M::decode(bytes) {
            Ok(message) => format!("{message:?}"),
            Err(_) => format!("<undecodable, {} bytes>", bytes.len()),
        }
    }
    macro_rules! by_path {
        ($($path:literal => $ty:ty,)*) => {
            match path {
                $($path => show::<$ty>(bytes),)*
                _ => format!("<unknown method, {} bytes>", bytes.len()),
            }
        };
    }
    by_path! {
        "/etcdserverpb.KV/Range" => e::RangeRequest,
        "/etcdserverpb.KV/RangeStream" => e::RangeRequest,
        "/etcdserverpb.KV/Put" => e::PutRequest,
        "/etcdserverpb.KV/DeleteRange" => e::DeleteRangeRequest,
        "/etcdserverpb.KV/Txn" => e::TxnRequest,
        "/etcdserverpb.KV/Compact" => e::CompactionRequest,
        "/etcdserverpb.Watch/Watch" => e::WatchRequest,
        "/etcdserverpb.Lease/LeaseGrant" => e::LeaseGrantRequest,
        "/etcdserverpb.Lease/LeaseRevoke" => e::LeaseRevokeRequest,
        "/etcdserverpb.Lease/LeaseKeepAlive" => e::LeaseKeepAliveRequest,
        "/etcdserverpb.Lease/LeaseTimeToLive" => e::LeaseTimeToLiveRequest,
        "/etcdserverpb.Lease/LeaseLeases" => e::LeaseLeasesRequest,
        "/etcdserverpb.Cluster/MemberAdd" => e::MemberAddRequest,
        "/etcdserverpb.Cluster/MemberRemove" => e::MemberRemoveRequest,
        "/etcdserverpb.Cluster/MemberUpdate" => e::MemberUpdateRequest,
        "/etcdserverpb.Cluster/MemberList" => e::MemberListRequest,
        "/etcdserverpb.Cluster/MemberPromote" => e::MemberPromoteRequest,
        "/etcdserverpb.Maintenance/Alarm" => e::AlarmRequest,
        "/etcdserverpb.Maintenance/Status" => e::StatusRequest,
        "/etcdserverpb.Maintenance/Defragment" => e::DefragmentRequest,
        "/etcdserverpb.Maintenance/Hash" => e::HashRequest,
        "/etcdserverpb.Maintenance/HashKV" => e::HashKvRequest,
        "/etcdserverpb.Maintenance/Snapshot" => e::SnapshotRequest,
        "/etcdserverpb.Maintenance/MoveLeader" => e::MoveLeaderRequest,
        "/etcdserverpb.Maintenance/Downgrade" => e::DowngradeRequest,
        "/etcdserverpb.Auth/AuthEnable" => e::AuthEnableRequest,
        "/etcdserverpb.Auth/AuthDisable" => e::AuthDisableRequest,
        "/etcdserverpb.Auth/AuthStatus" => e::AuthStatusRequest,
        "/etcdserverpb.Auth/Authenticate" => e::AuthenticateRequest,
        "/etcdserverpb.Auth/UserAdd" => e::AuthUserAddRequest,
        "/etcdserverpb.Auth/UserGet" => e::AuthUserGetRequest,
        "/etcdserverpb.Auth/UserList" => e::AuthUserListRequest,
        "/etcdserverpb.Auth/UserDelete" => e::AuthUserDeleteRequest,
        "/etcdserverpb.Auth/UserChangePassword" => e::AuthUserChangePasswordRequest,
        "/etcdserverpb.Auth/UserGrantRole" => e::AuthUserGrantRoleRequest,
        "/etcdserverpb.Auth/UserRevokeRole" => e::AuthUserRevokeRoleRequest,
        "/etcdserverpb.Auth/RoleAdd" => e::AuthRoleAddRequest,
        "/etcdserverpb.Auth/RoleGet" => e::AuthRoleGetRequest,
        "/etcdserverpb.Auth/RoleList" => e::AuthRoleListRequest,
        "/etcdserverpb.Auth/RoleDelete" => e::AuthRoleDeleteRequest,
        "/etcdserverpb.Auth/RoleGrantPermission" => e::AuthRoleGrantPermissionRequest,
        "/etcdserverpb.Auth/RoleRevokePermission" => e::AuthRoleRevokePermissionRequest,
        "/v3lockpb.Lock/Lock" => l::LockRequest,
        "/v3lockpb.Lock/Unlock" => l::UnlockRequest,
        "/v3electionpb.Election/Campaign" => el::CampaignRequest,
        "/v3electionpb.Election/Proclaim" => el::ProclaimRequest,
        "/v3electionpb.Election/Leader" => el::LeaderRequest,
        "/v3electionpb.Election/Observe" => el::LeaderRequest,
        "/v3electionpb.Election/Resign" => el::ResignRequest,
        "/grpc.health.v1.Health/Check" => h::HealthCheckRequest,
        "/grpc.health.v1.Health/List" => h::HealthListRequest,
        "/grpc.health.v1.Health/Watch" => h::HealthCheckRequest,
    }
}

/// Whether `path` is the gRPC path of a method that some etcd service serves.
pub(crate) fn is_known_method(path: &str) -> bool {
    super::routes::route(path).is_ok()
}
