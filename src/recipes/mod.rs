//! Lock and election on top of the KV and Lease API, as etcd's v3lock and v3election servers
//! run its client `concurrency` recipes: the same keys (`<name>/<lease ID in hex>`), the same
//! transactions, the same waiting for every older key under the name to go, the same answers.
//!
//! Waiting never polls: it re-reads after each new revision the engine publishes. A wait is a
//! future; when the server stops, its runtime drops it and the client's call fails.

pub(crate) mod election;
pub(crate) mod lock;

use crate::engine::{prefix_end, Engine, EtcdError};
use crate::pb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    response_op::Response,
    Compare, LeaseGrantRequest, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
    TxnResponse,
};

/// Why a lock or election call failed. etcd's recipes return plain Go errors, which reach the
/// wire as `Unknown` with the error's text; `crate::rpctypes` maps them so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecipeError {
    /// An error of the KV or Lease call the recipe made, e.g. an unknown lease.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The waiter's own lock key vanished (its lease expired or was revoked) while it waited.
    #[error("mutex: session is expired")]
    SessionExpired,
    /// Proclaim by someone who is not (or no longer) the leader.
    #[error("election: not leader")]
    NotLeader,
    /// Leader asked of an election with no candidate.
    #[error("election: no leader")]
    NoLeader,
    /// Proclaim or Resign without a `leader`.
    #[error("\"leader\" field must be provided")]
    MissingLeader,
}

/// The TTL of the lease granted for a call with lease 0, etcd's default session TTL. Nobody keeps
/// it alive.
const SESSION_TTL: i64 = 60;

/// The lease a lock or candidacy lives on: the caller's, or a fresh 60 s one for lease 0. A
/// lease that does not exist is found out by the put that names it, as in etcd.
fn session_lease(engine: &Engine, lease: i64) -> Result<i64, RecipeError> {
    if lease != 0 {
        return Ok(lease);
    }
    let granted = engine.lease_grant(&LeaseGrantRequest {
        ttl: SESSION_TTL,
        id: 0,
    })?;
    Ok(granted.id)
}

/// `name/` followed by the lease ID in lowercase hex, as Go's `%x` prints a signed ID (a minus
/// sign, then the magnitude).
fn own_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let sign = if lease < 0 { "-" } else { "" };
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{sign}{:x}", lease.unsigned_abs()).as_bytes());
    key
}

/// `name/`: the prefix every key of one lock or election shares.
fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// A range over the keys under `prefix`, oldest (or newest) creation first, one key.
fn by_creation(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The key under `prefix` created first: the lock holder, or the election's leader.
fn first_created(engine: &Engine, prefix: &[u8]) -> Result<RangeResponse, RecipeError> {
    Ok(engine.range(&by_creation(prefix, SortOrder::Ascend))?)
}

/// The create revision of the first key in a txn's `index`-th response (a range); 0 if none.
fn create_revision_of(txn: &TxnResponse, index: usize) -> i64 {
    match txn.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => {
            range.kvs.first().map_or(0, |kv| kv.create_revision)
        }
        _ => 0,
    }
}

/// `create_revision(key) == revision`.
fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}

fn op(request: Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn get(key: &[u8]) -> RequestOp {
    op(Request::RequestRange(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }))
}

/// Waits until no key under `prefix` created at or before `max_create_revision` is left; returns
/// the header of the read that found none.
async fn wait_deletes(
    engine: &Engine,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<Option<ResponseHeader>, RecipeError> {
    // Subscribed before the first read, so a change between a read and the wait still wakes us.
    let mut revisions = engine.subscribe();
    let mut newest_older = by_creation(prefix, SortOrder::Descend);
    newest_older.max_create_revision = max_create_revision;
    loop {
        let resp = engine.range(&newest_older)?;
        if resp.kvs.is_empty() {
            return Ok(resp.header);
        }
        if revisions.changed().await.is_err() {
            // The engine is gone with its server; the caller's future is about to be dropped.
            std::future::pending::<()>().await;
        }
    }
}

/// Runs a clean-up when dropped unless disarmed: a blocked call whose client cancels (or whose
/// server stops) must not leave its waiter key behind.
struct OnCancel<F: FnMut()> {
    cleanup: Option<F>,
}

impl<F: FnMut()> OnCancel<F> {
    fn new(cleanup: F) -> Self {
        OnCancel {
            cleanup: Some(cleanup),
        }
    }

    fn disarm(mut self) {
        self.cleanup = None;
    }
}

impl<F: FnMut()> Drop for OnCancel<F> {
    fn drop(&mut self) {
        if let Some(cleanup) = &mut self.cleanup {
            cleanup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_name_a_slash_and_the_lease_in_go_hex() {
        assert_eq!(own_key(&prefix_of(b"lk2"), 0xab), b"lk2/ab");
        assert_eq!(own_key(&prefix_of(b"x"), -5), b"x/-5");
        assert_eq!(own_key(&prefix_of(b""), i64::MIN), b"/-8000000000000000");
    }
}
