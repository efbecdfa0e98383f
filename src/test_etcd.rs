//! The [`TestEtcd`] guard and its builder.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Clock, Engine, Limits, StartRefusal, Version};
use crate::error::Error;
use crate::existing::Existing;
use crate::fixture::{self, FixtureSource};
use crate::real::{RealConfig, RealEtcd};
use crate::server::{
    Context, Hooks, Identity, Metrics, Running, Transport, DEFAULT_PROGRESS_INTERVAL,
};

/// The environment variable that picks the backend of every [`TestEtcd`] whose builder did not
/// pick one: `embedded` (the default), `real` or `existing`.
pub const BACKEND_ENV: &str = "TEST_ETCD_BACKEND";

/// The environment variable naming the etcd binary the real backend runs, when the builder
/// names none. It wins over the binary of the `real-etcd` feature.
pub const ETCD_BIN_ENV: &str = "TEST_ETCD_BIN";

/// The environment variable listing the existing etcd endpoints (comma-separated
/// `http://host:port`) that [`Backend::Existing`] uses when the builder names none.
pub const ENDPOINTS_ENV: &str = "TEST_ETCD_ENDPOINTS";

/// What answers a [`TestEtcd`]'s endpoint.
///
/// ```
/// use test_etcd::{Backend, TestEtcd};
///
/// let etcd = TestEtcd::builder().backend(Backend::Embedded).start()?;
/// assert_eq!(etcd.backend(), Backend::Embedded);
/// # Ok::<(), test_etcd::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The in-process engine: starts in well under a millisecond and offers what a real etcd
    /// cannot. The default.
    Embedded,
    /// A real etcd process, single node, in a temp dir of its own on free loopback ports. The
    /// binary is the one given to [`TestEtcdBuilder::etcd_binary`], else `TEST_ETCD_BIN`, else
    /// the one the `real-etcd` feature ships.
    Real,
    /// An etcd that is already running (a shared cluster), given by
    /// [`TestEtcdBuilder::existing_endpoints`] or `TEST_ETCD_ENDPOINTS`. Each guard works under
    /// a key prefix of its own ([`TestEtcd::prefix`]): fixtures are put under it, `get` reads
    /// under it, and drop deletes everything under it. The revision is the shared store's.
    Existing,
}

impl Backend {
    /// The backend `TEST_ETCD_BACKEND` asks for, if it is set (and not empty).
    ///
    /// ```
    /// use test_etcd::Backend;
    ///
    /// let backend = Backend::from_env()?.unwrap_or(Backend::Embedded);
    /// println!("this run's guards use the {backend:?} backend");
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn from_env() -> Result<Option<Backend>, Error> {
        let Some(value) = std::env::var_os(BACKEND_ENV) else {
            return Ok(None);
        };
        match value.to_string_lossy().trim() {
            "" => Ok(None),
            "embedded" => Ok(Some(Backend::Embedded)),
            "real" => Ok(Some(Backend::Real)),
            "existing" => Ok(Some(Backend::Existing)),
            other => Err(Error::UnknownBackend(other.to_owned())),
        }
    }
}

/// An etcd-compatible server for one test. It listens on a free loopback port from
/// [`start`](TestEtcd::start) until it is dropped; dropping it closes every connection and stream
/// and frees the port.
///
/// The server runs on a thread of its own, so it works the same from `#[test]`,
/// `#[tokio::test]` of either flavour, and tests that pause tokio's clock.
///
/// ```
/// use test_etcd::TestEtcd;
///
/// let etcd = TestEtcd::start();
/// assert!(etcd.endpoint().starts_with("http://127.0.0.1:"));
/// ```
///
/// On [`Backend::Real`] and [`Backend::Existing`] the guard answers the same connection and
/// assertion methods (`endpoints`, `get`, `revision`, ...). What only the embedded engine can do
/// (faults, restart, inspection, dump, fork, manual time, in-process members, snapshots) is
/// documented on each method: those returning a `Result` fail with
/// [`Error::NeedsEmbedded`], the others do nothing and return an empty answer.
pub struct TestEtcd {
    inner: Inner,
}

/// What runs behind a [`TestEtcd`].
enum Inner {
    Embedded(Embedded),
    Real(RealEtcd),
    Existing(Existing),
}

/// The embedded engine's server and what its methods need.
struct Embedded {
    running: Running,
    engine: Engine,
    /// The first member's address (the one `listen` chose).
    addr: SocketAddr,
    limits: Limits,
    metrics: Arc<Metrics>,
    progress_interval: Duration,
    /// Faults, request log and watcher registry (`faults.rs`, `server/hooks.rs`).
    hooks: Arc<Hooks>,
}

/// Says what a method needs when the backend is not the embedded engine.
fn needs_embedded(option: &'static str) -> Error {
    Error::NeedsEmbedded { option }
}

