//! Why a [`TestEtcd`](crate::TestEtcd) could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::fixture::FixtureError;

/// Starting a server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fixture could not be read or is not valid; the error names the file, line, column and
    /// JSON path.
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    /// The address asked for could not be bound (typically: the port is taken).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The server's thread or runtime could not be started.
    #[error("cannot start the server: {0}")]
    Start(#[source] std::io::Error),
    /// The version given to [`TestEtcdBuilder::version`](crate::TestEtcdBuilder::version) is
    /// not `MAJOR.MINOR.PATCH`.
    #[error("invalid etcd version {0:?}: expected MAJOR.MINOR.PATCH, e.g. 3.7.2")]
    Version(String),
    /// The snapshot given to
    /// [`TestEtcdBuilder::restore_snapshot`](crate::TestEtcdBuilder::restore_snapshot) cannot
    /// be restored.
    #[error("cannot restore the snapshot: {0}")]
    Snapshot(String),
    /// [`TestEtcd::start_member`](crate::TestEtcd::start_member) was asked to start a member
    /// that is not in the cluster, or that serves already.
    #[error("member {id:x} cannot start: {reason}")]
    Member {
        /// The member ID asked for.
        id: u64,
        /// Why it cannot start.
        reason: &'static str,
    },
    /// A fault was asked for an RPC that no etcd service has (see
    /// [`TestEtcd::fail_next`](crate::TestEtcd::fail_next)).
    #[error("unknown RPC {0:?}: expected a method such as \"KV/Put\" or \"/etcdserverpb.KV/Put\"")]
    UnknownRpc(String),
    /// [`TestEtcd::write_fixture`](crate::TestEtcd::write_fixture) could not write its file.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// TLS could not be set up, or a client certificate could not be made (feature `tls`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[error("{0}")]
    Tls(String),
    /// The builder or a guard method asked for something only the embedded engine has, but the
    /// backend is a real etcd (chosen by
    /// [`TestEtcdBuilder::backend`](crate::TestEtcdBuilder::backend) or the `TEST_ETCD_BACKEND`
    /// environment variable).
    #[error("`{option}` needs the embedded backend: a real etcd cannot do it")]
    NeedsEmbedded {
        /// The builder option or guard method, as its method is named (or the fixture part).
        option: &'static str,
    },
    /// The builder configured the server (limits, address, members), or a fixture has leases,
    /// a history or auth, but the backend is an existing etcd: the guard neither starts it nor
    /// owns more of it than its key prefix.
    #[error("`{option}` cannot apply to existing endpoints: the guard shares that etcd and owns only its key prefix")]
    NotOnExisting {
        /// The builder option, as its method is named.
        option: &'static str,
    },
    /// The existing-endpoints backend was asked for but no endpoint was given (neither
    /// [`TestEtcdBuilder::existing_endpoints`](crate::TestEtcdBuilder::existing_endpoints) nor
    /// `TEST_ETCD_ENDPOINTS`).
    #[error("no endpoints for the existing backend: set TEST_ETCD_ENDPOINTS or call existing_endpoints()")]
    NoEndpoints,
    /// An existing endpoint is not a `http://host:port` address that resolves.
    #[error("bad etcd endpoint {0:?}: expected http://host:port")]
    BadEndpoint(String),
    /// `TEST_ETCD_BACKEND` holds something other than `embedded`, `real` or `existing`.
    #[error("TEST_ETCD_BACKEND={0:?}: expected `embedded`, `real` or `existing`")]
    UnknownBackend(String),
    /// The real backend was asked for but no etcd binary is known: enable the `real-etcd`
    /// feature, set `TEST_ETCD_BIN`, or call
    /// [`TestEtcdBuilder::etcd_binary`](crate::TestEtcdBuilder::etcd_binary).
    #[error(
        "no etcd binary for the real backend: enable the `real-etcd` feature, set TEST_ETCD_BIN \
         or call etcd_binary()"
    )]
    NoEtcdBinary,
    /// The etcd binary could not be run.
    #[error("cannot run {}: {source}", binary.display())]
    EtcdSpawn {
        /// The binary.
        binary: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The etcd process did not become ready.
    #[error("real etcd did not start: {reason}\n{log}")]
    EtcdStart {
        /// What went wrong.
        reason: String,
        /// The end of etcd's log.
        log: String,
    },
    /// A request to the real etcd (seeding a fixture) failed.
    #[error("real etcd refused a request: {0}")]
    EtcdRequest(String),
    /// A fixture describes a state that a real etcd cannot be brought to through its API (a
    /// history with skipped revisions or history lost to a compaction, a stored password hash,
    /// ...). Checked before etcd is spawned.
    #[error("fixture {fixture} cannot be reproduced on a real etcd: {reason}")]
    NotReproducible {
        /// The fixture's file (or `<string>`, `<json value>`).
        fixture: String,
        /// What a real etcd cannot reproduce.
        reason: String,
    },
}
