//! Lock and Unlock, as etcd's v3lock serves them with the client's mutex recipe.

use crate::engine::Engine;
use crate::pb::etcdserverpb::{
    range_request::SortOrder, request_op::Request, DeleteRangeRequest, PutRequest, RangeRequest,
    TxnRequest,
};
use crate::pb::v3lockpb::{LockResponse, UnlockResponse};

use super::{
    by_creation, create_revision_of, created_at, get, op, own_key, prefix_of, session_lease,
    wait_deletes, OnCancel, RecipeError,
};

/// Takes the lock `name` for `lease` (0: a fresh 60 s lease), waiting while an older key under
/// `name/` exists. Re-entrant for the same lease: the key is already ours.
pub(crate) async fn lock(
    engine: &Engine,
    name: &[u8],
    lease: i64,
) -> Result<LockResponse, RecipeError> {
    let lease = session_lease(engine, lease)?;
    let prefix = prefix_of(name);
    let key = own_key(&prefix, lease);
    let holder = || {
        op(Request::RequestRange(by_creation(
            &prefix,
            SortOrder::Ascend,
        )))
    };
    let txn = engine.txn(&TxnRequest {
        compare: vec![created_at(&key, 0)],
        success: vec![
            op(Request::RequestPut(PutRequest {
                key: key.clone(),
                lease,
                ..Default::default()
            })),
            holder(),
        ],
        failure: vec![get(&key), holder()],
    })?;
    let my_revision = if txn.succeeded {
        txn.header.as_ref().map_or(0, |h| h.revision)
    } else {
        create_revision_of(&txn, 0)
    };
    let holder_revision = create_revision_of(&txn, 1);
    if holder_revision == 0 || holder_revision == my_revision {
        return Ok(LockResponse {
            header: txn.header,
            key,
        });
    }
    // From here on, a call that fails or is cancelled (client gone, server stopping) takes its
    // key back out of the queue, as etcd's recipe unlocks when its wait fails.
    let waiting = OnCancel::new(|| {
        let _ = unlock(engine, &key);
    });
    wait_deletes(engine, &prefix, my_revision - 1).await?;
    let mine = engine.range(&RangeRequest {
        key: key.clone(),
        ..Default::default()
    })?;
    waiting.disarm();
    if mine.kvs.is_empty() {
        // Our lease went while we waited; the key is gone already.
        return Err(RecipeError::SessionExpired);
    }
    Ok(LockResponse {
        header: mine.header,
        key,
    })
}

/// Releases a lock by deleting its key: no ownership check, and a missing key is no error.
pub(crate) fn unlock(engine: &Engine, key: &[u8]) -> Result<UnlockResponse, RecipeError> {
    let resp = engine.delete_range(&DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })?;
    Ok(UnlockResponse {
        header: resp.header,
    })
}