impl fmt::Debug for TestEtcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestEtcd")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl TestEtcd {
    /// Starts an empty server on a free loopback port.
    ///
    /// # Panics
    /// If the operating system refuses a loopback socket or a thread, which leaves a test
    /// nothing to do; use [`TestEtcd::builder`] to handle that as an error instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), etcd_client::Error> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// client.put("/app/leader", "node-1", None).await?;
    /// assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn start() -> TestEtcd {
        match TestEtcd::builder().start() {
            Ok(etcd) => etcd,
            Err(err) => panic!("test-etcd: {err}"),
        }
    }

    /// A builder, to seed fixtures or change limits before starting.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .fixture_str(r#"{"/app/leader": "node-1"}"#)
    ///     .start()?;
    /// assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-1"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn builder() -> TestEtcdBuilder {
        TestEtcdBuilder::default()
    }

    /// The client URL of the server, `http://127.0.0.1:PORT`; in a cluster, the first
    /// member's (`infra1`, the one [`TestEtcdBuilder::listen`] places).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert_eq!(etcd.endpoint(), format!("http://{}", etcd.addr()));
    /// ```
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr())
    }

    /// `http`, or `https` for a server built with TLS.
    fn scheme(&self) -> &'static str {
        self.transport().map_or("http", Transport::scheme)
    }

    /// The embedded server, if the backend is the embedded engine.
    fn embedded(&self) -> Option<&Embedded> {
        match &self.inner {
            Inner::Embedded(embedded) => Some(embedded),
            Inner::Real(_) | Inner::Existing(_) => None,
        }
    }

    /// The embedded server, or [`Error::NeedsEmbedded`] naming `option`.
    fn embedded_for(&self, option: &'static str) -> Result<&Embedded, Error> {
        self.embedded().ok_or_else(|| needs_embedded(option))
    }

    /// The server's transport, for the TLS accessors (`None` off the embedded backend).
    pub(crate) fn transport(&self) -> Option<&Transport> {
        self.embedded().map(|e| e.running.transport())
    }

    /// The client URLs of every member serving now (in member ID order, `https://` with TLS), in the form
    /// `etcd_client::Client::connect` takes. A removed member's is gone; a started one's
    /// is added. On the real backend: one per member of the local cluster; on existing
    /// endpoints: the endpoints given.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().members(3).start()?;
    /// assert_eq!(etcd.endpoints().len(), 3);
    /// assert!(etcd.endpoints().contains(&etcd.endpoint()));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        match &self.inner {
            Inner::Embedded(embedded) => embedded
                .running
                .endpoints()
                .addrs()
                .into_iter()
                .map(|addr| format!("{}://{addr}", self.scheme()))
                .collect(),
            Inner::Real(real) => real
                .addrs()
                .into_iter()
                .map(|addr| format!("http://{addr}"))
                .collect(),
            Inner::Existing(existing) => existing.endpoints(),
        }
    }

    /// The socket address the server listens on; in a cluster, the first member's (`infra1`).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert!(etcd.addr().ip().is_loopback());
    /// ```
    pub fn addr(&self) -> SocketAddr {
        match &self.inner {
            Inner::Embedded(embedded) => embedded.addr,
            Inner::Real(real) => real.addr(),
            Inner::Existing(existing) => existing.addr(),
        }
    }

    /// Which backend answers: [`Backend::Embedded`] unless the builder or `TEST_ETCD_BACKEND`
    /// chose a real etcd.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .backend(test_etcd::Backend::Embedded)
    ///     .start()?;
    /// assert_eq!(etcd.backend(), test_etcd::Backend::Embedded);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Embedded { .. } => Backend::Embedded,
            Inner::Real(_) => Backend::Real,
            Inner::Existing(_) => Backend::Existing,
        }
    }

    /// The key prefix this guard works under: empty, except on [`Backend::Existing`], where
    /// the code under test should put its keys under it (fixtures and `get` already do).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .backend(test_etcd::Backend::Embedded)
    ///     .start()?;
    /// assert_eq!(etcd.prefix(), "");
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn prefix(&self) -> &str {
        match &self.inner {
            Inner::Existing(existing) => existing.prefix(),
            _ => "",
        }
    }

    /// Starts a member that MemberAdd added, as a real node joining the cluster would: it
    /// gets `name` and an endpoint of its own serving the same data, and shows as started in
    /// MemberList (so a learner can then be promoted). Returns its client URL. Embedded
    /// backend only: elsewhere [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// let options = etcd_client::MemberAddOptions::new().with_is_learner();
    /// let added = client.member_add(["http://10.0.0.2:2380"], Some(options)).await?;
    /// let id = added.member().map(|m| m.id()).unwrap_or_default();
    ///
    /// let url = etcd.start_member(id, "node-2")?;
    ///
    /// assert!(etcd.endpoints().contains(&url));
    /// client.member_promote(id).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start_member(&self, id: u64, name: &str) -> Result<String, Error> {
        let this = self.embedded_for("start_member")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(Error::Start)?;
        let url = format!("{}://{addr}", self.scheme());
        this.engine
            .start_member(id, name, url.clone())
            .map_err(|refusal| Error::Member {
                id,
                reason: match refusal {
                    StartRefusal::Unknown => "not a member of the cluster",
                    StartRefusal::AlreadyStarted => "it serves already",
                },
            })?;
        let ctx = context(
            &this.engine,
            &this.running,
            this.limits,
            &this.metrics,
            this.progress_interval,
            &this.hooks,
            id,
        );
        this.running.serve(listener, ctx).map_err(Error::Start)?;
        Ok(url)
    }

    /// Moves the server's clock forward by `by`, then expires every lease whose deadline it
    /// passed: when this returns, their keys are deleted (each lease's in one revision, which
    /// watchers see as DELETE events). Nothing sleeps, so a test of a 60 s TTL takes no time.
    ///
    /// Meant for a server built with [`TestEtcdBuilder::manual_clock`], whose clock moves only
    /// when advanced. On the default real clock it jumps time ahead, which keeps running.
    ///
    /// Embedded backend only: a real etcd's clock cannot be moved, so there this does nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Arrange: a key on a 10 s lease.
    /// let etcd = test_etcd::TestEtcd::builder().manual_clock().start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// let lease = client.lease_grant(10, None).await?.id();
    /// let put = etcd_client::PutOptions::new().with_lease(lease);
    /// client.put("/session", "me", Some(put)).await?;
    ///
    /// // Act and assert: the key lives until the TTL has passed, not a moment longer.
    /// etcd.advance(Duration::from_millis(9_999));
    /// assert_eq!(etcd.get("/session").as_deref(), Some("me"));
    /// etcd.advance(Duration::from_millis(1));
    /// assert_eq!(etcd.get("/session"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn advance(&self, by: Duration) {
        if let Some(embedded) = self.embedded() {
            embedded.engine.advance(by);
        }
    }

    /// A new, independent server with this one's state: every key with its retained history,
    /// the revision, the compaction point, leases with their deadlines, and auth. Writes to
    /// either never show in the other. The store is shared structurally until written, so a fork
    /// of a server with 100,000 keys costs about what a fork of an empty one does: load a big
    /// fixture once, fork it per test. The fork has as many members as this server serves, on
    /// new ports. Embedded backend only: elsewhere [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// let seed = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// let fork = seed.fork()?;
    /// assert_eq!(fork.get("k").as_deref(), Some("v"));
    /// assert_ne!(fork.endpoint(), seed.endpoint());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn fork(&self) -> Result<TestEtcd, Error> {
        let this = self.embedded_for("fork")?;
        let engine = this.engine.fork();
        let members = this.running.endpoints().addrs().len().max(1);
        let version = engine.cluster_view().version;
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        launch(
            engine,
            members,
            any,
            version,
            this.limits,
            this.progress_interval,
            this.hooks.is_recording(),
            this.running.transport().clone(),
        )
    }

    /// A gRPC channel to this server that runs over an in-memory pipe: no port, no TCP, no
    /// network. Every RPC works on it, streams included. Hand it to `etcd-client` (feature
    /// `raw-channel`) with `Client::from_channel(etcd_client::Channel::Tonic(channel), None)`,
    /// or to any tonic client. It answers as the first member and stops working when the
    /// server stops. Call it from inside a tokio runtime: the channel's worker runs there.
    ///
    /// On the real and existing backends there is no in-process server: the channel is an
    /// ordinary (lazy) TCP channel to [`endpoint`](TestEtcd::endpoint) instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let channel = etcd.in_memory_channel().await;
    /// let mut client =
    ///     etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None).await?;
    /// client.put("k", "v", None).await?;
    /// assert_eq!(etcd.get("k").as_deref(), Some("v"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn in_memory_channel(&self) -> tonic::transport::Channel {
        let Some(this) = self.embedded() else {
            let endpoint =
                tonic::transport::Endpoint::from_shared(self.endpoint()).unwrap_or_else(|_| {
                    tonic::transport::Endpoint::from_static("http://unreachable.test-etcd")
                });
            return endpoint.connect_lazy();
        };
        let member = this.engine.members().first().map_or(0, |m| m.id);
        let serve = InMemory {
            ctx: context(
                &this.engine,
                &this.running,
                this.limits,
                &this.metrics,
                this.progress_interval,
                &this.hooks,
                member,
            ),
            running: this.running.handle(),
        };
        let connector = tower::service_fn(move |_: http::Uri| {
            let (client, server) = tokio::io::duplex(IN_MEMORY_BUFFER);
            serve.running.serve_in_memory(server, serve.ctx.clone());
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(client)) }
        });
        // The URI is never resolved: the connector above makes every connection.
        tonic::transport::Endpoint::from_static("http://in-memory.test-etcd")
            .connect_with_connector_lazy(connector)
    }

    /// The state as a snapshot in test-etcd's own format (not etcd's bbolt file): the same
    /// bytes as the data messages of the Snapshot RPC, which
    /// [`TestEtcdBuilder::restore_snapshot`] restores. Embedded backend only: elsewhere empty.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// let copy = test_etcd::TestEtcd::builder().restore_snapshot(etcd.snapshot()).start()?;
    /// assert_eq!(copy.get("k").as_deref(), Some("v"));
    /// assert_eq!(copy.revision(), etcd.revision());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn snapshot(&self) -> Vec<u8> {
        self.embedded()
            .map(|embedded| embedded.engine.snapshot())
            .unwrap_or_default()
    }

    /// The current value of `key` as UTF-8 text (lossy), read directly from the server's state
    /// for assertions (from a real etcd: with a Range request). `None` if the key does not exist.
    ///
    /// # Panics
    /// On the real backend, if etcd does not answer: the assertion cannot be made.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// assert_eq!(etcd.get("k").as_deref(), Some("v"));
    /// assert_eq!(etcd.get("missing"), None);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<String> {
        self.get_bytes(key)
            .map(|value| String::from_utf8_lossy(&value).into_owned())
    }

    /// The current value of `key` as bytes.
    ///
    /// # Panics
    /// On the real backend, if etcd does not answer.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// assert_eq!(etcd.get_bytes("k"), Some(b"v".to_vec()));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn get_bytes(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        match &self.inner {
            Inner::Embedded(embedded) => embedded.engine.get(key.as_ref()),
            Inner::Real(real) => real
                .get(key.as_ref())
                .unwrap_or_else(|err| panic!("test-etcd: real etcd did not answer: {err}")),
            Inner::Existing(existing) => existing
                .get(key.as_ref())
                .unwrap_or_else(|err| panic!("test-etcd: etcd did not answer: {err}")),
        }
    }

    /// The current revision of the store: 1 when empty, +1 for every write.
    ///
    /// # Panics
    /// On the real backend, if etcd does not answer.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"a": "1", "b": "2"}"#).start()?;
    /// assert_eq!(etcd.revision(), 3);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn revision(&self) -> i64 {
        match &self.inner {
            Inner::Embedded(embedded) => embedded.engine.revision(),
            Inner::Real(real) => real
                .revision()
                .unwrap_or_else(|err| panic!("test-etcd: real etcd did not answer: {err}")),
            Inner::Existing(existing) => existing
                .revision()
                .unwrap_or_else(|err| panic!("test-etcd: etcd did not answer: {err}")),
        }
    }

    /// The engine, for the inspection and fault methods in other modules.
    /// `None` off the embedded backend.
    pub(crate) fn engine(&self) -> Option<&Engine> {
        self.embedded().map(|embedded| &embedded.engine)
    }

    /// The hooks, for the fault and inspection methods in other modules.
    /// `None` off the embedded backend.
    pub(crate) fn hooks(&self) -> Option<&Arc<Hooks>> {
        self.embedded().map(|embedded| &embedded.hooks)
    }

    /// Stops the server now; the same as dropping it, spelled out. A real etcd is killed and
    /// reaped, and its directory removed.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// let addr = etcd.addr();
    /// etcd.shutdown();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// ```
    pub fn shutdown(mut self) {
        match &mut self.inner {
            Inner::Embedded(embedded) => embedded.running.stop(),
            Inner::Real(real) => real.stop(),
            Inner::Existing(existing) => existing.stop(),
        }
    }
}

