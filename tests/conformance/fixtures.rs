//! Fixtures seeded on both backends: the embedded engine restores them, the real etcd has them
//! replayed through its API; reads, watches from the first revision, leases and auth must then
//! answer alike.

use crate::auth::login;
use crate::lease::{list_leases, time_to_live};
use crate::pb::etcdserverpb::WatchCreateRequest;
use crate::{all, get, Scenario, Session};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "fixture_history_replayed",
            configure: |b| b.fixture_str(HISTORY),
            run: history,
        },
        Scenario {
            name: "fixture_leases_and_auth",
            configure: |b| b.fixture_str(LEASES_AND_AUTH).fixture_str(MORE_KEYS),
            run: leases_and_auth,
        },
    ]
}

const HISTORY: &str = r#"{"history": [
    {"put": "a", "value": "1"},
    {"put": "b", "value": "1"},
    {"grant": "gone", "ttl": 60, "id": 7},
    {"put": "c", "value": "leased", "lease": "gone"},
    {"put": "a", "value": "2", "revision": 5},
    {"delete": "b", "revision": 5},
    {"compact": 3},
    {"revoke": "gone"},
    {"grant": "kept", "ttl": 90, "id": 8},
    {"put": "d", "value": "kept", "lease": "kept"},
    {"delete": "a", "prefix": true}
  ],
  "leases": [{"name": "named", "ttl": 120, "id": 9}],
  "kvs": [{"key": "e", "value": "after", "lease": "named"}]
}"#;

fn history(s: &mut Session) {
    s.range(all());
    for revision in 1..=9 {
        s.range(crate::pb::etcdserverpb::RangeRequest { revision, ..all() });
    }
    // Every event from the compaction point on, then a compacted start.
    let w = s.watch();
    s.create(
        w,
        WatchCreateRequest {
            start_revision: 3,
            prev_kv: true,
            ..crate::watch_range("\0", "\0")
        },
    );
    s.events_until(w, 8);
    let old = s.watch();
    s.create(
        old,
        WatchCreateRequest {
            start_revision: 2,
            ..crate::watch_range("\0", "\0")
        },
    );
    // Created, then cancelled: its start is below the compaction point.
    s.recv(old);
    s.recv(old);
    list_leases(s);
    for id in [7, 8, 9] {
        time_to_live(s, id, true);
    }
}

const LEASES_AND_AUTH: &str = r#"{
  "leases": [{"name": "session", "ttl": 30, "id": 1234}],
  "kvs": [
    {"key": "/app/leader", "value": "node-1", "lease": "session"},
    {"key": "/shared/config", "json": {"db": "postgres"}},
    {"key": "/secret", "value": "s"}
  ],
  "auth": {
    "enabled": true,
    "roles": [{"name": "app", "permissions": [
      {"prefix": "/app/", "type": "READWRITE"}, {"key": "/shared/config", "type": "READ"}]}],
    "users": [
      {"name": "root", "password": "rootpw", "roles": ["root"]},
      {"name": "alice", "password": "alicepw", "roles": ["app"]},
      {"name": "svc", "no_password": true, "roles": ["app"]}]
  }
}"#;

/// A second fixture, layered over the first: the same lease again, and a role extended.
const MORE_KEYS: &str = r#"{
  "leases": [{"name": "same", "ttl": 30, "id": 1234}],
  "kvs": [{"key": "/app/worker", "value": "w", "lease": "same"}],
  "auth": {"roles": [{"name": "app", "permissions": [{"key": "/secret", "type": "READ"}]}]}
}"#;

fn leases_and_auth(s: &mut Session) {
    s.range(get("/app/leader"));
    login(s, "alice", "alicepw");
    login(s, "svc", "");
    s.range(get("/app/leader"));
    s.range(get("/shared/config"));
    s.range(get("/secret"));
    s.put(crate::put("/shared/config", "no"));
    time_to_live(s, 1234, true);
    login(s, "root", "rootpw");
    s.range(all());
    list_leases(s);
    crate::auth::role_get(s, "app");
    crate::auth::user_get(s, "svc");
    crate::auth::user_list(s);
}
