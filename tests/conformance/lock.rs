//! Lock and Election (v3lock, v3election): lock/unlock, waiting for a held lock, campaign,
//! proclaim, leader, resign, observe, and their errors (Go errors, so `Unknown` with the text).
//!
//! Normalised (session.rs): the lease a lock or campaign with lease 0 is given (its ID, in the
//! key as hex).

use crate::lease::{grant_lease, revoke_lease, time_to_live};
use crate::pb::v3electionpb::{
    election_client::ElectionClient, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    ProclaimRequest, ResignRequest,
};
use crate::pb::v3lockpb::{lock_client::LockClient, LockRequest, LockResponse, UnlockRequest};
use crate::session::Pending;
use crate::{b, put, range, scenario, Scenario, Session};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("lock_and_unlock", lock_unlock),
        scenario("lock_waits_for_the_holder", lock_waits),
        scenario("lock_waiter_whose_lease_goes", lock_expired_session),
        scenario("election_campaign_proclaim_resign", election),
        scenario("election_errors", election_errors),
        scenario("election_waiting_candidate", election_waits),
        scenario("election_observe", observe),
    ]
}

fn lock(s: &mut Session, name: &str, lease: i64) -> Vec<u8> {
    rpc!(
        s,
        LockClient<_>,
        lock,
        LockRequest {
            name: b(name),
            lease,
        }
    )
    .map(|r| r.key)
    .unwrap_or_default()
}

fn unlock(s: &mut Session, key: Vec<u8>) {
    rpc!(s, LockClient<_>, unlock, UnlockRequest { key });
}

/// A Lock call that is expected to wait: sent, not awaited.
fn start_lock(s: &mut Session, name: &str, lease: i64) -> Pending<LockResponse> {
    start_rpc!(
        s,
        LockClient<_>,
        lock,
        LockRequest {
            name: b(name),
            lease,
        }
    )
}

/// A Campaign call that is expected to wait: sent, not awaited.
fn start_campaign(
    s: &mut Session,
    name: &str,
    lease: i64,
    value: &str,
) -> Pending<CampaignResponse> {
    start_rpc!(
        s,
        ElectionClient<_>,
        campaign,
        CampaignRequest {
            name: b(name),
            lease,
            value: b(value),
        }
    )
}

fn campaign(s: &mut Session, name: &str, lease: i64, value: &str) -> Option<LeaderKey> {
    rpc!(
        s,
        ElectionClient<_>,
        campaign,
        CampaignRequest {
            name: b(name),
            lease,
            value: b(value),
        }
    )
    .and_then(|r| r.leader)
}

fn leader(s: &mut Session, name: &str) {
    rpc!(
        s,
        ElectionClient<_>,
        leader,
        LeaderRequest { name: b(name) }
    );
}

fn proclaim(s: &mut Session, leader: Option<LeaderKey>, value: &str) {
    rpc!(
        s,
        ElectionClient<_>,
        proclaim,
        ProclaimRequest {
            leader,
            value: b(value),
        }
    );
}

fn resign(s: &mut Session, leader: Option<LeaderKey>) {
    rpc!(s, ElectionClient<_>, resign, ResignRequest { leader });
}

fn lock_unlock(s: &mut Session) {
    grant_lease(s, 60, 0xab);
    let key = lock(s, "lk", 0xab);
    // Re-entrant for the same lease: the same key, no new revision.
    lock(s, "lk", 0xab);
    s.range(range("lk/", "lk0"));
    time_to_live(s, 0xab, true);
    unlock(s, key.clone());
    // Unlocking a key that is gone is no error.
    unlock(s, key);
    unlock(s, b("no/such/key"));
    lock(s, "lk", 999);
    // Lease 0: the server grants a 60 s lease of its own.
    let key = lock(s, "lk2", 0);
    s.range(range("lk2/", "lk20"));
    // That lease is the server's: 60 s, the lock key attached, not kept alive.
    let server_lease = std::str::from_utf8(key.rsplit(|&c| c == b'/').next().unwrap_or_default())
        .ok()
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .unwrap_or(0);
    time_to_live(s, server_lease, true);
    unlock(s, key);
    s.range(range("lk", "lm"));
}