/// Bytes buffered each way in an in-memory connection.
const IN_MEMORY_BUFFER: usize = 256 * 1024;

/// What an in-memory connection needs to reach the server.
#[derive(Clone)]
struct InMemory {
    ctx: Context,
    running: crate::server::RunningHandle,
}

/// Configures a [`TestEtcd`] before it starts. Made by [`TestEtcd::builder`].
#[derive(Debug, Default, Clone)]
#[must_use = "a builder does nothing until `.start()` is called"]
pub struct TestEtcdBuilder {
    fixtures: Vec<FixtureSource>,
    limits: Limits,
    addr: Option<SocketAddr>,
    members: Option<usize>,
    version: Option<String>,
    snapshot: Option<Vec<u8>>,
    progress_interval: Option<Duration>,
    manual_clock: bool,
    record_requests: bool,
    token_ttl: Option<Duration>,
    backend: Option<Backend>,
    etcd_binary: Option<PathBuf>,
    endpoints: Vec<String>,
    /// TLS, and whether clients must present a certificate (set in `crate::tls`).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsMode>,
}

/// The services of member `id`, for its endpoint.
fn context(
    engine: &Engine,
    running: &Running,
    limits: Limits,
    metrics: &Arc<Metrics>,
    progress_interval: Duration,
    hooks: &Arc<Hooks>,
    id: u64,
) -> Context {
    Context {
        engine: engine.clone(),
        identity: Identity::new(id, engine.clone()),
        max_message_bytes: limits.max_message_bytes(),
        endpoints: running.endpoints().clone(),
        metrics: Arc::clone(metrics),
        progress_interval,
        hooks: Arc::clone(hooks),
    }
}

