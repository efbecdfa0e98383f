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
