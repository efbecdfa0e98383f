//! Forks: independent servers that start from a parent's state.

use etcd_client::{GetOptions, WatchOptions};
use test_etcd::TestEtcd;

use crate::client;

#[tokio::test]
async fn a_fork_has_the_state_and_history_and_then_goes_its_own_way() {
    let parent = TestEtcd::start();
    let mut p = client(&parent).await;
    p.put("k", "1", None).await.unwrap(); // 2
    p.put("k", "2", None).await.unwrap(); // 3
    p.put("gone", "x", None).await.unwrap(); // 4
    p.compact(3, None).await.unwrap();
    let fork = parent.fork().unwrap();
    let mut f = client(&fork).await;
    assert_eq!(fork.revision(), 4);
    let old = f
        .get("k", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(old.kvs()[0].value(), b"2", "retained history comes along");
    assert!(
        f.get("k", Some(GetOptions::new().with_revision(2)))
            .await
            .is_err(),
        "so does the compaction point"
    );

    f.put("k", "fork", None).await.unwrap();
    p.delete("gone", None).await.unwrap();
    assert_eq!(parent.get("k").as_deref(), Some("2"));
    assert_eq!(fork.get("k").as_deref(), Some("fork"));
    assert_eq!(fork.get("gone").as_deref(), Some("x"));
    assert_eq!((parent.revision(), fork.revision()), (5, 5));
}

#[tokio::test]
async fn forking_while_a_watch_is_open_leaves_the_parents_watch_alone() {
    let parent = TestEtcd::start();
    let mut p = client(&parent).await;
    let mut stream = p.watch("k", Some(WatchOptions::new())).await.unwrap();
    stream.message().await.unwrap();
    let fork = parent.fork().unwrap();
    let mut f = client(&fork).await;
    f.put("k", "in-fork", None).await.unwrap();
    p.put("k", "in-parent", None).await.unwrap();
    let resp = stream.message().await.unwrap().unwrap();
    assert_eq!(resp.events()[0].kv().unwrap().value(), b"in-parent");
}

#[tokio::test]
async fn leases_and_auth_are_forked_and_then_independent() {
    let parent = TestEtcd::builder().manual_clock().start().unwrap();
    let mut p = client(&parent).await;
    let lease = p.lease_grant(30, None).await.unwrap().id();
    p.put(
        "session",
        "me",
        Some(etcd_client::PutOptions::new().with_lease(lease)),
    )
    .await
    .unwrap();
    p.user_add("root", "pw", None).await.unwrap();
    p.user_grant_role("root", "root").await.unwrap();
    let fork = parent.fork().unwrap();
    let mut f = client(&fork).await;
    // The fork has the lease with its deadline, and the users.
    assert_eq!(f.user_list().await.unwrap().users(), ["root"]);
    assert_eq!(fork.leases().len(), 1);
    // Revoking in the fork leaves the parent's lease and key alone, and the reverse.
    f.lease_revoke(lease).await.unwrap();
    assert_eq!(fork.get("session"), None);
    assert_eq!(parent.get("session").as_deref(), Some("me"));
    p.user_add("alice", "pw", None).await.unwrap();
    assert_eq!(f.user_list().await.unwrap().users(), ["root"]);
    // Each has its own clock: advancing the parent expires nothing in the fork.
    let kept = f.lease_grant(5, None).await.unwrap().id();
    parent.advance(std::time::Duration::from_secs(60));
    assert_eq!(parent.get("session"), None, "expired in the parent");
    assert!(f.lease_time_to_live(kept, None).await.unwrap().ttl() > 0);
}
