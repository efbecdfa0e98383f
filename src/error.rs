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
}
