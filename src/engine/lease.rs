//! The Lease API applied to the state: grant, revoke, renew, time-to-live, listing, and expiry
//! on the server's clock.
//!
//! Expiry is exact to the clock: with a real clock, [`run_expiry`] sleeps until the soonest
//! deadline (woken early when leases change); with a manual clock, advancing it expires what fell
//! due before the call returns. Each expired lease is revoked as a client's LeaseRevoke would be:
//! its keys go in one revision, which watchers see as DELETE events.

use std::time::Duration;

use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader,
};

use super::clock::Clock;
use super::error::EtcdError;
use super::kv::KvState;
use super::mvcc::KeyRange;
use super::Engine;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl KvState {
    /// Grants a lease at `now`.
    pub(crate) fn lease_grant(
        &mut self,
        r: &LeaseGrantRequest,
        now: Duration,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        let lease = self.lessor.grant(r.id, r.ttl, now)?;
        let (id, ttl) = (lease.id, lease.ttl);
        Ok(LeaseGrantResponse {
            header: header(self.store.revision()),
            id,
            ttl,
            error: String::new(),
        })
    }

    /// Revokes lease `id`: every attached key is deleted in one revision (none if it had no
    /// keys).
    pub(crate) fn lease_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, EtcdError> {
        let lease = self.lessor.remove(id).ok_or(EtcdError::LeaseNotFound)?;
        // Key order, so that watchers see the DELETE events sorted as etcd sends them.
        for key in &lease.keys {
            self.store.delete_range(&KeyRange::new(key, &[]));
        }
        self.store.commit();
        Ok(LeaseRevokeResponse {
            header: header(self.store.revision()),
        })
    }

    /// Revokes every lease whose deadline is at or before `now`, soonest first, each in its own
    /// revision. Returns how many expired.
    pub(crate) fn lease_expire(&mut self, now: Duration) -> usize {
        let due = self.lessor.expired(now);
        for id in &due {
            // Listed just now under the same lock, so it exists.
            let _ = self.lease_revoke(*id);
        }
        due.len()
    }

    /// What LeaseTimeToLive answers at `now`.
    pub(crate) fn lease_time_to_live(
        &self,
        r: &LeaseTimeToLiveRequest,
        now: Duration,
    ) -> LeaseTimeToLiveResponse {
        let mut resp = LeaseTimeToLiveResponse {
            header: header(self.store.revision()),
            id: r.id,
            // etcd's answer for a lease it does not know: not an error, TTL -1.
            ttl: -1,
            ..Default::default()
        };
        if let Some(lease) = self.lessor.get(r.id) {
            resp.ttl = lease.remaining_secs(now);
            resp.granted_ttl = lease.ttl;
            if r.keys {
                resp.keys = lease.keys.iter().cloned().collect();
            }
        }
        resp
    }

    /// Every lease, soonest deadline first.
    pub(crate) fn lease_leases(&self) -> LeaseLeasesResponse {
        LeaseLeasesResponse {
            header: header(self.store.revision()),
            leases: self
                .lessor
                .by_expiry()
                .map(|lease| LeaseStatus { id: lease.id })
                .collect(),
        }
    }
}

impl Engine {
    /// The server's clock.
    pub(crate) fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Tells the expiry task that deadlines may have moved. A stored permit covers a change made
    /// while the task is busy, so none is missed.
    pub(super) fn leases_changed(&self) {
        self.shared.leases_changed.notify_one();
    }

    pub(crate) fn lease_grant(
        &self,
        r: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        let now = self.clock().now();
        let resp = self.write(|state| {
            state.admit(super::maintenance::Write::LeaseGrant)?;
            state.lease_grant(r, now)
        })?;
        self.leases_changed();
        Ok(resp)
    }

    pub(crate) fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, EtcdError> {
        let resp = self.write(|state| {
            state.admit(super::maintenance::Write::LeaseRevoke)?;
            state.lease_revoke(id)
        })?;
        self.leases_changed();
        Ok(resp)
    }

    /// A keep-alive: restarts the lease's TTL and returns the granted TTL, or 0 if the lease does
    /// not exist (or its deadline has already passed: it is expired now, not renewed).
    pub(crate) fn lease_renew(&self, id: i64) -> (i64, i64) {
        let now = self.clock().now();
        let (ttl, revision) = self.write(|state| {
            state.lease_expire(now);
            let ttl = state.lessor.renew(id, now).unwrap_or(0);
            (ttl, state.store.revision())
        });
        self.leases_changed();
        (ttl, revision)
    }

    pub(crate) fn lease_time_to_live(&self, r: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        let now = self.clock().now();
        self.state().lease_time_to_live(r, now)
    }

    pub(crate) fn lease_leases(&self) -> LeaseLeasesResponse {
        self.state().lease_leases()
    }

