//! The etcd state machine, with no transport: plain Rust over the API's message types, so it
//! can be driven and tested without a network. [`Engine`] is a cheap handle shared by every
//! service of one server.

mod auth;
mod clock;
mod cluster;
mod error;
mod history;
mod inspect;
// Its request fields are etcd's, documented in proto/; only the fuzzers see them.
#[cfg(any(test, feature = "__fuzz"))]
#[allow(missing_docs)]
pub(crate) mod invariants;
mod kv;
mod lease;
mod lessor;
mod maintenance;
mod mvcc;
mod snapshot;
mod validate;
mod watch;

use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;

use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

pub(crate) use auth::{Access, AuthExport, AuthStore, Caller};
pub(crate) use clock::Clock;
pub(crate) use cluster::{checked_urls, StartRefusal, Version};
pub(crate) use error::EtcdError;
use kv::KvState;
pub(crate) use lease::run_expiry;
pub(crate) use maintenance::{put_cost, txn_cost, LEASE_GRANT_COST};
pub(crate) use mvcc::{prefix_end, Change, KeyRange};
pub(crate) use snapshot::trailer as snapshot_trailer;
pub(crate) use watch::{RevisionEvents, WatchFilter, WatchRead};

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
    /// Users, roles and tokens. Its own lock: auth checks never wait for a long KV read.
    auth: Mutex<AuthStore>,
    /// The newest revision, published after each write so that watchers (and anything else
    /// waiting for a change) wake without polling.
    revisions: tokio::sync::watch::Sender<i64>,
    /// The one source of time (lease deadlines).
    clock: Clock,
    /// Wakes the lease expiry task when deadlines may have moved.
    leases_changed: tokio::sync::Notify,
    /// Members, leader, term and version (`cluster.rs`); never locked together with `state`.
    cluster: Mutex<cluster::Cluster>,
}

