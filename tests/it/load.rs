//! Hundreds of concurrent clients against one server: writers, watchers and lease holders at
//! once. Bounded in size, not in time: what is asserted is that nothing was lost, repeated,
//! reordered or left behind, never how fast it went.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{Client, EventType, PutOptions, WatchOptions, WatchStream};
use test_etcd::TestEtcd;

use crate::client;

/// Key groups; each watcher watches one group's prefix.
const GROUPS: usize = 8;
const WATCHERS: usize = 80;
const WRITERS: usize = 120;
const LEASE_HOLDERS: usize = 40;
const PUTS_PER_WRITER: usize = 20;
const KEYS_PER_LEASE: usize = 3;
/// Connections the tasks share, as an application's few clients would.
const CONNECTIONS: usize = 4;

/// One change as a watcher saw it (or as the client that made it knows it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Change {
    revision: i64,
    key: String,
    delete: bool,
}

fn group(g: usize) -> String {
    format!("load/{g}/")
}

/// The last key each group gets: a watcher that sees it has seen everything before it.
fn end_key(g: usize) -> String {
    format!("{}~end", group(g))
}

/// Reads `stream` until the group's end key arrives; returns every change in arrival order.
async fn watch_until_end(mut stream: WatchStream, g: usize) -> Vec<Change> {
    let end = end_key(g);
    let mut seen = Vec::new();
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("events keep coming")
            .expect("no stream error")
            .expect("the stream stays open");
        for event in resp.events() {
            let kv = event.kv().expect("an event has its key");
            let change = Change {
                revision: kv.mod_revision(),
                key: kv.key_str().expect("utf-8 keys").to_owned(),
                delete: event.event_type() == EventType::Delete,
            };
            let done = change.key == end;
            seen.push(change);
            if done {
                return seen;
            }
        }
    }
}

/// Puts then deletes keys of its own, recording each change with the revision it got.
async fn writer(mut c: Client, w: usize) -> Vec<Change> {
    let mut made = Vec::new();
    for i in 0..PUTS_PER_WRITER {
        let key = format!("{}w{w}/{}", group(w % GROUPS), i % 5);
        let resp = c.put(key.as_str(), format!("{i}"), None).await.unwrap();
        let revision = resp.header().unwrap().revision();
        made.push(Change {
            revision,
            key: key.clone(),
            delete: false,
        });
        if i % 7 == 6 {
            let resp = c.delete(key.as_str(), None).await.unwrap();
            assert_eq!(resp.deleted(), 1);
            made.push(Change {
                revision: resp.header().unwrap().revision(),
                key,
                delete: true,
            });
        }
    }
    made
}

/// What a lease holder did: its lease, its keys' puts, and the revision of its revoke if it
/// revoked rather than leaving the lease to expire.
struct Held {
    lease: i64,
    puts: Vec<Change>,
    revoked_at: Option<i64>,
}

