//! Ready-made [rstest](https://docs.rs/rstest) fixtures (feature `rstest`), and the patterns
//! for using test-etcd with rstest.
//!
//! # A fixture per test
//!
//! Each test gets its own server, started before the test and dropped after it: the simplest
//! and most isolated pattern, and cheap (a server starts in well under a millisecond).
//!
//! ```
//! use rstest::rstest;
//! use test_etcd::rstest::{connected, etcd, seeded_etcd, Connected};
//! use test_etcd::TestEtcd;
//!
//! #[rstest]
//! fn starts_empty(etcd: TestEtcd) {
//!     assert_eq!(etcd.revision(), 1);
//! }
//!
//! #[rstest]
//! fn reads_the_app_fixture(#[with("fixtures/app.json")] seeded_etcd: TestEtcd) {
//!     assert_eq!(seeded_etcd.get("/app/leader").as_deref(), Some("node-1"));
//! }
//!
//! // An async fixture: `#[future(awt)]` awaits it in the test's runtime.
//! #[rstest]
//! #[tokio::test]
//! async fn writes_through_a_client(#[future(awt)] connected: Connected) {
//!     let Connected { etcd, mut client } = connected;
//!     client.put("/k", "v", None).await.unwrap();
//!     assert_eq!(etcd.get("/k").as_deref(), Some("v"));
//! }
//! # assert_eq!(etcd().revision(), 1);
//! # assert!(seeded_etcd("fixtures/app.json").revision() > 1);
//! ```
//!
//! # One test per fixture file
//!
//! `#[files(...)]` runs a test once for every file a glob matches (relative to the crate
//! under test), e.g. to check that every fixture a project ships loads:
//!
//! ```
//! use std::path::PathBuf;
//! use rstest::rstest;
//!
//! #[rstest]
//! fn every_fixture_loads(#[files("fixtures/*.json")] path: PathBuf) {
//!     test_etcd::TestEtcd::builder().fixture(&path).start().unwrap();
//! }
//! ```
//!
//! # One server shared by many tests
//!
//! Tests in one binary can share a server started once, each under its own key prefix so
//! that they do not see each other's keys:
//!
//! ```
//! use std::sync::LazyLock;
//! use test_etcd::TestEtcd;
//!
//! static SHARED: LazyLock<TestEtcd> = LazyLock::new(TestEtcd::start);
//!
//! /// A prefix of this test's own: its name.
//! fn prefix(test: &str) -> String {
//!     format!("/{test}/")
//! }
//!
//! #[tokio::test]
//! async fn counts_sessions() {
//!     let p = prefix("counts_sessions");
//!     let mut client = etcd_client::Client::connect(SHARED.endpoints(), None).await.unwrap();
//!     client.put(format!("{p}a"), "1", None).await.unwrap();
//!     assert_eq!(SHARED.range(&p).len(), 1);
//! }
//! ```
//!
//! Trade-offs: it saves a start per test (well under a millisecond), and costs isolation.
//! Revisions are shared, so a test cannot assert absolute revisions, only relative ones;
//! server-wide state is shared too (leases list, alarms, auth, compaction, the manual clock,
//! faults, restarts), so a test that uses any of those needs a server of its own. A static is
//! never dropped: the server runs until the test binary exits (its thread and port go with the
//! process). rstest's `#[once]` fixtures behave the same way. Prefer a server per test unless
//! profiling shows starts matter.

use std::path::PathBuf;

use ::rstest::fixture;

use crate::TestEtcd;

/// An empty server, started for the test and dropped after it.
///
/// ```
/// #[rstest::rstest]
/// fn empty(etcd: test_etcd::TestEtcd) {
///     assert_eq!(etcd.revision(), 1);
/// }
/// # assert_eq!(test_etcd::rstest::etcd().revision(), 1);
/// ```
#[fixture]
pub fn etcd() -> TestEtcd {
    TestEtcd::start()
}

/// A server seeded from the fixture file at `path` (`fixtures/etcd.json` unless the test
/// gives one with `#[with("...")]`); a relative path resolves against the crate under test.
///
/// # Panics
/// If the fixture does not load, with the error naming the file, line, column and JSON path:
/// the test cannot run without it.
///
/// ```
/// #[rstest::rstest]
/// fn seeded(#[with("fixtures/flat.json")] seeded_etcd: test_etcd::TestEtcd) {
///     assert!(seeded_etcd.revision() > 1);
/// }
/// # assert!(test_etcd::rstest::seeded_etcd("fixtures/flat.json").revision() > 1);
/// ```
#[fixture]
pub fn seeded_etcd(#[default("fixtures/etcd.json")] path: &str) -> TestEtcd {
    match TestEtcd::builder().fixture(PathBuf::from(path)).start() {
        Ok(etcd) => etcd,
        Err(err) => panic!("test-etcd: {err}"),
    }
}

/// A server and an etcd client connected to it.
pub struct Connected {
    /// The server; dropping it stops it.
    pub etcd: TestEtcd,
    /// A client connected to every endpoint of the server.
    pub client: etcd_client::Client,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // etcd_client::Client is not Debug.
        f.debug_struct("Connected")
            .field("etcd", &self.etcd)
            .finish_non_exhaustive()
    }
}

/// An empty server (or the one given with `#[with(...)]`) and a client connected to it. An
/// async fixture: take it with `#[future(awt)]`.
///
/// # Panics
/// If the client cannot connect, which leaves the test nothing to do.
///
/// ```
/// use test_etcd::rstest::Connected;
///
/// #[rstest::rstest]
/// #[tokio::test]
/// async fn put(#[future(awt)] connected: Connected) {
///     let Connected { etcd, mut client } = connected;
///     client.put("k", "v", None).await.unwrap();
///     assert_eq!(etcd.revision(), 2);
/// }
/// ```
#[fixture]
pub async fn connected(etcd: TestEtcd) -> Connected {
    match etcd_client::Client::connect(etcd.endpoints(), None).await {
        Ok(client) => Connected { etcd, client },
        Err(err) => panic!("test-etcd: cannot connect a client: {err}"),
    }
}