impl TestEtcdBuilder {
    /// Seeds the server from a JSON fixture file. A relative path is resolved against the
    /// directory of the crate whose tests run (`CARGO_MANIFEST_DIR` at run time). Fixtures apply
    /// in the order given, each key as one put.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture("fixtures/app.json").start()?;
    /// assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-1"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn fixture(mut self, path: impl Into<PathBuf>) -> Self {
        self.fixtures.push(FixtureSource::Path(path.into()));
        self
    }

    /// Seeds the server from fixture text.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .fixture_str(r#"{"kvs": [{"key": "/cfg", "json": {"retries": 3}}]}"#)
    ///     .start()?;
    /// assert_eq!(etcd.get("/cfg").as_deref(), Some(r#"{"retries":3}"#));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn fixture_str(mut self, json: impl Into<String>) -> Self {
        self.fixtures.push(FixtureSource::Text(json.into()));
        self
    }

    /// Seeds the server from a fixture held as a JSON value.
    ///
    /// ```
    /// let fixture = serde_json::json!({"/feature/dark-mode": "on"});
    /// let etcd = test_etcd::TestEtcd::builder().fixture_json(fixture).start()?;
    /// assert_eq!(etcd.get("/feature/dark-mode").as_deref(), Some("on"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn fixture_json(mut self, fixture: serde_json::Value) -> Self {
        self.fixtures.push(FixtureSource::Json(fixture));
        self
    }

    /// The largest write request accepted, in bytes (etcd's `--max-request-bytes`, 1.5 MiB by
    /// default). gRPC messages over this plus 512 KiB are refused before decoding, as by etcd.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().max_request_bytes(64 * 1024).start()?;
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_request_bytes = bytes;
        self
    }

    /// The most operations in one txn level (etcd's `--max-txn-ops`, 128 by default).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().max_txn_ops(16).start()?;
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn max_txn_ops(mut self, ops: usize) -> Self {
        self.limits.max_txn_ops = ops;
        self
    }

    /// Simulates a cluster of `n` members (1 by default; 0 counts as 1). Each member has its
    /// own ID, name (`infra1`, `infra2`, ...), peer URL and loopback endpoint, all serving the
    /// same data; MemberList shows them all and [`TestEtcd::endpoints`] returns every
    /// endpoint. The first member is the leader.
    ///
    /// On [`Backend::Real`] it starts a local cluster of `n` etcd processes instead, each with
    /// its own endpoint; [`Backend::Existing`] refuses it ([`Error::NotOnExisting`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().members(3).start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// assert_eq!(client.member_list().await?.members().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn members(mut self, n: usize) -> Self {
        self.members = Some(n.max(1));
        self
    }

    /// The etcd version the server reports (Status, `/version`, `/metrics`), `MAJOR.MINOR.PATCH`;
    /// 3.7.2 by default. The cluster and storage versions follow as `MAJOR.MINOR.0`, and
    /// Downgrade accepts the minor release before it. Starting fails with [`Error::Version`]
    /// if it does not parse.
    ///
    /// Embedded backend only: on the others starting fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().version("3.6.5").start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// assert_eq!(client.status().await?.version(), "3.6.5");
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The backend size at which writes are refused with NOSPACE (etcd's
    /// `--quota-backend-bytes`, 2 GiB by default). The backend size is modelled: a fresh store
    /// takes 20 KiB and every put adds 256 bytes plus its key and value, until Defragment
    /// shrinks it to what compaction left.
    ///
    /// Embedded backend only: on the others starting fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().quota_backend_bytes(64 * 1024).start()?;
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    ///
    /// // 20 KiB of a fresh store plus this put reach the quota.
    /// let err = client.put("big", vec![0u8; 50_000], None).await.unwrap_err();
    ///
    /// assert!(err.to_string().contains("etcdserver: mvcc: database space exceeded"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn quota_backend_bytes(mut self, bytes: u64) -> Self {
        self.limits.quota_backend_bytes = bytes;
        self
    }

    /// Starts from a snapshot taken with [`TestEtcd::snapshot`] or the Snapshot RPC (the
    /// blobs of every message concatenated, with or without the SHA-256 trailer): the same
    /// keys, revisions, history, compaction point and leases. Fixtures apply on top of it.
    /// Starting fails with [`Error::Snapshot`] for anything else, etcd's own snapshots
    /// included.
    ///
    /// Embedded backend only: on the others starting fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"a": "1"}"#).start()?;
    /// let copy = test_etcd::TestEtcd::builder().restore_snapshot(etcd.snapshot()).start()?;
    /// assert_eq!(copy.get("a").as_deref(), Some("1"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn restore_snapshot(mut self, snapshot: impl Into<Vec<u8>>) -> Self {
        self.snapshot = Some(snapshot.into());
        self
    }

    /// How often a watcher created with `progress_notify` gets a progress notification when no
    /// event reached it (etcd's `--watch-progress-notify-interval`, 10 minutes by default).
    /// A real etcd takes 100 ms at least; a shorter interval needs the embedded backend
    /// ([`Error::NeedsEmbedded`]).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .watch_progress_notify_interval(Duration::from_millis(100))
    ///     .start()?;
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn watch_progress_notify_interval(mut self, interval: Duration) -> Self {
        // tokio's interval refuses zero; etcd's minimum is 100 ms anyway.
        self.progress_interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Gives the server a manual clock: time stands still (leases never expire on their own)
    /// until the test calls [`TestEtcd::advance`]. Lease TTLs, TimeToLive and expiry all read
    /// this clock, so expiry tests need no sleeping. It is the server's own clock: a test that
    /// pauses or advances tokio's clock changes nothing here.
    ///
    /// Embedded backend only: on the others starting fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .manual_clock()
    ///     .fixture_str(r#"{"leases": [{"name": "s", "ttl": 30}],
    ///                     "kvs": [{"key": "/lock", "value": "me", "lease": "s"}]}"#)
    ///     .start()?;
    /// etcd.advance(Duration::from_secs(29));
    /// assert_eq!(etcd.get("/lock").as_deref(), Some("me"));
    /// etcd.advance(Duration::from_secs(1));
    /// assert_eq!(etcd.get("/lock"), None);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }
    /// Records every request the server receives, for [`TestEtcd::requests`]. Off by default:
    /// a long test would keep every request in memory.
    ///
    /// Embedded backend only: on the others starting fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().record_requests().start()?;
    /// assert!(etcd.requests().is_empty());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn record_requests(mut self) -> Self {
        self.record_requests = true;
        self
    }

    /// How long an auth token stays valid without use (etcd's `--auth-token-ttl`, 300 s by
    /// default). Each use pushes the deadline back by this much, as etcd's simple tokens do.
    /// Tokens read the server's clock, so with [`manual_clock`](Self::manual_clock) a test
    /// expires one with [`TestEtcd::advance`]. Whole seconds as etcd's flag takes them; finer
    /// values work too.
    ///
    /// Embedded backend only: on the others starting fails with [`Error::NeedsEmbedded`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Arrange: auth on from a fixture, tokens living 10 s, a logged-in client.
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .manual_clock()
    ///     .auth_token_ttl(Duration::from_secs(10))
    ///     .fixture_str(r#"{"auth": {"enabled": true, "users": [
    ///         {"name": "root", "password": "pw", "roles": ["root"]}]}}"#)
    ///     .start()?;
    /// let login = etcd_client::ConnectOptions::new().with_user("root", "pw");
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), Some(login)).await?;
    ///
    /// // Act: ten idle seconds.
    /// etcd.advance(Duration::from_secs(10));
    ///
    /// // Assert: the token is gone.
    /// let err = client.get("k", None).await.unwrap_err();
    /// assert!(err.to_string().contains("etcdserver: invalid auth token"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn auth_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = Some(ttl);
        self
    }
    /// Listens on `addr` instead of a free loopback port. Starting fails with
    /// [`Error::Bind`] if the address is taken.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().listen("127.0.0.1:0".parse().unwrap()).start()?;
    /// assert!(etcd.addr().port() != 0);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Which backend to start, whatever `TEST_ETCD_BACKEND` says. Without this call the
    /// variable decides, and without the variable the embedded engine runs.
    ///
    /// ```no_run
    /// // Needs the `real-etcd` feature or TEST_ETCD_BIN.
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .backend(test_etcd::Backend::Real)
    ///     .fixture_str(r#"{"k": "v"}"#)
    ///     .start()?;
    /// assert_eq!(etcd.get("k").as_deref(), Some("v"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The etcd binary the real backend runs, instead of `TEST_ETCD_BIN` or the `real-etcd`
    /// feature's. Has no effect on the embedded backend.
    ///
    /// ```no_run
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .backend(test_etcd::Backend::Real)
    ///     .etcd_binary("/usr/local/bin/etcd")
    ///     .start()?;
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn etcd_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.etcd_binary = Some(path.into());
        self
    }

    /// The endpoints of an existing etcd for [`Backend::Existing`], instead of
    /// `TEST_ETCD_ENDPOINTS`. Has no effect on the other backends.
    ///
    /// ```no_run
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .backend(test_etcd::Backend::Existing)
    ///     .existing_endpoints(["http://127.0.0.1:2379"])
    ///     .fixture_str(r#"{"/app/leader": "node-1"}"#)
    ///     .start()?;
    /// // The fixture went under the guard's prefix, and `get` reads under it.
    /// assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-1"));
    /// assert!(etcd.prefix().starts_with("/test-etcd/"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn existing_endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Loads the fixtures, binds the port and starts serving. Returns once the server accepts
    /// connections (a real etcd: once it answers a read).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().start()?;
    /// assert_eq!(etcd.revision(), 1);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn start(self) -> Result<TestEtcd, Error> {
        let backend = match self.backend {
            Some(backend) => backend,
            None => Backend::from_env()?.unwrap_or(Backend::Embedded),
        };
        match backend {
            Backend::Embedded => self.start_embedded(),
            Backend::Real => self.start_real(),
            Backend::Existing => self.start_existing(),
        }
    }

    fn start_embedded(self) -> Result<TestEtcd, Error> {
        let version = match &self.version {
            None => Version::DEFAULT,
            Some(text) => {
                Version::parse(text, false).ok_or_else(|| Error::Version(text.clone()))?
            }
        };
        let clock = if self.manual_clock {
            Clock::manual()
        } else {
            Clock::real()
        };
        let engine = Engine::with_clock(self.limits, clock);
        if let Some(ttl) = self.token_ttl {
            engine.auth(|auth| auth.set_token_ttl(ttl));
        }
        if let Some(snapshot) = &self.snapshot {
            engine
                .restore(snapshot)
                .map_err(|err| Error::Snapshot(err.to_string()))?;
        }
        for source in &self.fixtures {
            seed(&engine, fixture::load(source)?, source)?;
        }
        let first = self
            .addr
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let progress = self.progress_interval.unwrap_or(DEFAULT_PROGRESS_INTERVAL);
        #[cfg(feature = "tls")]
        let transport = crate::tls::transport(self.tls)?;
        #[cfg(not(feature = "tls"))]
        let transport = Transport::default();
        launch(
            engine,
            self.members.unwrap_or(1),
            first,
            version,
            self.limits,
            progress,
            self.record_requests,
            transport,
        )
    }
}

