//! Faults on demand and inspection without a client: what a test wants and a real etcd cannot
//! give. The methods are on [`TestEtcd`]; the types they use are here.
//!
//! Every request fault returns a [`FaultGuard`]: the fault lasts until the guard is dropped (or
//! [`FaultGuard::undo`] is called), or until [`TestEtcd::clear_faults`] undoes them all. Faults
//! act on the server's own thread and runtime: nothing runs on the test's runtime, and a delay
//! is a sleep on the server's runtime, which a test that pauses tokio's clock does not stop.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use crate::engine::Engine;
use crate::error::Error;
use crate::server::{is_known_method, Hooks};
use crate::test_etcd::TestEtcd;

/// An error etcd answers when it is in trouble, to inject with [`TestEtcd::fail_next`]. Each
/// has etcd's gRPC code and exact message (etcd's `rpctypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EtcdFault {
    /// UNAVAILABLE `etcdserver: request timed out`: a proposal or ReadIndex timed out.
    RequestTimedOut,
    /// UNAVAILABLE `etcdserver: request timed out, possibly due to previous leader failure`.
    TimedOutDueToLeaderFail,
    /// UNAVAILABLE `etcdserver: request timed out, possibly due to connection lost`.
    TimedOutDueToConnectionLost,
    /// UNAVAILABLE `etcdserver: leader changed`: the leader changed during a linearizable read.
    LeaderChanged,
    /// UNAVAILABLE `etcdserver: no leader`.
    NoLeader,
    /// UNAVAILABLE `etcdserver: server stopped`: the member is shutting down.
    Stopped,
    /// UNAVAILABLE `etcdserver: unhealthy cluster`.
    Unhealthy,
    /// FAILED_PRECONDITION `etcdserver: not capable` (etcd 3.6 on; 3.5 and older sent
    /// UNAVAILABLE): the member is starting up.
    NotCapable,
    /// RESOURCE_EXHAUSTED `etcdserver: too many requests`: applying lags committing.
    TooManyRequests,
    /// RESOURCE_EXHAUSTED `etcdserver: mvcc: database space exceeded`.
    NoSpace,
    /// DATA_LOSS `etcdserver: corrupt cluster`.
    Corrupt,
}

impl EtcdFault {
    /// The gRPC code etcd answers this error with.
    ///
    /// ```
    /// assert_eq!(test_etcd::EtcdFault::NoLeader.code(), tonic::Code::Unavailable);
    /// ```
    pub fn code(self) -> Code {
        match self {
            EtcdFault::RequestTimedOut
            | EtcdFault::TimedOutDueToLeaderFail
            | EtcdFault::TimedOutDueToConnectionLost
            | EtcdFault::LeaderChanged
            | EtcdFault::NoLeader
            | EtcdFault::Stopped
            | EtcdFault::Unhealthy => Code::Unavailable,
            EtcdFault::NotCapable => Code::FailedPrecondition,
            EtcdFault::TooManyRequests | EtcdFault::NoSpace => Code::ResourceExhausted,
            EtcdFault::Corrupt => Code::DataLoss,
        }
    }

    /// etcd's message for this error, byte for byte.
    ///
    /// ```
    /// let fault = test_etcd::EtcdFault::RequestTimedOut;
    /// assert_eq!(fault.message(), "etcdserver: request timed out");
    /// ```
    pub fn message(self) -> &'static str {
        match self {
            EtcdFault::RequestTimedOut => "etcdserver: request timed out",
            EtcdFault::TimedOutDueToLeaderFail => {
                "etcdserver: request timed out, possibly due to previous leader failure"
            }
            EtcdFault::TimedOutDueToConnectionLost => {
                "etcdserver: request timed out, possibly due to connection lost"
            }
            EtcdFault::LeaderChanged => "etcdserver: leader changed",
            EtcdFault::NoLeader => "etcdserver: no leader",
            EtcdFault::Stopped => "etcdserver: server stopped",
            EtcdFault::Unhealthy => "etcdserver: unhealthy cluster",
            EtcdFault::NotCapable => "etcdserver: not capable",
            EtcdFault::TooManyRequests => "etcdserver: too many requests",
            EtcdFault::NoSpace => "etcdserver: mvcc: database space exceeded",
            EtcdFault::Corrupt => "etcdserver: corrupt cluster",
        }
    }

    pub(crate) fn status(self) -> tonic::Status {
        tonic::Status::new(self.code(), self.message())
    }
}

