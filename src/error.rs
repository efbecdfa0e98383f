//! Why a [`TestEtcd`](crate::TestEtcd) could not start.

use std::net::SocketAddr;

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
}