/// Binds a listener per member (the first on `first`), sets up the cluster and serves every
/// member of `engine` on a new server thread.
fn launch(
    engine: Engine,
    members: usize,
    first: SocketAddr,
    version: Version,
    limits: Limits,
    progress_interval: Duration,
    record_requests: bool,
    transport: Transport,
) -> Result<TestEtcd, Error> {
    // Bind now and keep the sockets: picking free ports to bind later would race with
    // other tests doing the same.
    let mut listeners = Vec::new();
    for i in 0..members {
        let addr = if i == 0 {
            first
        } else {
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
        };
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(Error::Start)?;
        listeners.push((listener, addr));
    }
    let scheme = transport.scheme();
    let urls = listeners
        .iter()
        .map(|(_, a)| format!("{scheme}://{a}"))
        .collect();
    engine.bootstrap_cluster(urls, version);
    let running = Running::start(transport).map_err(Error::Start)?;
    running.run_expiry(engine.clone());
    let metrics = Arc::new(Metrics::default());
    let hooks = Arc::new(Hooks::default());
    hooks.set_recording(record_requests);
    // The member the builder's `listen` address went to: the first bound.
    let first_bound = listeners.first().map_or(first, |(_, addr)| *addr);
    for member in engine.members() {
        // Members are listed by ID; each serves on the listener its client URL names.
        let url = member.client_ur_ls.first().cloned().unwrap_or_default();
        let Some(at) = listeners
            .iter()
            .position(|(_, a)| format!("{scheme}://{a}") == url)
        else {
            continue;
        };
        let (listener, _) = listeners.swap_remove(at);
        let ctx = context(
            &engine,
            &running,
            limits,
            &metrics,
            progress_interval,
            &hooks,
            member.id,
        );
        running.serve(listener, ctx).map_err(Error::Start)?;
    }
    Ok(TestEtcd {
        inner: Inner::Embedded(Embedded {
            running,
            engine,
            addr: first_bound,
            limits,
            metrics,
            progress_interval,
            hooks,
        }),
    })
}