    /// Grants a fixture's lease. An ID an earlier fixture already granted names the same lease,
    /// whose TTL this one sets anew (fixtures layer). Returns the lease's ID.
    pub(crate) fn seed_lease(&self, id: i64, ttl: i64) -> Result<i64, EtcdError> {
        let now = self.clock().now();
        let id = self.write(|state| {
            if id != 0 && state.lessor.contains(id) {
                state.lessor.reset(id, ttl, now)
            } else {
                state.lessor.grant(id, ttl, now).map(|lease| lease.id)
            }
        });
        self.leases_changed();
        id
    }

    /// Expires every lease whose deadline has passed; returns the next deadline, if any lease is
    /// left.
    pub(crate) fn expire_due(&self) -> Option<Duration> {
        let now = self.clock().now();
        self.write(|state| {
            state.lease_expire(now);
            state.lessor.next_expiry()
        })
    }

    /// Moves the clock forward and expires what fell due, before returning.
    pub(crate) fn advance(&self, by: Duration) {
        self.clock().advance(by);
        self.expire_due();
        // A real clock's sleeper must recompute its wait from the new time.
        self.leases_changed();
    }
}

/// Expires leases as their deadlines pass on a real clock; with a manual clock it only waits,
/// since [`Engine::advance`] expires leases itself. Runs until its runtime is dropped.
pub(crate) async fn run_expiry(engine: Engine) {
    loop {
        let changed = engine.shared.leases_changed.notified();
        match engine
            .expire_due()
            .and_then(|next| engine.clock().until(next))
        {
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = changed => {}
                }
            }
            None => changed.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::lessor::{MAX_TTL, MIN_TTL};
    use crate::pb::etcdserverpb::PutRequest;

    const SEC: Duration = Duration::from_secs(1);

    fn grant(state: &mut KvState, id: i64, ttl: i64, now: Duration) -> Result<i64, EtcdError> {
        state
            .lease_grant(&LeaseGrantRequest { id, ttl }, now)
            .map(|r| r.id)
    }

    fn put(state: &mut KvState, key: &str, lease: i64) {
        let r = PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        };
        state.put(&r).unwrap();
    }

    #[test]
    fn grant_raises_small_ttls_and_refuses_huge_ones_and_duplicates() {
        let mut state = KvState::default();
        for (id, ttl) in [(1, 1), (2, 0), (3, -5)] {
            let resp = state
                .lease_grant(&LeaseGrantRequest { id, ttl }, Duration::ZERO)
                .unwrap();
            assert_eq!(resp.ttl, MIN_TTL);
        }
        assert_eq!(grant(&mut state, 1, 10, SEC), Err(EtcdError::LeaseExists));
        assert_eq!(
            grant(&mut state, 4, MAX_TTL + 1, SEC),
            Err(EtcdError::LeaseTtlTooLarge)
        );
        assert_eq!(grant(&mut state, 4, MAX_TTL, SEC), Ok(4));
        assert_eq!(grant(&mut state, -5, 10, SEC), Ok(-5));
    }

    #[test]
    fn server_chosen_ids_are_positive_unique_and_two_apart() {
        let mut state = KvState::default();
        let a = grant(&mut state, 0, 10, Duration::ZERO).unwrap();
        let b = grant(&mut state, 0, 10, Duration::ZERO).unwrap();
        assert!(a > 0);
        assert_eq!(b - a, 2);
        assert_eq!((a as u64) >> 48, 0x694d, "prefixed by the member ID");
    }

    #[test]
    fn revoke_deletes_all_keys_in_one_revision() {
        let mut state = KvState::default();
        grant(&mut state, 7, 10, Duration::ZERO).unwrap();
        for key in ["c", "a", "b"] {
            put(&mut state, key, 7);
        }
        put(&mut state, "other", 0);
        assert_eq!(state.store.revision(), 5);
        let resp = state.lease_revoke(7).unwrap();
        assert_eq!(resp.header.unwrap().revision, 6);
        let deleted: Vec<_> = state
            .store
            .changes_since(6)
            .flat_map(|c| c.changes.iter().map(|c| c.key().to_vec()))
            .collect();
        assert_eq!(deleted, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(state.store.get_current(b"other").is_some());
        assert_eq!(state.lease_revoke(7), Err(EtcdError::LeaseNotFound));
    }

    #[test]
    fn revoking_a_lease_without_keys_makes_no_revision() {
        let mut state = KvState::default();
        grant(&mut state, 7, 10, Duration::ZERO).unwrap();
        state.lease_revoke(7).unwrap();
        assert_eq!(state.store.revision(), 1);
    }

    #[test]
    fn leases_expire_exactly_at_their_deadline_soonest_first() {
        let mut state = KvState::default();
        grant(&mut state, 1, 5, Duration::ZERO).unwrap();
        grant(&mut state, 2, 3, Duration::ZERO).unwrap();
        put(&mut state, "one", 1);
        put(&mut state, "two", 2);
        assert_eq!(state.lease_expire(3 * SEC - Duration::from_nanos(1)), 0);
        assert_eq!(state.lessor.next_expiry(), Some(3 * SEC));
        assert_eq!(state.lease_expire(3 * SEC), 1);
        assert!(state.store.get_current(b"two").is_none());
        assert!(state.store.get_current(b"one").is_some());
        assert_eq!(state.lease_expire(10 * SEC), 1);
        assert!(state.store.get_current(b"one").is_none());
        assert_eq!(state.lessor.next_expiry(), None);
    }

    #[test]
    fn renew_restarts_the_full_ttl() {
        let mut state = KvState::default();
        grant(&mut state, 1, 10, Duration::ZERO).unwrap();
        assert_eq!(state.lessor.renew(1, 8 * SEC), Some(10));
        assert_eq!(state.lease_expire(17 * SEC), 0);
        assert_eq!(state.lease_expire(18 * SEC), 1);
        assert_eq!(state.lessor.renew(1, 18 * SEC), None);
    }

    #[test]
    fn time_to_live_truncates_and_answers_minus_one_for_unknown_leases() {
        let mut state = KvState::default();
        grant(&mut state, 1, 60, Duration::ZERO).unwrap();
        put(&mut state, "k", 1);
        let ask = |id, keys| LeaseTimeToLiveRequest { id, keys };
        let resp = state.lease_time_to_live(&ask(1, true), Duration::from_millis(1));
        assert_eq!((resp.ttl, resp.granted_ttl), (59, 60));
        assert_eq!(resp.keys, [b"k".to_vec()]);
        let resp = state.lease_time_to_live(&ask(1, false), Duration::ZERO);
        assert_eq!(resp.ttl, 60);
        assert!(resp.keys.is_empty());
        let resp = state.lease_time_to_live(&ask(9, true), Duration::ZERO);
        assert_eq!((resp.id, resp.ttl, resp.granted_ttl), (9, -1, 0));
    }

    #[test]
    fn leases_are_listed_soonest_deadline_first() {
        let mut state = KvState::default();
        for (id, ttl) in [(1, 30), (2, 10), (3, 20), (4, 5)] {
            grant(&mut state, id, ttl, Duration::ZERO).unwrap();
        }
        let ids: Vec<_> = state.lease_leases().leases.iter().map(|l| l.id).collect();
        assert_eq!(ids, [4, 2, 3, 1]);
    }

    #[test]
    fn a_rolled_back_txn_keeps_the_lease_table() {
        use crate::pb::etcdserverpb::{request_op::Request, RequestOp, TxnRequest};
        let mut state = KvState::default();
        grant(&mut state, 1, 10, Duration::ZERO).unwrap();
        let op = |lease| RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                lease,
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            success: vec![op(1), op(2)],
            ..Default::default()
        };
        assert_eq!(state.txn(&txn), Err(EtcdError::LeaseNotFound));
        assert!(state.lessor.get(1).unwrap().keys.is_empty());
    }

    fn engine_put(engine: &Engine, key: &str, lease: i64) {
        engine
            .put(&PutRequest {
                key: key.into(),
                lease,
                ..Default::default()
            })
            .unwrap();
    }

    #[test]
    fn advancing_a_manual_clock_expires_before_returning_and_publishes_the_revision() {
        let engine = Engine::with_clock(crate::engine::Limits::default(), Clock::manual());
        let id = engine
            .lease_grant(&LeaseGrantRequest { id: 0, ttl: 5 })
            .unwrap()
            .id;
        engine_put(&engine, "k", id);
        let revisions = engine.subscribe();
        engine.advance(Duration::from_secs(4));
        assert!(engine.get(b"k").is_some());
        assert!(!revisions.has_changed().unwrap());
        engine.advance(SEC);
        assert!(engine.get(b"k").is_none());
        assert!(revisions.has_changed().unwrap());
        assert_eq!(*revisions.borrow(), 3);
    }

    #[test]
    fn a_keep_alive_past_the_deadline_expires_the_lease_instead() {
        let engine = Engine::with_clock(crate::engine::Limits::default(), Clock::manual());
        engine
            .lease_grant(&LeaseGrantRequest { id: 3, ttl: 5 })
            .unwrap();
        engine_put(&engine, "k", 3);
        // The clock passed the deadline without anyone expiring the lease yet.
        engine.clock().advance(Duration::from_secs(5));
        assert_eq!(engine.lease_renew(3), (0, 3));
        assert!(engine.get(b"k").is_none());
    }

    #[test]
    fn the_expiry_task_sleeps_until_the_next_deadline_on_a_real_clock() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let engine = Engine::new(crate::engine::Limits::default());
            tokio::spawn(run_expiry(engine.clone()));
            let id = engine
                .lease_grant(&LeaseGrantRequest { id: 0, ttl: 2 })
                .unwrap()
                .id;
            engine_put(&engine, "k", id);
            let mut revisions = engine.subscribe();
            // Jump to 20 ms before the deadline: the task must sleep the rest by itself.
            engine.advance(Duration::from_millis(1_980));
            assert!(engine.get(b"k").is_some());
            tokio::time::timeout(Duration::from_secs(2), revisions.changed())
                .await
                .expect("expired on its own")
                .unwrap();
            assert!(engine.get(b"k").is_none());
        });
    }
}