impl Engine {
    /// An engine on a real clock.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(limits: Limits) -> Self {
        Engine::with_clock(limits, Clock::real())
    }

    /// An engine whose time (lease deadlines) comes from `clock`.
    pub(crate) fn with_clock(limits: Limits, clock: Clock) -> Self {
        Engine {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(KvState::default()),
                auth: Mutex::new(AuthStore::default()),
                revisions: tokio::sync::watch::Sender::new(1),
                clock,
                leases_changed: tokio::sync::Notify::new(),
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

    /// An independent copy of this engine: the same state now, and no shared future. The store
    /// is shared structurally, so this costs about the same whatever its size.
    pub(crate) fn fork(&self) -> Engine {
        let state = self.state().clone();
        let revision = state.store.revision();
        Engine {
            shared: Arc::new(Shared {
                limits: self.shared.limits,
                state: Mutex::new(state),
                auth: Mutex::new(self.auth(|auth| auth.clone())),
                revisions: tokio::sync::watch::Sender::new(revision),
                clock: self.shared.clock.fork(),
                leases_changed: tokio::sync::Notify::new(),
                cluster: Mutex::new(self.cluster().clone()),
            }),
        }
    }

    /// Runs `f` on the auth store.
    pub(crate) fn auth<R>(&self, f: impl FnOnce(&mut AuthStore) -> R) -> R {
        let mut auth = self
            .shared
            .auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut auth)
    }

    /// The server's time, which token lifetimes are measured in.
    pub(crate) fn now(&self) -> std::time::Duration {
        self.shared.clock.now()
    }

    /// Who sends a request carrying `token` (or none).
    pub(crate) fn caller(&self, token: Option<&str>) -> Result<Caller, EtcdError> {
        let now = self.now();
        self.auth(|auth| auth.caller(token, now))
    }

    /// Whether `caller` may run this Range.
    pub(crate) fn authorize_range(
        &self,
        caller: &Caller,
        r: &RangeRequest,
    ) -> Result<(), EtcdError> {
        self.auth(|auth| auth.check_range(caller, &r.key, &r.range_end, Access::Read))
    }

    /// Whether `caller` may run this Put: WRITE on the key, READ too for prev_kv, and WRITE on
    /// every key already attached to the lease it names.
    pub(crate) fn authorize_put(&self, caller: &Caller, r: &PutRequest) -> Result<(), EtcdError> {
        let lease_keys: Vec<Vec<u8>> = if r.lease != 0 && matches!(caller, Caller::User(_)) {
            self.state()
                .lessor
                .get(r.lease)
                .map(|l| l.keys.iter().cloned().collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        self.auth(|auth| {
            auth.check_range(caller, &r.key, &[], Access::Write)?;
            if r.prev_kv {
                auth.check_range(caller, &r.key, &[], Access::Read)?;
            }
            if !lease_keys.is_empty() && auth.check_admin(caller).is_err() {
                for key in &lease_keys {
                    auth.check_range(caller, key, &[], Access::Write)?;
                }
            }
            Ok(())
        })
    }

    /// Whether `caller` may act on lease `id`: a token is needed, and a user without the root
    /// role needs `access` to every key attached to the lease.
    pub(crate) fn authorize_lease(
        &self,
        caller: &Caller,
        id: i64,
        access: Access,
    ) -> Result<(), EtcdError> {
        self.authorize_leases(caller, Some(id), access)
    }

    /// The same for every lease (LeaseLeases), or one lease.
    pub(crate) fn authorize_leases(
        &self,
        caller: &Caller,
        only: Option<i64>,
        access: Access,
    ) -> Result<(), EtcdError> {
        if matches!(caller, Caller::Anyone) {
            return Ok(());
        }
        self.auth(|auth| auth.check_token(caller))?;
        if self.auth(|auth| auth.check_admin(caller)).is_ok() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = {
            let state = self.state();
            match only {
                Some(id) => state
                    .lessor
                    .get(id)
                    .map(|l| l.keys.iter().cloned().collect())
                    .unwrap_or_default(),
                None => state
                    .lessor
                    .leases()
                    .flat_map(|l| l.keys.iter().cloned())
                    .collect(),
            }
        };
        self.auth(|auth| {
            keys.iter()
                .try_for_each(|key| auth.check_range(caller, key, &[], access))
        })
    }

    /// Whether `caller` may run this DeleteRange.
    pub(crate) fn authorize_delete(
        &self,
        caller: &Caller,
        r: &DeleteRangeRequest,
    ) -> Result<(), EtcdError> {
        self.auth(|auth| {
            auth.check_range(caller, &r.key, &r.range_end, Access::Write)?;
            if r.prev_kv {
                auth.check_range(caller, &r.key, &r.range_end, Access::Read)?;
            }
            Ok(())
        })
    }

    /// Whether `caller` may run this Txn: READ on every compare, and every op of both branches,
    /// nested txns included, whichever branch would run.
    pub(crate) fn authorize_txn(&self, caller: &Caller, r: &TxnRequest) -> Result<(), EtcdError> {
        use crate::pb::etcdserverpb::request_op::Request;
        if matches!(caller, Caller::Anyone) {
            return Ok(());
        }
        for c in &r.compare {
            self.auth(|auth| auth.check_range(caller, &c.key, &c.range_end, Access::Read))?;
        }
        for op in r.success.iter().chain(&r.failure) {
            match &op.request {
                Some(Request::RequestRange(q)) => self.authorize_range(caller, q)?,
                Some(Request::RequestPut(q)) => self.authorize_put(caller, q)?,
                Some(Request::RequestDeleteRange(q)) => self.authorize_delete(caller, q)?,
                Some(Request::RequestTxn(q)) => self.authorize_txn(caller, q)?,
                None => {}
            }
        }
        Ok(())
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
        // Published outside the lock, so that woken watchers can take it at once. Subscribers
        // read the state after subscribing, so with none there is nobody to wake: the value is
        // only kept current.
        if let Some(revision) = revision {
            let revisions = &self.shared.revisions;
            if revisions.receiver_count() == 0 {
                revisions.send_if_modified(|newest| {
                    *newest = revision;
                    false
                });
            } else {
                revisions.send_replace(revision);
            }
        }
        result
    }

    /// Wakes on every new revision; the value is the newest revision.
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

    /// A watcher's events from revision `from` on, at most `max_revisions` revisions of them.
    pub(crate) fn watch_read(
        &self,
        filter: &WatchFilter,
        from: i64,
        max_revisions: usize,
    ) -> WatchRead {
        watch::read(&self.state().store, filter, from, max_revisions)
    }

    /// Validates a Range without running it.
    pub(crate) fn check_range(&self, r: &RangeRequest) -> Result<(), EtcdError> {
        validate::range(r)
    }

    #[allow(dead_code)] // for requests made on the server's own behalf
    pub(crate) fn range(&self, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        self.range_as(&Caller::Anyone, r)
    }

    /// A Range by `caller`: validated, then authorized, then read (etcd's order).
    pub(crate) fn range_as(
        &self,
        caller: &Caller,
        r: &RangeRequest,
    ) -> Result<RangeResponse, EtcdError> {
        validate::range(r)?;
        self.authorize_range(caller, r)?;
        self.state().range(r)
    }

    #[allow(dead_code)] // for requests made on the server's own behalf
    pub(crate) fn put(&self, r: &PutRequest) -> Result<PutResponse, EtcdError> {
        self.put_as(&Caller::Anyone, r)
    }

    pub(crate) fn put_as(&self, caller: &Caller, r: &PutRequest) -> Result<PutResponse, EtcdError> {
        validate::put(r)?;
        self.check_proposal_size(r)?;
        self.authorize_put(caller, r)?;
        self.write(|state| {
            state.admit(maintenance::Write::Put)?;
            state.put(r)
        })
    }

    #[allow(dead_code)] // for requests made on the server's own behalf
    pub(crate) fn delete_range(
        &self,
        r: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, EtcdError> {
        self.delete_range_as(&Caller::Anyone, r)
    }

    pub(crate) fn delete_range_as(
        &self,
        caller: &Caller,
        r: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, EtcdError> {
        validate::delete_range(r)?;
        self.check_proposal_size(r)?;
        self.authorize_delete(caller, r)?;
        self.write(|state| {
            state.admit(maintenance::Write::Delete)?;
            Ok(state.delete_range(r))
        })
    }

    #[allow(dead_code)] // for requests made on the server's own behalf
    pub(crate) fn txn(&self, r: &TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.txn_as(&Caller::Anyone, r)
    }

    pub(crate) fn txn_as(&self, caller: &Caller, r: &TxnRequest) -> Result<TxnResponse, EtcdError> {
        validate::txn(r, self.shared.limits.max_txn_ops)?;
        if !is_read_only(r) {
            self.check_proposal_size(r)?;
        }
        self.authorize_txn(caller, r)?;
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

    /// Applies fixture puts `(key, value, lease)` in order, each as its own revision (as a
    /// client's puts would be).
    pub(crate) fn seed(
        &self,
        puts: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, i64)>,
    ) -> Result<(), EtcdError> {
        self.write(|state| {
            for (key, value, lease) in puts {
                let r = PutRequest {
                    key,
                    value,
                    lease,
                    ..Default::default()
                };
                // Without ignore flags, only a missing lease can fail a put.
                state.put(&r)?;
            }
            Ok(())
        })
    }

    /// The current value of `key`, for assertions without a client.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.state()
            .store
            .get_current(key)
            .map(|kv| kv.value.to_vec())
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