/// The alarms etcd raises, for [`TestEtcd::raise_alarm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alarm {
    /// NOSPACE: writes that take space are refused with `etcdserver: mvcc: database space
    /// exceeded`.
    NoSpace,
    /// CORRUPT: every write is refused with `etcdserver: corrupt cluster`.
    Corrupt,
}

/// Undoes a fault when dropped. Returned by the fault methods of [`TestEtcd`]; keep it in a
/// variable for as long as the fault should last (`let _ = ...` would undo it at once).
#[must_use = "the fault is undone as soon as the guard is dropped"]
pub struct FaultGuard {
    undo: Option<Box<dyn FnOnce() + Send>>,
}

impl fmt::Debug for FaultGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultGuard")
            .field("active", &self.undo.is_some())
            .finish()
    }
}

impl FaultGuard {
    fn new(undo: impl FnOnce() + Send + 'static) -> Self {
        FaultGuard {
            undo: Some(Box::new(undo)),
        }
    }

    /// A guard with nothing to undo, for a fault the backend cannot make.
    fn inert() -> Self {
        FaultGuard { undo: None }
    }

    fn request_fault(hooks: &Arc<Hooks>, id: u64) -> Self {
        let hooks = Arc::clone(hooks);
        FaultGuard::new(move || hooks.remove(id))
    }

    /// Undoes the fault now; the same as dropping the guard, spelled out.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// let refusal = etcd.refuse_requests();
    /// refusal.undo();
    /// ```
    pub fn undo(mut self) {
        if let Some(undo) = self.undo.take() {
            undo();
        }
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo();
        }
    }
}

/// One request message the server received, from [`TestEtcd::requests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    method: String,
    request: Option<String>,
}

impl RecordedRequest {
    pub(crate) fn new(method: String, request: Option<String>) -> Self {
        RecordedRequest { method, request }
    }

    /// The gRPC method path, such as `/etcdserverpb.KV/Put`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().record_requests().start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// client.put("k", "v", None).await?;
    /// assert_eq!(etcd.requests()[0].method(), "/etcdserverpb.KV/Put");
    /// # Ok(())
    /// # }
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The decoded request message in its `Debug` rendering (byte fields as lists of numbers),
    /// such as `PutRequest { key: [107], value: [118], lease: 0, .. }`. `None` when a fault
    /// answered the call before its message was read. Each message of a stream (a Watch
    /// create, a keep-alive) is a request of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().record_requests().start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// client.lease_grant(30, None).await?;
    /// let request = etcd.requests()[0].request().unwrap_or_default().to_owned();
    /// assert!(request.starts_with("LeaseGrantRequest { ttl: 30"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn request(&self) -> Option<&str> {
        self.request.as_deref()
    }
}

/// A watcher open on the server, from [`TestEtcd::watchers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatcherInfo {
    /// Its watch ID on its stream.
    pub id: i64,
    /// The key (or start of the range) it watches.
    pub key: Vec<u8>,
    /// The end of its range: empty for one key, `[0]` for every key from `key` on.
    pub range_end: Vec<u8>,
    /// The start revision it asked for (0: from then on).
    pub start_revision: i64,
}

/// A key-value pair as the server holds it, from [`TestEtcd::range`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: i64,
    /// The revision of the last change.
    pub mod_revision: i64,
    /// How many times the key was put since it was created (1 after the first put).
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

impl KeyValue {
    /// The key as text (lossy UTF-8).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"/a": "1"}"#).start()?;
    /// assert_eq!(etcd.range("/")[0].key_str(), "/a");
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }

    /// The value as text (lossy UTF-8).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"/a": "1"}"#).start()?;
    /// assert_eq!(etcd.range("/")[0].value_str(), "1");
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// A lease as the server holds it, from [`TestEtcd::leases`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseInfo {
    /// The lease ID.
    pub id: i64,
    /// The TTL it was granted, in seconds.
    pub ttl: i64,
    /// The time left until it expires, on the server's clock.
    pub remaining: Duration,
    /// The keys attached to it, in key order.
    pub keys: Vec<Vec<u8>>,
}

