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
    /// The builder asked for something only the embedded engine has, but the backend is a real
    /// etcd (chosen by [`TestEtcdBuilder::backend`](crate::TestEtcdBuilder::backend) or the
    /// `TEST_ETCD_BACKEND` environment variable).
    #[error("`{option}` needs the embedded backend: a real etcd cannot do it")]
    NeedsEmbedded {
        /// The builder option, as its method is named.
        option: &'static str,
    },
    /// The builder asked for something only a real etcd does (a cluster of several members),
    /// but the backend is the embedded engine.
    #[error("`{option}` needs the real backend: the embedded engine cannot do it yet")]
    NeedsReal {
        /// The builder option, as its method is named.
        option: &'static str,
    },
    /// The builder configured the server (limits, address, members), but the backend is an
    /// existing etcd that the guard does not start.
    #[error("`{option}` cannot apply to existing endpoints: the guard does not start that etcd")]
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
}
