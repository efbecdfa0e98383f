//! An etcd-compatible gRPC server for tests, in process.
//!
//! [`TestEtcd`] starts a server on a free loopback port, seeded from JSON fixtures, that speaks
//! etcd's v3 API to any etcd client, and stops it when dropped. Behind it is a real MVCC store:
//! revisions, versions, history reads, transactions and compaction answer as etcd 3.7 does,
//! error strings included.
//!
//! # A first test
//!
//! ```
//! use test_etcd::TestEtcd;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Arrange: a server seeded from a fixture, and a client on it.
//! let etcd = TestEtcd::builder().fixture("fixtures/app.json").start()?;
//! let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
//!
//! // Act: the code under test talks to etcd.
//! client.put("/app/leader", "node-2", None).await?;
//!
//! // Assert: through the client, or straight from the server's state.
//! let resp = client.get("/app/leader", None).await?;
//! assert_eq!(resp.kvs()[0].value_str()?, "node-2");
//! assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-2"));
//! # Ok(())
//! # }
//! ```
//!
//! # Fixtures
//!
//! A fixture is a JSON file. The smallest form maps keys to string values:
//!
//! ```json
//! {"/app/leader": "node-1", "/app/config/mode": "primary"}
//! ```
//!
//! The full form lists key-values in order, with binary keys or values in base64 and any JSON
//! value stored as its serialised text:
//!
//! ```json
//! {"kvs": [
//!   {"key": "/app/leader", "value": "node-1"},
//!   {"key": "/app/logo", "value_base64": "iVBORw0KGgo="},
//!   {"key": "/app/config", "json": {"retries": 3}}
//! ]}
//! ```
//!
//! Several fixtures apply in the order given, each key as one put (so a fixture of two keys
//! leaves the store at revision 3). A fixture with a mistake is an [`Error::Fixture`] naming the
//! file, line, column and JSON path.
//!
//! # Backends
//!
//! The same guard can run on a real etcd instead of the embedded engine, for a nightly job that
//! checks a suite against the real thing: [`Backend::Real`] spawns etcd (a single node, or a
//! local cluster with [`TestEtcdBuilder::members`]) in a temp dir on free ports and removes it
//! all on drop; [`Backend::Existing`] shares a running etcd, each guard under a key prefix of its
//! own. `TEST_ETCD_BACKEND=real` (or `existing`) switches every guard whose builder did not
//! choose. The etcd binary comes from [`TestEtcdBuilder::etcd_binary`], `TEST_ETCD_BIN`, or the
//! `real-etcd` feature, which ships etcd 3.7.2.
//!
//! # Runtimes
//!
//! Each server runs on its own thread and runtime. [`TestEtcd::start`] is a plain function: call
//! it from `#[test]`, `#[tokio::test]` of either flavour (paused clock included) or an rstest
//! fixture. Dropping the guard stops the server, closes its connections and frees its port.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod engine;
mod error;
mod existing;
mod fixture;
mod pb;
mod real;
mod rpctypes;
mod server;
mod test_etcd;

pub use error::{Error, FixtureError};
pub use test_etcd::{Backend, TestEtcd, TestEtcdBuilder, BACKEND_ENV, ENDPOINTS_ENV, ETCD_BIN_ENV};
