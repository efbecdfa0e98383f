//! The existing-endpoints backend: a shared etcd that the guard does not start. Each guard works
//! under a key prefix of its own and deletes everything under it on drop.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::pb::etcdserverpb::DeleteRangeRequest;
use crate::real::{self, call};

/// A guard's share of an existing etcd.
#[derive(Debug)]
pub(crate) struct Existing {
    endpoints: Vec<String>,
    addr: SocketAddr,
    prefix: String,
    cleaned: bool,
}

impl Existing {
    /// Checks that the first endpoint answers, and picks a prefix no other guard (of this or
    /// any other process) uses.
    pub(crate) fn start(endpoints: Vec<String>) -> Result<Existing, Error> {
        let first = endpoints.first().ok_or(Error::NoEndpoints)?;
        let authority = first
            .strip_prefix("http://")
            .unwrap_or(first)
            .trim_end_matches('/');
        let addr = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| Error::BadEndpoint(first.clone()))?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let prefix = format!(
            "/test-etcd/{}-{nanos}-{}/",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let existing = Existing {
            endpoints,
            addr,
            prefix,
            cleaned: false,
        };
        existing.revision().map_err(Error::EtcdRequest)?;
        Ok(existing)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.prefix.as_bytes().to_vec();
        full.extend_from_slice(key);
        full
    }

    /// Puts each pair under the prefix, one request each.
    pub(crate) fn seed(&self, puts: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), Error> {
        let puts = puts.into_iter().map(|(k, v)| (self.key(&k), v)).collect();
        real::put_all(self.addr, puts)
    }

    /// The current value of `key` under the prefix.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        real::get(self.addr, self.key(key))
    }

    /// The shared store's current revision (every guard's writes count).
    pub(crate) fn revision(&self) -> Result<i64, String> {
        real::revision(self.addr)
    }

    /// Deletes every key under the prefix, once.
    pub(crate) fn stop(&mut self) {
        if std::mem::replace(&mut self.cleaned, true) {
            return;
        }
        let key = self.prefix.as_bytes().to_vec();
        let range_end = crate::engine::prefix_end(&key);
        let _ = call(self.addr, |mut kv| async move {
            kv.delete_range(DeleteRangeRequest {
                key,
                range_end,
                prev_kv: false,
            })
            .await?;
            Ok(())
        });
    }
}

impl Drop for Existing {
    fn drop(&mut self) {
        self.stop();
    }
}
