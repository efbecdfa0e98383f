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
//! Leases are listed by name and keys attach to them:
//!
//! ```json
//! {"leases": [{"name": "session", "ttl": 30}],
//!  "kvs": [{"key": "/svc/a", "value": "10.0.0.1", "lease": "session"}]}
//! ```
//!
//! Several fixtures apply in the order given, each key as one put (so a fixture of two keys
//! leaves the store at revision 3). A fixture with a mistake is an [`Error::Fixture`] naming the
//! file, line, column and JSON path.
//!
//! # Time
//!
//! Lease deadlines are read from the server's one clock: the real clock by default, or a manual
//! one ([`TestEtcdBuilder::manual_clock`]) that moves only when the test calls
//! [`TestEtcd::advance`], which returns once every lease that fell due has expired:
//!
//! ```
//! use std::time::Duration;
//!
//! let etcd = test_etcd::TestEtcd::builder()
//!     .manual_clock()
//!     .fixture_str(r#"{"leases": [{"name": "s", "ttl": 60}],
//!                     "kvs": [{"key": "/leader", "value": "me", "lease": "s"}]}"#)
//!     .start()?;
//! etcd.advance(Duration::from_secs(60));
//! assert_eq!(etcd.get("/leader"), None);
//! # Ok::<(), test_etcd::Error>(())
//! ```
//!
//! # Clusters, maintenance and HTTP
//!
//! [`TestEtcdBuilder::members`] simulates a cluster whose members each have their own endpoint
//! over the same data; MemberAdd, [`TestEtcd::start_member`], MemberPromote and MemberRemove
//! work as etcd's member workflow does. The Maintenance service answers as etcd's (Status,
//! alarms with their effects, the space quota of [`TestEtcdBuilder::quota_backend_bytes`],
//! Hash, HashKV, Defragment, MoveLeader, Downgrade); Snapshot streams our own format, which
//! [`TestEtcdBuilder::restore_snapshot`] restores. Every endpoint also answers etcd's HTTP
//! `/health`, `/livez`, `/readyz`, `/version` and `/metrics` on the same port, and etcd's JSON
//! gateway (`POST /v3/kv/range` and the rest of grpc-gateway's routes, with etcd's JSON).
//!
//! # Beyond a real etcd
//!
//! Faults on demand, each undone when its [`FaultGuard`] drops: [`TestEtcd::refuse_requests`],
//! [`TestEtcd::delay`], [`TestEtcd::fail_next`] (with an [`EtcdFault`], etcd's code and
//! message), [`TestEtcd::end_streams`], [`TestEtcd::cancel_watches_compacted`] and
//! [`TestEtcd::raise_alarm`]. [`TestEtcd::restart`] serves again on the same ports with the same
//! data ([`TestEtcd::restart_empty`] without it). Inspection without a client:
//! [`TestEtcd::range`], [`TestEtcd::leases`], [`TestEtcd::watchers`], [`TestEtcd::requests`]
//! (with [`TestEtcdBuilder::record_requests`]) and [`TestEtcd::dump`], a fixture that loads
//! back into the same state. Fixtures may replay a `history` of changes, or be the output of
//! `etcdctl get "" --prefix -w json`. With the `rstest` feature, `test_etcd::rstest` has
//! ready-made rstest fixtures.
//!
//! ```
//! use test_etcd::{EtcdFault, TestEtcd};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let etcd = TestEtcd::start();
//! let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
//! let _flaky = etcd.fail_next("KV/Put", 1, EtcdFault::LeaderChanged)?;
//!
//! let err = client.put("k", "v", None).await.unwrap_err();
//! assert!(err.to_string().contains("etcdserver: leader changed"));
//! client.put("k", "v", None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Auth and TLS
//!
//! Auth answers and enforces as etcd 3.7 does, on every service. A fixture's `auth` object
//! starts the server with users, roles and auth on (see `fixtures/auth.json`), and
//! [`TestEtcdBuilder::auth_token_ttl`] sets how long an unused token lives on the server's
//! clock. With the `tls` feature, [`TestEtcdBuilder::tls`] and [`TestEtcdBuilder::mtls`] serve
//! TLS with certificates the server makes; the test trusts [`TestEtcd::ca_pem`] and, for mTLS,
//! presents a [`TestEtcd::client_certificate`], whose common name is the user of requests
//! without a token, as with etcd's `--client-cert-auth`:
//!
//! ```
//! # #[cfg(feature = "tls")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
//!
//! let etcd = test_etcd::TestEtcd::builder().mtls().fixture("fixtures/auth.json").start()?;
//! let alice = etcd.client_certificate("alice")?;
//! let tls = TlsOptions::new()
//!     .ca_certificate(Certificate::from_pem(etcd.ca_pem().unwrap_or_default()))
//!     .identity(Identity::from_pem(alice.cert_pem(), alice.key_pem()));
//! let options = ConnectOptions::new().with_tls(tls);
//! let mut client = Client::connect(etcd.endpoints(), Some(options)).await?;
//!
//! client.put("/app/leader", "node-2", None).await?;
//! assert!(client.put("/other", "x", None).await.is_err());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tls"))]
//! # fn main() {}
//! ```
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
//! # Crate features
//!
//! - `tls` (off by default): TLS and mTLS with generated certificates. Adds rustls (on ring,
//!   the provider tonic's and etcd-client's `tls` features use, so tests build one crypto
//!   stack) and rcgen.
//! - `real-etcd` (off by default): ships etcd 3.7.2's release binary for [`Backend::Real`].
//! - `rstest` (off by default): ready-made rstest fixtures in `test_etcd::rstest`.
//!
//! # Runtimes
//!
//! Each server runs on its own thread and runtime. [`TestEtcd::start`] is a plain function: call
//! it from `#[test]`, `#[tokio::test]` of either flavour (paused clock included) or an rstest
//! fixture. Dropping the guard stops the server, closes its connections and frees its port.
//!
//! # How it differs from a real etcd
//!
//! Answers follow etcd 3.7.2 (codes, error messages, revisions, headers), and a conformance
//! suite compares the two on every change. What differs, on purpose:
//!
//! - Raft is simulated: every member serves the same state at once, so members never lag.
//! - Leases expire at their deadline on the server's clock (real or manual), where etcd checks
//!   every 500 ms.
//! - Passwords are salted SHA-256, not bcrypt, so tests with auth stay fast; tokens are simple
//!   tokens only (no JWT).
//! - Snapshots are in this crate's own format; the backend size (for the space quota) is
//!   modelled, not a file.
//! - Requests that would crash etcd 3.7.2 (see README's list) are refused with an error instead.
//!
//! README's "Differences from a real etcd" has the full list.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod dump;
mod engine;
mod error;
mod existing;
mod faults;
mod fixture;
// Entry points for the fuzzers in `fuzz/`, which need the engine and the fixture loader without a
// server. Not API: hidden, behind a feature no user should turn on, and free to change.
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
#[path = "fuzz_hooks.rs"]
pub mod __fuzz;
mod pb;
mod real;
mod real_seed;
mod recipes;
mod restart;
mod rpctypes;
#[cfg(feature = "rstest")]
#[path = "rstest_fixtures.rs"]
pub mod rstest;
mod server;
mod test_etcd;
#[cfg(feature = "tls")]
mod tls;

pub use error::{Error, FixtureError};
pub use faults::{Alarm, EtcdFault, FaultGuard, KeyValue, LeaseInfo, RecordedRequest, WatcherInfo};
pub use test_etcd::{Backend, TestEtcd, TestEtcdBuilder, BACKEND_ENV, ENDPOINTS_ENV, ETCD_BIN_ENV};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tls::ClientCertificate;