fn lock_waits(s: &mut Session) {
    grant_lease(s, 60, 701);
    grant_lease(s, 60, 702);
    let held = lock(s, "q", 701);
    let waiter = start_lock(s, "q", 702);
    s.wait_for_keys("q/", "q0", 2);
    s.still_waiting(&waiter);
    s.range(range("q/", "q0"));
    unlock(s, held);
    let got = s.finish(waiter).map(|r| r.key).unwrap_or_default();
    s.range(range("q/", "q0"));
    unlock(s, got);
}

fn lock_expired_session(s: &mut Session) {
    grant_lease(s, 60, 711);
    grant_lease(s, 60, 712);
    let held = lock(s, "x", 711);
    let waiter = start_lock(s, "x", 712);
    s.wait_for_keys("x/", "x0", 2);
    s.still_waiting(&waiter);
    // The waiter's key goes with its lease: once the holder lets go, its session has expired.
    revoke_lease(s, 712);
    unlock(s, held);
    s.finish(waiter);
    s.range(range("x/", "x0"));
}

fn election(s: &mut Session) {
    grant_lease(s, 60, 800);
    let me = campaign(s, "e", 800, "v1");
    leader(s, "e");
    proclaim(s, me.clone(), "v2");
    // The same value again is still a put.
    proclaim(s, me.clone(), "v2");
    leader(s, "e");
    // Campaigning again with another value proclaims it, under the first txn's header.
    campaign(s, "e", 800, "v3");
    leader(s, "e");
    resign(s, me.clone());
    leader(s, "e");
    // Resigning what is gone still succeeds.
    resign(s, me);
    // Lease 0: a lease of the server's.
    let other = campaign(s, "e2", 0, "w");
    leader(s, "e2");
    resign(s, other);
}

fn election_errors(s: &mut Session) {
    leader(s, "nobody");
    proclaim(s, None, "v");
    resign(s, None);
    campaign(s, "e", 999, "v");
    grant_lease(s, 60, 810);
    let me = campaign(s, "e", 810, "v");
    // A leader key whose create revision is not the candidate's: not leader.
    let stale = me.clone().map(|mut l| {
        l.rev += 100;
        l
    });
    proclaim(s, stale.clone(), "x");
    resign(s, stale);
    let stranger = Some(LeaderKey {
        name: b("e"),
        key: b("e/ffff"),
        rev: 2,
        lease: 0xffff,
    });
    proclaim(s, stranger, "x");
    leader(s, "e");
    revoke_lease(s, 810);
    proclaim(s, me, "x");
    leader(s, "e");
}

fn election_waits(s: &mut Session) {
    grant_lease(s, 60, 820);
    grant_lease(s, 60, 821);
    let first = campaign(s, "e", 820, "one");
    let second = start_campaign(s, "e", 821, "two");
    s.wait_for_keys("e/", "e0", 2);
    s.still_waiting(&second);
    leader(s, "e");
    s.put(put("unrelated", "x"));
    resign(s, first);
    // Its header is the one of its first txn, from before it waited.
    s.finish(second);
    leader(s, "e");
}

fn observe(s: &mut Session) {
    grant_lease(s, 60, 830);
    grant_lease(s, 60, 831);
    let o = s.observe("e");
    // No leader yet: nothing.
    s.observe_quiet(o);
    let first = campaign(s, "e", 830, "one");
    s.observed(o);
    proclaim(s, first.clone(), "one again");
    s.observed(o);
    proclaim(s, first.clone(), "one again");
    s.observed(o);
    // A candidate's put while another leads is not news.
    let second = start_campaign(s, "e", 831, "two");
    s.wait_for_keys("e/", "e0", 2);
    s.observe_quiet(o);
    resign(s, first);
    s.finish(second);
    s.observed(o);
    s.observe_quiet(o);
    // A second observer starts with the current leader.
    let late = s.observe("e");
    s.observed(late);
}