pub(crate) fn seed(
    engine: &Engine,
    fixture: fixture::Fixture,
    source: &FixtureSource,
) -> Result<(), Error> {
    let ids: Vec<i64> = if let Some(history) = &fixture.history {
        // A history describes the store from revision 1 (its leases included).
        if !engine.is_fresh() {
            return Err(fixture::history_not_first(source).into());
        }
        engine.restore_history(history);
        history.named.clone()
    } else {
        // The schema allows only TTLs etcd grants, and an ID taken by an earlier fixture is the
        // same lease, so granting cannot fail; a lease that did would leave its keys unattached.
        fixture
            .leases
            .iter()
            .map(|lease| engine.seed_lease(lease.id, lease.ttl).unwrap_or(0))
            .collect()
    };
    let puts = fixture.puts.into_iter().map(|put| {
        let lease = put.lease.and_then(|i| ids.get(i).copied()).unwrap_or(0);
        (put.key, put.value, lease)
    });
    // Every lease a put names was granted just above.
    let _ = engine.seed(puts);
    if let Some(auth) = &fixture.auth {
        seed_auth(engine, auth);
    }
    Ok(())
}

/// Adds a fixture's roles and users, then enables auth if it asks. The schema checked what
/// etcd's RPCs would refuse, so the only failures left are "already exists" from an earlier
/// fixture: that role or user is then extended.
fn seed_auth(engine: &Engine, fixture: &fixture::FixtureAuth) {
    use crate::pb::authpb::{permission::Type, Permission, UserAddOptions};
    use crate::pb::etcdserverpb::AuthUserAddRequest;
    engine.auth(|auth| {
        for role in &fixture.roles {
            let _ = auth.role_add(&role.name);
            for perm in &role.permissions {
                let perm_type = match perm.kind {
                    fixture::PermissionKind::Read => Type::Read,
                    fixture::PermissionKind::Write => Type::Write,
                    fixture::PermissionKind::ReadWrite => Type::Readwrite,
                };
                let perm = Permission {
                    perm_type: perm_type as i32,
                    key: perm.key.clone(),
                    range_end: perm.range_end.clone(),
                };
                let _ = auth.role_grant_permission(&role.name, Some(&perm));
            }
        }
        for user in &fixture.users {
            if let Some(stored) = user.password_hash {
                let (mut salt, mut hash) = ([0u8; 16], [0u8; 32]);
                salt.copy_from_slice(&stored[..16]);
                hash.copy_from_slice(&stored[16..]);
                let _ = auth.user_add_hashed(&user.name, salt, hash);
                for role in &user.roles {
                    let _ = auth.user_grant_role(&user.name, role);
                }
                continue;
            }
            let _ = auth.user_add(&AuthUserAddRequest {
                name: user.name.clone(),
                password: user.password.clone().unwrap_or_default(),
                options: Some(UserAddOptions {
                    no_password: user.password.is_none(),
                }),
                hashed_password: String::new(),
            });
            for role in &user.roles {
                let _ = auth.user_grant_role(&user.name, role);
            }
        }
        if fixture.enabled {
            let _ = auth.enable(&crate::engine::Caller::Anyone);
        }
    });
}

