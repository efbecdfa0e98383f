//! The [`TestEtcd`] guard and its builder.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{Engine, Limits};
use crate::error::Error;
use crate::existing::Existing;
use crate::fixture::{self, FixtureSource};
use crate::real::{RealConfig, RealEtcd};
use crate::server::{Context, Identity, Running, DEFAULT_PROGRESS_INTERVAL};

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
pub struct TestEtcd {
    inner: Inner,
}

enum Inner {
    Embedded { running: Running, engine: Engine },
    Real(RealEtcd),
    Existing(Existing),
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

    /// The client URL of the server, `http://127.0.0.1:PORT`.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert_eq!(etcd.endpoint(), format!("http://{}", etcd.addr()));
    /// ```
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The client URLs, in the form `etcd_client::Client::connect` takes: one per member of
    /// a real cluster.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert_eq!(etcd.endpoints(), vec![etcd.endpoint()]);
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        match &self.inner {
            Inner::Embedded { .. } => vec![self.endpoint()],
            Inner::Real(real) => real
                .addrs()
                .into_iter()
                .map(|addr| format!("http://{addr}"))
                .collect(),
            Inner::Existing(existing) => existing.endpoints(),
        }
    }

    /// The socket address the server listens on (of a real cluster: the first member's).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert!(etcd.addr().ip().is_loopback());
    /// ```
    pub fn addr(&self) -> SocketAddr {
        match &self.inner {
            Inner::Embedded { running, .. } => running.addr(),
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
            Inner::Embedded { engine, .. } => engine.get(key.as_ref()),
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
            Inner::Embedded { engine, .. } => engine.revision(),
            Inner::Real(real) => real
                .revision()
                .unwrap_or_else(|err| panic!("test-etcd: real etcd did not answer: {err}")),
            Inner::Existing(existing) => existing
                .revision()
                .unwrap_or_else(|err| panic!("test-etcd: etcd did not answer: {err}")),
        }
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
            Inner::Embedded { running, .. } => running.stop(),
            Inner::Real(real) => real.stop(),
            Inner::Existing(existing) => existing.stop(),
        }
    }
}

/// Configures a [`TestEtcd`] before it starts. Made by [`TestEtcd::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `.start()` is called"]
pub struct TestEtcdBuilder {
    fixtures: Vec<FixtureSource>,
    limits: Limits,
    addr: Option<SocketAddr>,
    progress_interval: Duration,
    backend: Option<Backend>,
    etcd_binary: Option<PathBuf>,
    members: usize,
    endpoints: Vec<String>,
}

impl Default for TestEtcdBuilder {
    fn default() -> Self {
        TestEtcdBuilder {
            fixtures: Vec::new(),
            limits: Limits::default(),
            addr: None,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            backend: None,
            etcd_binary: None,
            members: 1,
            endpoints: Vec::new(),
        }
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
        self.progress_interval = interval.max(Duration::from_millis(1));
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

    /// How many members the real backend starts: a local cluster of `n` etcd processes (1, a
    /// single node, by default). [`endpoints`](TestEtcd::endpoints) lists one URL per member.
    /// The embedded engine serves one member only: more is [`Error::NeedsReal`].
    ///
    /// ```no_run
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .backend(test_etcd::Backend::Real)
    ///     .members(3)
    ///     .start()?;
    /// assert_eq!(etcd.endpoints().len(), 3);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn members(mut self, n: usize) -> Self {
        self.members = n.max(1);
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
        if self.members > 1 {
            return Err(Error::NeedsReal { option: "members" });
        }
        let engine = Engine::new(self.limits);
        for source in &self.fixtures {
            let fixture = fixture::load(source)?;
            engine.seed(fixture.puts.into_iter().map(|p| (p.key, p.value)));
        }
        // Bind now and keep the socket: picking a free port to bind later would race with
        // other tests doing the same.
        let addr = self
            .addr
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let ctx = Context {
            engine: engine.clone(),
            identity: Identity::default(),
            max_message_bytes: self.limits.max_message_bytes(),
            progress_interval: self.progress_interval,
        };
        let running = Running::start(listener, ctx).map_err(Error::Start)?;
        Ok(TestEtcd {
            inner: Inner::Embedded { running, engine },
        })
    }

    fn start_real(self) -> Result<TestEtcd, Error> {
        if self.progress_interval < MIN_REAL_PROGRESS_INTERVAL {
            return Err(Error::NeedsEmbedded {
                option: "watch_progress_notify_interval",
            });
        }
        // Fixtures are read before spawning, so that a bad one fails fast.
        let mut puts = Vec::new();
        for source in &self.fixtures {
            let fixture = fixture::load(source)?;
            puts.extend(fixture.puts.into_iter().map(|p| (p.key, p.value)));
        }
        let config = RealConfig {
            binary: etcd_binary(self.etcd_binary)?,
            listen: self.addr,
            max_request_bytes: self.limits.max_request_bytes,
            max_txn_ops: self.limits.max_txn_ops,
            progress_interval: self.progress_interval,
            members: self.members,
        };
        let real = RealEtcd::start(&config)?;
        real.seed(puts)?;
        Ok(TestEtcd {
            inner: Inner::Real(real),
        })
    }
}

impl TestEtcdBuilder {
    fn start_existing(self) -> Result<TestEtcd, Error> {
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
                self.progress_interval != defaults.progress_interval,
                "watch_progress_notify_interval",
            ),
            (self.addr.is_some(), "listen"),
            (self.members > 1, "members"),
        ];
        if let Some((_, option)) = refused.into_iter().find(|(set, _)| *set) {
            return Err(Error::NotOnExisting { option });
        }
        let mut puts = Vec::new();
        for source in &self.fixtures {
            let fixture = fixture::load(source)?;
            puts.extend(fixture.puts.into_iter().map(|p| (p.key, p.value)));
        }
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
