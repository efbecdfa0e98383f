//! Lease: Grant (with and without an ID, TTL bounds), Revoke (keys deleted at one revision),
//! KeepAlive, TimeToLive, Leases, keys attached by Put and Txn, expiry, and their errors.
//!
//! Server-chosen lease IDs are named in the transcript (`<lease1>`), and a remaining TTL in
//! the last two seconds below the granted one reads as the granted TTL (session.rs says why).
//! Scenarios choose small IDs, which are compared as they are.

use std::time::Duration;

use crate::pb::etcdserverpb::{
    lease_client::LeaseClient, LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, WatchCreateRequest,
};
use crate::{all, get, op_put, put, range, scenario, txn, Scenario, Session};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("lease_grant_ids_and_ttls", grant),
        scenario("lease_revoke_deletes_keys_at_one_revision", revoke),
        scenario("lease_keep_alive", keep_alive),
        scenario("lease_time_to_live_keys", attached_keys),
        scenario("lease_leases_by_expiry", leases),
        scenario("lease_attach_errors", attach_errors),
        scenario("lease_expiry_deletes_keys", expiry),
    ]
}

pub fn grant_lease(s: &mut Session, ttl: i64, id: i64) -> Option<i64> {
    rpc!(
        s,
        LeaseClient<_>,
        lease_grant,
        LeaseGrantRequest { ttl, id }
    )
    .map(|r| r.id)
}

pub fn revoke_lease(s: &mut Session, id: i64) {
    rpc!(s, LeaseClient<_>, lease_revoke, LeaseRevokeRequest { id });
}

pub fn time_to_live(s: &mut Session, id: i64, keys: bool) {
    rpc!(
        s,
        LeaseClient<_>,
        lease_time_to_live,
        LeaseTimeToLiveRequest { id, keys }
    );
}

pub fn list_leases(s: &mut Session) {
    rpc!(s, LeaseClient<_>, lease_leases, LeaseLeasesRequest {});
}

pub fn put_on(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..put(key, value)
    }
}

fn grant(s: &mut Session) {
    grant_lease(s, 60, 100);
    // The server picks an ID.
    let picked = grant_lease(s, 60, 0).unwrap_or(0);
    grant_lease(s, 60, 100);
    grant_lease(s, 60, picked);
    // TTLs under the minimum are raised to 2; the largest TTL is 9e9 seconds.
    grant_lease(s, 1, 101);
    grant_lease(s, 0, 102);
    grant_lease(s, -5, 103);
    grant_lease(s, 9_000_000_000, 104);
    grant_lease(s, 9_000_000_001, 105);
    // Negative IDs are taken as given.
    grant_lease(s, 60, -5);
    time_to_live(s, 100, false);
    time_to_live(s, picked, false);
    time_to_live(s, -5, false);
    time_to_live(s, 104, false);
    // Unknown and 0: TTL -1, not an error.
    time_to_live(s, 999, false);
    time_to_live(s, 0, true);
    // An ID can be granted again once revoked.
    revoke_lease(s, 100);
    grant_lease(s, 30, 100);
    time_to_live(s, 100, false);
    // Grants make no revision.
    s.range(get("x"));
}

fn revoke(s: &mut Session) {
    grant_lease(s, 60, 200);
    grant_lease(s, 60, 201);
    s.put(put_on("c", "1", 200));
    s.put(put_on("a", "1", 200));
    s.put(put_on("b", "1", 200));
    s.put(put("x", "kept"));
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            prev_kv: true,
            ..crate::watch_range("\0", "\0")
        },
    );
    s.recv(w);
    revoke_lease(s, 200);
    // Every attached key goes at one revision, in key order.
    s.recv(w);
    s.range(all());
    // A lease with no keys: no new revision.
    revoke_lease(s, 201);
    s.range(get("x"));
    revoke_lease(s, 200);
    revoke_lease(s, 0);
    revoke_lease(s, 999);
    time_to_live(s, 200, true);
    s.quiet(w);
}

fn keep_alive(s: &mut Session) {
    grant_lease(s, 30, 300);
    let picked = grant_lease(s, 45, 0).unwrap_or(0);
    // The granted TTL comes back; an unknown lease and 0 answer TTL 0 and the stream goes on.
    s.keep_alive(&[300, 999, 0, picked, 300]);
    time_to_live(s, 300, false);
    revoke_lease(s, 300);
    s.keep_alive(&[300]);
}

fn attached_keys(s: &mut Session) {
    grant_lease(s, 50, 400);
    grant_lease(s, 50, 401);
    s.put(put_on("k2", "v", 400));
    s.put(put_on("k1", "v", 400));
    time_to_live(s, 400, true);
    time_to_live(s, 400, false);
    // A put with lease 0 detaches the key; a put with another lease moves it.
    s.put(put("k1", "w"));
    s.put(put_on("k2", "w", 401));
    s.put(put_on("k3", "w", 401));
    time_to_live(s, 400, true);
    time_to_live(s, 401, true);
    // ignore_lease keeps the key on its lease.
    s.put(PutRequest {
        ignore_lease: true,
        ..put("k3", "x")
    });
    s.range(range("k", "l"));
    // A txn's put attaches too.
    s.txn(txn(
        vec![],
        vec![crate::pb::etcdserverpb::RequestOp {
            request: Some(crate::pb::etcdserverpb::request_op::Request::RequestPut(
                put_on("k4", "t", 400),
            )),
        }],
        vec![],
    ));
    time_to_live(s, 400, true);
    revoke_lease(s, 401);
    s.range(range("k", "l"));
}

fn leases(s: &mut Session) {
    list_leases(s);
    // Listed by soonest expiry.
    grant_lease(s, 300, 501);
    grant_lease(s, 100, 502);
    grant_lease(s, 200, 503);
    grant_lease(s, 50, 504);
    grant_lease(s, 400, 0);
    list_leases(s);
    revoke_lease(s, 502);
    list_leases(s);
}

fn attach_errors(s: &mut Session) {
    s.put(put_on("a", "1", 999));
    s.put(put_on("a", "1", -1));
    s.txn(txn(vec![], vec![op_put("b", "1")], vec![]));
    let mut with_lease = txn(vec![], vec![op_put("c", "1")], vec![]);
    if let Some(crate::pb::etcdserverpb::request_op::Request::RequestPut(p)) =
        with_lease.success[0].request.as_mut()
    {
        p.lease = 999;
    }
    s.txn(with_lease);
    grant_lease(s, 60, 600);
    s.put(put_on("a", "1", 600));
    revoke_lease(s, 600);
    // The key went with the lease; ignore_lease on a missing key is "key not found".
    s.put(PutRequest {
        ignore_lease: true,
        ..put("a", "2")
    });
    s.put(put_on("a", "3", 600));
    s.range(all());
    s.range(get("a"));
}

fn expiry(s: &mut Session) {
    grant_lease(s, 2, 700);
    s.put(put_on("short", "lived", 700));
    s.put(put("long", "lived"));
    let w = s.watch();
    s.create(w, crate::watch_key("short"));
    s.recv(w);
    // etcd's leader checks every 500 ms and revokes through raft: generous wait.
    s.recv_within(w, Duration::from_secs(20));
    time_to_live(s, 700, false);
    s.range(all());
    s.keep_alive(&[700]);
}
