//! Reads of the state for a test's assertions, and the state changes of a simulated restart:
//! nothing here answers a client request.

use std::time::Duration;

use super::{Engine, KvState};

impl Engine {
    /// Every lease as `(id, granted TTL, time left, keys)`, soonest expiry first.
    pub(crate) fn inspect_leases(&self) -> Vec<(i64, i64, Duration, Vec<Vec<u8>>)> {
        let now = self.now();
        self.state()
            .lessor
            .by_expiry()
            .map(|l| {
                let keys = l.keys.iter().cloned().collect();
                (l.id, l.ttl, l.expiry.saturating_sub(now), keys)
            })
            .collect()
    }

    /// What a member restart changes: simple tokens are gone (etcd keeps them in memory only)
    /// and the raft term goes up (the restarted members elect a leader again). Keys, history,
    /// leases with their deadlines, users and roles stay.
    pub(crate) fn restart(&self) {
        self.auth(|auth| auth.drop_tokens());
        self.cluster().new_term();
    }

    /// A restart that lost its data directory: an empty store, no leases, no users or roles,
    /// no alarms. Members stay, and the raft term goes up as for any restart.
    pub(crate) fn wipe(&self) {
        {
            let mut state = self.state();
            *state = KvState::default();
            state.account_growth_from_scratch();
        }
        self.auth(|auth| *auth = Default::default());
        self.cluster().new_term();
        self.shared.revisions.send_replace(1);
        self.leases_changed();
    }
}
