//! Restarting a server in place: same ports, same data (or none), every connection closed.

use crate::test_etcd::TestEtcd;

impl TestEtcd {
    /// Restarts every member as after a crash and a clean start: every connection closes (so
    /// every Watch, LeaseKeepAlive or Observe stream ends with an error), and the members
    /// serve again on the same ports at once. The data stays as a restarted etcd finds it on
    /// disk: keys, revisions, history and compaction point, leases with their deadlines, users,
    /// roles and auth. Simple auth tokens are gone (etcd keeps them in memory only) and the
    /// raft term goes up by one, as after the election that follows a restart.
    ///
    /// The listening sockets are never closed, so no other test can take a port meanwhile.
    /// When this returns, every old connection is closed on the server's side. A client
    /// reconnects on its next call; a call it sent on the old connection before it noticed the
    /// close fails (etcd-client reports `transport error`), as with a real etcd.
    ///
    /// Embedded backend only: on a real etcd it does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::start();
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// client.put("k", "v", None).await?;
    /// let mut events = client.watch("k", None).await?;
    /// events.message().await?; // created
    ///
    /// etcd.restart();
    ///
    /// assert!(!matches!(events.message().await, Ok(Some(_)))); // the stream ended
    /// let resp = client.get("k", None).await?;                  // the client reconnects
    /// assert_eq!(resp.kvs()[0].value(), b"v");
    /// # Ok(())
    /// # }
    /// ```
    pub fn restart(&self) {
        // State first, so that a client reconnecting at once sees the restarted member.
        let (Some(engine), Some(hooks)) = (self.engine(), self.hooks()) else {
            return;
        };
        engine.restart();
        hooks.end_connections();
    }

    /// Restarts every member as if its data directory were lost: the same ports and members,
    /// but an empty store at revision 1, no leases, no users, roles or alarms. Every connection
    /// closes, as for [`TestEtcd::restart`], and the raft term goes up by one.
    ///
    /// Embedded backend only: on a real etcd it does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let etcd = test_etcd::TestEtcd::builder().fixture_str(r#"{"k": "v"}"#).start()?;
    /// let addr = etcd.addr();
    ///
    /// etcd.restart_empty();
    ///
    /// assert_eq!((etcd.addr(), etcd.revision(), etcd.get("k")), (addr, 1, None));
    /// let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await?;
    /// assert!(client.get("k", None).await?.kvs().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn restart_empty(&self) {
        let (Some(engine), Some(hooks)) = (self.engine(), self.hooks()) else {
            return;
        };
        engine.wipe();
        hooks.end_connections();
    }
}