impl TestEtcdBuilder {
    fn start_real(self) -> Result<TestEtcd, Error> {
        self.refuse_embedded_only()?;
        let progress_interval = self.progress_interval.unwrap_or(DEFAULT_PROGRESS_INTERVAL);
        if progress_interval < MIN_REAL_PROGRESS_INTERVAL {
            return Err(Error::NeedsEmbedded {
                option: "watch_progress_notify_interval",
            });
        }
        // Fixtures are read and checked before spawning, so that a bad one fails fast.
        let plan = crate::real_seed::SeedPlan::new(&self.fixtures, self.limits.max_txn_ops)?;
        let config = RealConfig {
            binary: etcd_binary(self.etcd_binary)?,
            listen: self.addr,
            max_request_bytes: self.limits.max_request_bytes,
            max_txn_ops: self.limits.max_txn_ops,
            progress_interval,
            members: self.members.unwrap_or(1),
        };
        let mut real = RealEtcd::start(&config)?;
        real.seed(plan)?;
        Ok(TestEtcd {
            inner: Inner::Real(real),
        })
    }
}

impl TestEtcdBuilder {
    fn start_existing(self) -> Result<TestEtcd, Error> {
        self.refuse_embedded_only()?;
        // Options that configure a server we start cannot reach one we did not start.
        let defaults = TestEtcdBuilder::default();
        let refused = [
            (
                self.limits.max_request_bytes != defaults.limits.max_request_bytes,
                "max_request_bytes",
            ),
            (
                self.limits.max_txn_ops != defaults.limits.max_txn_ops,
                "max_txn_ops",
            ),
            (
                self.progress_interval.is_some(),
                "watch_progress_notify_interval",
            ),
            (self.addr.is_some(), "listen"),
            (self.members.is_some_and(|n| n > 1), "members"),
        ];
        if let Some((_, option)) = refused.into_iter().find(|(set, _)| *set) {
            return Err(Error::NotOnExisting { option });
        }
        let puts = self.fixture_puts()?;
        let endpoints = if self.endpoints.is_empty() {
            std::env::var(ENDPOINTS_ENV)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect()
        } else {
            self.endpoints
        };
        let existing = Existing::start(endpoints)?;
        existing.seed(puts)?;
        Ok(TestEtcd {
            inner: Inner::Existing(existing),
        })
    }
}