/// The gRPC path of `rpc`, given as the path (`/etcdserverpb.KV/Put`), or without its leading
/// slash or package (`KV/Put`, `Lock/Lock`).
fn method_path(rpc: &str) -> Result<String, Error> {
    let candidates = [
        rpc.to_owned(),
        format!("/{rpc}"),
        format!("/etcdserverpb.{rpc}"),
        format!("/v3lockpb.{rpc}"),
        format!("/v3electionpb.{rpc}"),
    ];
    candidates
        .into_iter()
        .find(|path| is_known_method(path))
        .ok_or_else(|| Error::UnknownRpc(rpc.to_owned()))
}

impl TestEtcd {
    /// The hooks; `None` off the embedded backend, where faults and inspection do nothing.
    fn fault_hooks(&self) -> Option<&Arc<Hooks>> {
        self.hooks()
    }

    /// The hooks, or [`Error::NeedsEmbedded`] naming `option`.
    fn fault_hooks_for(&self, option: &'static str) -> Result<&Arc<Hooks>, Error> {
        self.fault_hooks().ok_or(Error::NeedsEmbedded { option })
    }

    /// Refuses every new gRPC request with UNAVAILABLE until the guard is dropped, as a client
    /// sees an etcd that is down: the message is grpc-go's for a refused connection. Streams
    /// already open go on (see [`TestEtcd::end_streams`] to end them too).
    ///
    /// Embedded backend only: on a real etcd it does nothing and the guard it returns has
    /// nothing to undo.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    ///
    /// let down = etcd.refuse_requests();
    /// let err = client.get("k", None).await.unwrap_err();
    /// assert!(matches!(err, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable));
    ///
    /// drop(down);
    /// client.get("k", None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn refuse_requests(&self) -> FaultGuard {
        let Some(hooks) = self.fault_hooks() else {
            return FaultGuard::inert();
        };
        let id = hooks.refuse();
        FaultGuard::request_fault(hooks, id)
    }

    /// Delays every call of `rpc` (such as `"KV/Put"` or `"/etcdserverpb.KV/Put"`) by `by`
    /// before serving it, until the guard is dropped. The wait is a sleep on the server's
    /// runtime. Fails with [`Error::UnknownRpc`] if no etcd service has that method.
    ///
    /// Embedded backend only: on a real etcd it fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    ///
    /// let _slow = etcd.delay("KV/Put", Duration::from_millis(50))?;
    /// let started = std::time::Instant::now();
    /// client.put("k", "v", None).await?;
    /// assert!(started.elapsed() >= Duration::from_millis(50));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay(&self, rpc: &str, by: Duration) -> Result<FaultGuard, Error> {
        let hooks = self.fault_hooks_for("delay")?;
        let path = method_path(rpc)?;
        let id = hooks.delay(Some(path), by);
        Ok(FaultGuard::request_fault(hooks, id))
    }

    /// Delays every gRPC call by `by` until the guard is dropped. Where several delays apply
    /// to a call, the longest one does.
    ///
    /// Embedded backend only: on a real etcd it does nothing and the guard it returns has
    /// nothing to undo.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    ///
    /// let _slow = etcd.delay_all(Duration::from_millis(20));
    /// let started = std::time::Instant::now();
    /// client.get("k", None).await?;
    /// assert!(started.elapsed() >= Duration::from_millis(20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay_all(&self, by: Duration) -> FaultGuard {
        let Some(hooks) = self.fault_hooks() else {
            return FaultGuard::inert();
        };
        let id = hooks.delay(None, by);
        FaultGuard::request_fault(hooks, id)
    }

    /// Fails the next `times` calls of `rpc` (such as `"KV/Range"`) with `error`, etcd's code
    /// and message; later calls are served again. Dropping the guard cancels the calls not yet
    /// failed. A stream RPC (Watch, LeaseKeepAlive) fails when it opens. Fails with
    /// [`Error::UnknownRpc`] if no etcd service has that method.
    ///
    /// Embedded backend only: on a real etcd it fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// use test_etcd::EtcdFault;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    ///
    /// let _flaky = etcd.fail_next("KV/Put", 1, EtcdFault::RequestTimedOut)?;
    /// let err = client.put("k", "v", None).await.unwrap_err();
    /// assert!(err.to_string().contains("etcdserver: request timed out"));
    /// client.put("k", "v", None).await?;     // the next one is served
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail_next(
        &self,
        rpc: &str,
        times: usize,
        error: EtcdFault,
    ) -> Result<FaultGuard, Error> {
        let hooks = self.fault_hooks_for("fail_next")?;
        let path = method_path(rpc)?;
        let id = hooks.fail(path, times, error);
        Ok(FaultGuard::request_fault(hooks, id))
    }

    /// Undoes every request fault (refusals, delays, failures), whoever holds their guards.
    /// Alarms stay; they are part of the cluster's state.
    ///
    /// Embedded backend only: on a real etcd it does nothing.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// let guard = etcd.refuse_requests();
    /// etcd.clear_faults();
    /// drop(guard); // nothing left to undo
    /// ```
    pub fn clear_faults(&self) {
        if let Some(hooks) = self.fault_hooks() {
            hooks.clear();
        }
    }

    /// Ends every open stream (Watch, LeaseKeepAlive, Observe, ...) as a dropped connection
    /// would: every client connection is closed. Clients reconnect for their next call; a
    /// watch has to be opened again.
    ///
    /// Embedded backend only: on a real etcd it does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// let mut stream = client.watch("k", None).await?;
    /// stream.message().await?; // created
    ///
    /// etcd.end_streams();
    ///
    /// assert!(!matches!(stream.message().await, Ok(Some(_))));
    /// client.put("k", "v", None).await?;      // a new connection serves it
    /// # Ok(())
    /// # }
    /// ```
    pub fn end_streams(&self) {
        if let Some(hooks) = self.fault_hooks() {
            hooks.end_connections();
        }
    }

    /// Cancels every open watcher as etcd cancels one that compaction overtook: a last
    /// response with `canceled` set and `compact_revision` at the store's current revision
    /// (the store itself is not compacted). A client that reads the current state at that
    /// revision and watches again from the next one misses nothing.
    ///
    /// Embedded backend only: on a real etcd it does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// let mut stream = client.watch("k", None).await?;
    /// stream.message().await?; // created
    ///
    /// etcd.cancel_watches_compacted();
    ///
    /// let resp = stream.message().await?.expect("a response");
    /// assert!(resp.canceled());
    /// assert_eq!(resp.compact_revision(), etcd.revision());
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_watches_compacted(&self) {
        if let Some(hooks) = self.fault_hooks() {
            hooks.cancel_watchers_compacted();
        }
    }

    /// Raises `alarm` for the first member until the guard is dropped, with the alarm's
    /// effects (NOSPACE refuses writes that take space, CORRUPT every write); Alarm GET and
    /// Status list it. Dropping the guard disarms it, as `etcdctl alarm disarm` would.
    ///
    /// Embedded backend only: on a real etcd it does nothing and the guard it returns has
    /// nothing to undo.
    ///
    /// ```
    /// use test_etcd::Alarm;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    ///
    /// let full = etcd.raise_alarm(Alarm::NoSpace);
    /// let err = client.put("k", "v", None).await.unwrap_err();
    /// assert!(err.to_string().contains("etcdserver: mvcc: database space exceeded"));
    ///
    /// drop(full);
    /// client.put("k", "v", None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn raise_alarm(&self, alarm: Alarm) -> FaultGuard {
        use crate::pb::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
        let Some(engine) = self.engine().cloned() else {
            return FaultGuard::inert();
        };
        let member_id = engine.members().first().map_or(0, |m| m.id);
        let alarm = match alarm {
            Alarm::NoSpace => AlarmType::Nospace,
            Alarm::Corrupt => AlarmType::Corrupt,
        } as i32;
        let request = move |action: AlarmAction| AlarmRequest {
            action: action as i32,
            member_id,
            alarm,
        };
        engine.alarm(&request(AlarmAction::Activate));
        FaultGuard::new(move || {
            engine.alarm(&request(AlarmAction::Deactivate));
        })
    }

    /// The requests received since the server started (or since
    /// [`TestEtcd::clear_requests`]), in order: one per request message, streams' messages
    /// included. Recorded only on a server built with
    /// [`TestEtcdBuilder::record_requests`](crate::TestEtcdBuilder::record_requests); otherwise
    /// empty.
    ///
    /// Embedded backend only: on a real etcd it is empty.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().record_requests().start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// client.put("a", "1", None).await?;
    /// client.get("a", None).await?;
    ///
    /// let methods: Vec<_> = etcd.requests().iter().map(|r| r.method().to_owned()).collect();
    /// assert_eq!(methods, ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fault_hooks()
            .map(|hooks| hooks.requests())
            .unwrap_or_default()
    }

    /// Forgets the requests recorded so far.
    ///
    /// Embedded backend only: on a real etcd it does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().record_requests().start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// client.put("a", "1", None).await?;
    /// etcd.clear_requests();
    /// assert!(etcd.requests().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear_requests(&self) {
        if let Some(hooks) = self.fault_hooks() {
            hooks.clear_requests();
        }
    }

    /// The watchers open on the server now, over every stream and member.
    ///
    /// Embedded backend only: on a real etcd it is empty.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// let mut stream = client.watch("/config", None).await?;
    /// stream.message().await?; // created
    ///
    /// let watchers = etcd.watchers();
    /// assert_eq!(watchers.len(), 1);
    /// assert_eq!(watchers[0].key, b"/config");
    /// # Ok(())
    /// # }
    /// ```
    pub fn watchers(&self) -> Vec<WatcherInfo> {
        self.fault_hooks()
            .map(|hooks| hooks.watchers())
            .unwrap_or_default()
    }

    /// Every key under `prefix` (all keys for `""`) at the current revision, in key order,
    /// with its revisions, version and lease, read directly from the server's state.
    ///
    /// Embedded backend only: on a real etcd it is empty.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .fixture_str(r#"{"/app/a": "1", "/app/b": "2", "/other": "3"}"#)
    ///     .start()?;
    /// let keys: Vec<String> = etcd.range("/app/").iter().map(|kv| kv.key_str()).collect();
    /// assert_eq!(keys, ["/app/a", "/app/b"]);
    /// assert_eq!(etcd.range("/app/b")[0].mod_revision, 3);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn range(&self, prefix: impl AsRef<[u8]>) -> Vec<KeyValue> {
        let Some(engine) = self.engine() else {
            return Vec::new();
        };
        engine
            .inspect_prefix(prefix.as_ref())
            .into_iter()
            .map(|kv| KeyValue {
                key: kv.key.into(),
                value: kv.value.into(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                lease: kv.lease,
            })
            .collect()
    }

    /// Every lease, soonest expiry first, with its remaining time on the server's clock and
    /// its keys.
    ///
    /// Embedded backend only: on a real etcd it is empty.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .manual_clock()
    ///     .fixture_str(r#"{"leases": [{"name": "s", "ttl": 30, "id": 7}],
    ///                     "kvs": [{"key": "/lock", "value": "me", "lease": "s"}]}"#)
    ///     .start()?;
    /// etcd.advance(Duration::from_secs(10));
    ///
    /// let leases = etcd.leases();
    /// assert_eq!(leases[0].id, 7);
    /// assert_eq!(leases[0].remaining, Duration::from_secs(20));
    /// assert_eq!(leases[0].keys, [b"/lock".to_vec()]);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let Some(engine) = self.engine() else {
            return Vec::new();
        };
        engine
            .inspect_leases()
            .into_iter()
            .map(|(id, ttl, remaining, keys)| LeaseInfo {
                id,
                ttl,
                remaining,
                keys,
            })
            .collect()
    }
}

/// The engine calls inspection needs, kept apart from the engine's request paths.
impl Engine {
    fn inspect_prefix(&self, prefix: &[u8]) -> Vec<crate::pb::mvccpb::KeyValue> {
        use crate::pb::etcdserverpb::RangeRequest;
        let (key, range_end) = if prefix.is_empty() {
            (vec![0], vec![0])
        } else {
            (prefix.to_vec(), crate::engine::prefix_end(prefix))
        };
        let request = RangeRequest {
            key,
            range_end,
            ..Default::default()
        };
        self.range(&request).map(|r| r.kvs).unwrap_or_default()
    }
}
