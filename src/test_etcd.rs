//! The [`TestEtcd`] guard and its builder.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{Engine, Limits};
use crate::error::Error;
use crate::fixture::{self, FixtureSource};
use crate::server::{Context, Identity, Running, DEFAULT_PROGRESS_INTERVAL};

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
    running: Running,
    engine: Engine,
    /// What the server was started with, for forks.
    ctx: Context,
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
        format!("http://{}", self.running.addr())
    }

    /// The client URLs, in the form `etcd_client::Client::connect` takes.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert_eq!(etcd.endpoints(), vec![etcd.endpoint()]);
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// The socket address the server listens on.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert!(etcd.addr().ip().is_loopback());
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// The current value of `key` as UTF-8 text (lossy), read directly from the server's state
    /// for assertions. `None` if the key does not exist.
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
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// assert_eq!(etcd.get_bytes("k"), Some(b"v".to_vec()));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn get_bytes(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.engine.get(key.as_ref())
    }

    /// The current revision of the store: 1 when empty, +1 for every write.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"a": "1", "b": "2"}"#).start()?;
    /// assert_eq!(etcd.revision(), 3);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn revision(&self) -> i64 {
        self.engine.revision()
    }

    /// A new, independent server with this one's state: every key with its retained history,
    /// the revision and the compaction point. Writes to either never show in the other. The
    /// state is shared structurally until written, so a fork of a server with 100,000 keys costs
    /// about what a fork of an empty one does: load a big fixture once, fork it per test.
    ///
    /// ```
    /// let seed = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// let fork = seed.fork()?;
    /// assert_eq!(fork.get("k").as_deref(), Some("v"));
    /// assert_ne!(fork.endpoint(), seed.endpoint());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn fork(&self) -> Result<TestEtcd, Error> {
        let engine = self.engine.fork();
        let ctx = Context {
            engine: engine.clone(),
            ..self.ctx.clone()
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let running = Running::start(listener, ctx.clone()).map_err(Error::Start)?;
        Ok(TestEtcd {
            running,
            engine,
            ctx,
        })
    }

    /// Stops the server now; the same as dropping it, spelled out.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// let addr = etcd.addr();
    /// etcd.shutdown();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// ```
    pub fn shutdown(mut self) {
        self.running.stop();
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
}

impl Default for TestEtcdBuilder {
    fn default() -> Self {
        TestEtcdBuilder {
            fixtures: Vec::new(),
            limits: Limits::default(),
            addr: None,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
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

    /// Loads the fixtures, binds the port and starts serving. Returns once the server accepts
    /// connections.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().start()?;
    /// assert_eq!(etcd.revision(), 1);
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn start(self) -> Result<TestEtcd, Error> {
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
        let running = Running::start(listener, ctx.clone()).map_err(Error::Start)?;
        Ok(TestEtcd {
            running,
            engine,
            ctx,
        })
    }
}