/// Grants a lease, attaches keys, keeps it alive once, and revokes it (even holders) or leaves
/// it to expire (odd ones).
async fn lease_holder(mut c: Client, l: usize) -> Held {
    let lease = c.lease_grant(60, None).await.unwrap().id();
    let mut puts = Vec::new();
    for i in 0..KEYS_PER_LEASE {
        let key = format!("{}lease{l}/{i}", group(l % GROUPS));
        let options = PutOptions::new().with_lease(lease);
        let resp = c.put(key.as_str(), "held", Some(options)).await.unwrap();
        puts.push(Change {
            revision: resp.header().unwrap().revision(),
            key,
            delete: false,
        });
    }
    let (mut keeper, mut answers) = c.lease_keep_alive(lease).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let answer = answers
        .message()
        .await
        .unwrap()
        .expect("a keep-alive answer");
    assert_eq!(answer.ttl(), 60);
    drop((keeper, answers));
    let revoked_at = if l.is_multiple_of(2) {
        let resp = c.lease_revoke(lease).await.unwrap();
        Some(resp.header().unwrap().revision())
    } else {
        None
    };
    Held {
        lease,
        puts,
        revoked_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_clients_lose_nothing_and_leave_nothing_behind() {
    // A manual clock, so that the leases left to expire expire when the test says.
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(client(&etcd).await);
    }
    let on = |i: usize| clients[i % CONNECTIONS].clone();

    // Arrange: every watcher is in place before the first write.
    let mut watchers = Vec::new();
    for w in 0..WATCHERS {
        let g = w % GROUPS;
        let options = WatchOptions::new().with_prefix();
        let mut stream = on(w).watch(group(g), Some(options)).await.unwrap();
        assert!(stream.message().await.unwrap().unwrap().created());
        watchers.push((g, tokio::spawn(watch_until_end(stream, g))));
    }
    assert_eq!(etcd.watchers().len(), WATCHERS);

    // Act: writers and lease holders all at once.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(on(w), w)))
        .collect();
    let holders: Vec<_> = (0..LEASE_HOLDERS)
        .map(|l| tokio::spawn(lease_holder(on(l), l)))
        .collect();
    let mut expected: Vec<BTreeSet<Change>> = vec![BTreeSet::new(); GROUPS];
    let key_group = |key: &str| -> usize {
        let rest = key.strip_prefix("load/").unwrap();
        rest[..rest.find('/').unwrap()].parse().unwrap()
    };
    for w in writers {
        for change in w.await.unwrap() {
            expected[key_group(&change.key)].insert(change);
        }
    }
    let mut left_to_expire = Vec::new();
    for h in holders {
        let held = h.await.unwrap();
        for put in &held.puts {
            expected[key_group(&put.key)].insert(put.clone());
            match held.revoked_at {
                Some(revision) => {
                    expected[key_group(&put.key)].insert(Change {
                        revision,
                        key: put.key.clone(),
                        delete: true,
                    });
                }
                None => left_to_expire.push(put.key.clone()),
            }
        }
        assert!(held.revoked_at.is_some() || etcd.leases().iter().any(|l| l.id == held.lease));
    }
    // The other half of the leases expire now, each in a revision of its own.
    let before_expiry = etcd.revision();
    etcd.advance(Duration::from_secs(61));
    let after_expiry = etcd.revision();
    assert_eq!(after_expiry - before_expiry, (LEASE_HOLDERS / 2) as i64);
    let mut c = on(0);
    for g in 0..GROUPS {
        c.put(end_key(g), "", None).await.unwrap();
    }

    // Assert: every watcher saw its group's changes once each, in revision order.
    for (g, watcher) in watchers {
        let seen = watcher.await.unwrap();
        let revisions: Vec<i64> = seen.iter().map(|c| c.revision).collect();
        assert!(
            revisions.windows(2).all(|w| w[0] <= w[1]),
            "group {g}: events in revision order"
        );
        let mut seen: Vec<Change> = seen.into_iter().filter(|c| c.key != end_key(g)).collect();
        let unique: BTreeSet<Change> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "group {g}: an event came twice");
        // Expiry deletes: each key once, inside the expiry's revisions.
        let expired: BTreeSet<String> = left_to_expire
            .iter()
            .filter(|k| key_group(k) == g)
            .cloned()
            .collect();
        let mut expired_seen = BTreeSet::new();
        seen.retain(|c| {
            if c.delete && expired.contains(&c.key) {
                assert!(c.revision > before_expiry && c.revision <= after_expiry);
                assert!(
                    expired_seen.insert(c.key.clone()),
                    "{} expired twice",
                    c.key
                );
                false
            } else {
                true
            }
        });
        assert_eq!(
            expired_seen, expired,
            "group {g}: every expired key's delete"
        );
        let seen: BTreeSet<Change> = seen.into_iter().collect();
        assert_eq!(seen, expected[g], "group {g}: exactly the changes made");
    }

    // No lease and no key attached to one is left.
    assert!(etcd.leases().is_empty(), "no lease left");
    assert!(etcd.range("load/").iter().all(|kv| kv.lease == 0));
    let leases = c.leases().await.unwrap();
    assert!(leases.leases().is_empty(), "LeaseLeases is empty");

    // Once the clients are gone, so are their watchers on the server.
    drop(c);
    drop(clients);
    wait_for_no_watchers(&etcd).await;
    let mut other = client(&etcd).await;
    other.put("after", "yes", None).await.unwrap();
    assert_eq!(etcd.get("after").as_deref(), Some("yes"));
}

/// Waits (bounded) for the server to notice that every watch stream is gone.
pub(crate) async fn wait_for_no_watchers(etcd: &TestEtcd) {
    for _ in 0..1000 {
        if etcd.watchers().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} watchers outlive their clients", etcd.watchers().len());
}
