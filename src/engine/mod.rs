//! The etcd state machine, with no transport: plain Rust over the API's message types, so it
//! can be driven and tested without a network. [`Engine`] is a cheap handle shared by every
//! service of one server.

mod cluster;
mod error;
mod kv;
mod lessor;
mod maintenance;
mod mvcc;
mod snapshot;
mod validate;

use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;

use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

pub(crate) use cluster::{StartRefusal, Version};
pub(crate) use error::EtcdError;
use kv::KvState;
pub(crate) use maintenance::{put_cost, txn_cost};
pub(crate) use snapshot::trailer as snapshot_trailer;

/// Request limits, etcd's defaults unless the builder changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest write request (as proposed through raft), etcd's `--max-request-bytes`.
    pub(crate) max_request_bytes: usize,
    /// Most operations per txn level, etcd's `--max-txn-ops`.
    pub(crate) max_txn_ops: usize,
    /// The backend size at which writes get NOSPACE, etcd's `--quota-backend-bytes`.
    pub(crate) quota_backend_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1_572_864,
            max_txn_ops: 128,
            quota_backend_bytes: maintenance::DEFAULT_QUOTA,
        }
    }
}

impl Limits {
    /// The gRPC receive limit etcd derives from the request limit: a bigger message is refused
    /// before it is even decoded.
    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_request_bytes.saturating_add(512 * 1024)
    }
}

/// Bytes etcd adds around a request when it proposes it through raft (the internal request
/// wrapper with its header): counted so that "request is too large" fires where etcd's does.
const PROPOSAL_OVERHEAD: usize = 16;

/// A handle on one server's state. Clones share the state.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    limits: Limits,
    // A std mutex: nothing awaits while holding it, and every operation is short.
    state: Mutex<KvState>,
    /// The newest revision, published after each write so that watchers (and anything else
    /// waiting for a change) wake without polling.
    revisions: tokio::sync::watch::Sender<i64>,
    /// Members, leader, term and version (`cluster.rs`); never locked together with `state`.
    cluster: Mutex<cluster::Cluster>,
}

impl Engine {
    pub(crate) fn new(limits: Limits) -> Self {
        Engine {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(KvState::default()),
                revisions: tokio::sync::watch::Sender::new(1),
                cluster: Mutex::new(cluster::Cluster::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, KvState> {
        // A panic while holding the lock cannot leave the store half-written (writes roll back
        // on error), so a poisoned lock is still safe to use.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a write on the state and, if it made a revision, tells every subscriber.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut KvState) -> R) -> R {
        let (result, revision) = {
            let mut state = self.state();
            let before = state.store.revision();
            let result = f(&mut state);
            let after = state.store.revision();
            if after != before {
                state.account_growth(after);
            }
            (result, (after != before).then_some(after))
        };
        // Published outside the lock, so that woken watchers can take it at once.
        if let Some(revision) = revision {
            self.shared.revisions.send_replace(revision);
        }
        result
    }

    /// Wakes on every new revision; the value is the newest revision.
    #[cfg_attr(not(test), allow(dead_code))] // the watch service subscribes
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.shared.revisions.subscribe()
    }

    fn check_proposal_size(&self, request: &impl Message) -> Result<(), EtcdError> {
        if request.encoded_len() + PROPOSAL_OVERHEAD > self.shared.limits.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        Ok(())
    }

    /// The write request limit (etcd's `--max-request-bytes`).
    pub(crate) fn max_request_bytes(&self) -> usize {
        self.shared.limits.max_request_bytes
    }

    /// The current revision.
    pub(crate) fn revision(&self) -> i64 {
        self.state().store.revision()
    }

    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        validate::range(r)?;
        self.state().range(r)
    }

    pub(crate) fn put(&self, r: &PutRequest) -> Result<PutResponse, EtcdError> {
        validate::put(r)?;
        self.check_proposal_size(r)?;
        self.write(|state| {
            state.admit(maintenance::Write::Put)?;
            state.put(r)
        })
    }

    pub(crate) fn delete_range(
        &self,
        r: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, EtcdError> {
        validate::delete_range(r)?;
        self.check_proposal_size(r)?;
        self.write(|state| {
            state.admit(maintenance::Write::Delete)?;
            Ok(state.delete_range(r))
        })
    }

    pub(crate) fn txn(&self, r: &TxnRequest) -> Result<TxnResponse, EtcdError> {
        validate::txn(r, self.shared.limits.max_txn_ops)?;
        if !is_read_only(r) {
            self.check_proposal_size(r)?;
        }
        self.write(|state| {
            state.admit(maintenance::Write::Txn(r))?;
            state.txn(r)
        })
    }

    pub(crate) fn compact(&self, r: &CompactionRequest) -> Result<CompactionResponse, EtcdError> {
        let resp = self.write(|state| {
            state.admit(maintenance::Write::Compact)?;
            state.compact_and_hash(r)
        })?;
        self.note_entry();
        Ok(resp)
    }

    /// Applies fixture puts in order, each as its own revision (as a client's puts would be).
    pub(crate) fn seed(&self, puts: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
        self.write(|state| {
            for (key, value) in puts {
                let r = PutRequest {
                    key,
                    value,
                    ..Default::default()
                };
                // A fixture put has no lease and no ignore flags, so it cannot fail.
                let _ = state.put(&r);
            }
        });
    }

    /// The current value of `key`, for assertions without a client.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.state()
            .store
            .get_current(key)
            .map(|kv| kv.value.clone())
    }
}

/// A txn whose every op, in both branches, is a Range: etcd serves it without raft, so it is
/// never "too large". A nested txn makes it a write txn.
fn is_read_only(r: &TxnRequest) -> bool {
    use crate::pb::etcdserverpb::request_op::Request;
    r.success
        .iter()
        .chain(&r.failure)
        .all(|op| matches!(op.request, Some(Request::RequestRange(_))))
}