impl TestEtcdBuilder {
    /// Fails with [`Error::NeedsEmbedded`] if an option only the embedded engine has was set.
    fn refuse_embedded_only(&self) -> Result<(), Error> {
        let defaults = TestEtcdBuilder::default();
        #[cfg(feature = "tls")]
        let tls = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        let refused = [
            (self.manual_clock, "manual_clock"),
            (self.record_requests, "record_requests"),
            (tls, "tls"),
            (self.snapshot.is_some(), "restore_snapshot"),
            (self.version.is_some(), "version"),
            (
                self.limits.quota_backend_bytes != defaults.limits.quota_backend_bytes,
                "quota_backend_bytes",
            ),
            (self.token_ttl.is_some(), "auth_token_ttl"),
        ];
        match refused.into_iter().find(|(set, _)| *set) {
            Some((_, option)) => Err(Error::NeedsEmbedded { option }),
            None => Ok(()),
        }
    }

    /// The fixtures' puts, for existing endpoints (shared, under a prefix). Leases, a history
    /// and auth would reach beyond the prefix: a fixture with them is
    /// [`Error::NotOnExisting`] there. (A real etcd of the guard's own takes them.)
    fn fixture_puts(&self) -> Result<Vec<KeyValuePair>, Error> {
        let mut puts = Vec::new();
        for source in &self.fixtures {
            let fixture = fixture::load(source)?;
            if !fixture.leases.is_empty() {
                return Err(Error::NotOnExisting {
                    option: "fixture leases",
                });
            }
            if fixture.history.is_some() {
                return Err(Error::NotOnExisting {
                    option: "fixture history",
                });
            }
            if fixture.auth.is_some() {
                return Err(Error::NotOnExisting {
                    option: "fixture auth",
                });
            }
            puts.extend(fixture.puts.into_iter().map(|p| (p.key, p.value)));
        }
        Ok(puts)
    }
}

/// A key and its value, as a fixture puts them on a real etcd.
type KeyValuePair = (Vec<u8>, Vec<u8>);

/// etcd refuses to notify progress more often than this.
const MIN_REAL_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The binary the real backend runs: the builder's, else `TEST_ETCD_BIN`, else the feature's.
fn etcd_binary(given: Option<PathBuf>) -> Result<PathBuf, Error> {
    if let Some(path) = given {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os(ETCD_BIN_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    vendored_binary()
}

#[cfg(feature = "real-etcd")]
fn vendored_binary() -> Result<PathBuf, Error> {
    etcd_bin_vendored::etcd_bin_path()
        .map(PathBuf::from)
        .map_err(|_| Error::NoEtcdBinary)
}

#[cfg(not(feature = "real-etcd"))]
fn vendored_binary() -> Result<PathBuf, Error> {
    Err(Error::NoEtcdBinary)
}
