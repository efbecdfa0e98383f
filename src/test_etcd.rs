//! The [`TestEtcd`] guard and its builder.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Engine, Limits, StartRefusal, Version};
use crate::error::Error;
use crate::fixture::{self, FixtureSource};
use crate::server::{Context, Identity, Metrics, Running};

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
    /// The first member's address (the one `listen` chose).
    addr: SocketAddr,
    limits: Limits,
    metrics: Arc<Metrics>,
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
        format!("http://{}", self.addr)
    }

    /// The client URLs of every member serving now (in member ID order), in the form
    /// `etcd_client::Client::connect` takes. A removed member's is gone; a started one's
    /// is added.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().members(3).start()?;
    /// assert_eq!(etcd.endpoints().len(), 3);
    /// assert!(etcd.endpoints().contains(&etcd.endpoint()));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        self.running
            .endpoints()
            .addrs()
            .into_iter()
            .map(|addr| format!("http://{addr}"))
            .collect()
    }

    /// The socket address the server listens on; in a cluster, the first member's (`infra1`).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::start();
    /// assert!(etcd.addr().ip().is_loopback());
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts a member that MemberAdd added, as a real node joining the cluster would: it
    /// gets `name` and an endpoint of its own serving the same data, and shows as started in
    /// MemberList (so a learner can then be promoted). Returns its client URL.
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
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(Error::Start)?;
        let url = format!("http://{addr}");
        self.engine
            .start_member(id, name, url.clone())
            .map_err(|refusal| Error::Member {
                id,
                reason: match refusal {
                    StartRefusal::Unknown => "not a member of the cluster",
                    StartRefusal::AlreadyStarted => "it serves already",
                },
            })?;
        let ctx = context(&self.engine, &self.running, self.limits, &self.metrics, id);
        self.running.serve(listener, ctx).map_err(Error::Start)?;
        Ok(url)
    }

    /// The state as a snapshot in test-etcd's own format (not etcd's bbolt file): the same
    /// bytes as the data messages of the Snapshot RPC, which
    /// [`TestEtcdBuilder::restore_snapshot`] restores.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// let copy = test_etcd::TestEtcd::builder().restore_snapshot(etcd.snapshot()).start()?;
    /// assert_eq!(copy.get("k").as_deref(), Some("v"));
    /// assert_eq!(copy.revision(), etcd.revision());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn snapshot(&self) -> Vec<u8> {
        self.engine.snapshot()
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
#[derive(Debug, Default, Clone)]
#[must_use = "a builder does nothing until `.start()` is called"]
pub struct TestEtcdBuilder {
    fixtures: Vec<FixtureSource>,
    limits: Limits,
    addr: Option<SocketAddr>,
    members: Option<usize>,
    version: Option<String>,
    snapshot: Option<Vec<u8>>,
}

/// The services of member `id`, for its endpoint.
fn context(
    engine: &Engine,
    running: &Running,
    limits: Limits,
    metrics: &Arc<Metrics>,
    id: u64,
) -> Context {
    Context {
        engine: engine.clone(),
        identity: Identity::new(id, engine.clone()),
        max_message_bytes: limits.max_message_bytes(),
        endpoints: running.endpoints().clone(),
        metrics: Arc::clone(metrics),
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
        let version = match &self.version {
            None => Version::DEFAULT,
            Some(text) => {
                Version::parse(text, false).ok_or_else(|| Error::Version(text.clone()))?
            }
        };
        let engine = Engine::new(self.limits);
        if let Some(snapshot) = &self.snapshot {
            engine
                .restore(snapshot)
                .map_err(|err| Error::Snapshot(err.to_string()))?;
        }
        for source in &self.fixtures {
            let fixture = fixture::load(source)?;
            engine.seed(fixture.puts.into_iter().map(|p| (p.key, p.value)));
        }
        // Bind now and keep the sockets: picking free ports to bind later would race with
        // other tests doing the same.
        let first = self
            .addr
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let mut listeners = Vec::new();
        for i in 0..self.members.unwrap_or(1) {
            let addr = if i == 0 {
                first
            } else {
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
            };
            let listener =
                TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
            let addr = listener.local_addr().map_err(Error::Start)?;
            listeners.push((listener, addr));
        }
        let urls = listeners
            .iter()
            .map(|(_, a)| format!("http://{a}"))
            .collect();
        engine.bootstrap_cluster(urls, version);
        let running = Running::start().map_err(Error::Start)?;
        let metrics = Arc::new(Metrics::default());
        // The member the builder's `listen` address went to: the first bound.
        let first_bound = listeners.first().map_or(first, |(_, addr)| *addr);
        for member in engine.members() {
            // Members are listed by ID; each serves on the listener its client URL names.
            let url = member.client_ur_ls.first().cloned().unwrap_or_default();
            let Some(at) = listeners
                .iter()
                .position(|(_, a)| format!("http://{a}") == url)
            else {
                continue;
            };
            let (listener, _) = listeners.swap_remove(at);
            let ctx = context(&engine, &running, self.limits, &metrics, member.id);
            running.serve(listener, ctx).map_err(Error::Start)?;
        }
        Ok(TestEtcd {
            running,
            engine,
            addr: first_bound,
            limits: self.limits,
            metrics,
        })
    }
}
