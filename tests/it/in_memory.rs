//! The port-free client: etcd-client over an in-memory channel, every service, streams included.

use etcd_client::{Channel, Client, WatchOptions};
use test_etcd::TestEtcd;

async fn in_memory(etcd: &TestEtcd) -> Client {
    let channel = etcd.in_memory_channel().await;
    Client::from_channel(Channel::Tonic(channel), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_service_answers_over_the_in_memory_channel() {
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut c = in_memory(&etcd).await;
    // KV and Watch (a stream)
    let mut watch = c.watch("k", Some(WatchOptions::new())).await.unwrap();
    assert!(watch.message().await.unwrap().unwrap().created());
    c.put("k", "v", None).await.unwrap();
    let event = watch.message().await.unwrap().unwrap();
    assert_eq!(event.events()[0].kv().unwrap().value(), b"v");
    // Lease, with its keep-alive stream
    let lease = c.lease_grant(30, None).await.unwrap().id();
    let (mut keeper, mut answers) = c.lease_keep_alive(lease).await.unwrap();
    keeper.keep_alive().await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().ttl(), 30);
    // Lock and Election (Observe is a stream)
    let locked = c.lock("my-lock", None).await.unwrap();
    c.unlock(locked.key()).await.unwrap();
    let leased = c.lease_grant(30, None).await.unwrap().id();
    c.campaign("my-election", "me", leased).await.unwrap();
    let mut observe = c.observe("my-election").await.unwrap();
    assert_eq!(
        observe
            .message()
            .await
            .unwrap()
            .unwrap()
            .kv()
            .unwrap()
            .value(),
        b"me"
    );
    // Maintenance, Cluster, Auth
    assert_eq!(c.status().await.unwrap().version(), "3.7.2");
    assert_eq!(c.member_list().await.unwrap().members().len(), 1);
    assert!(c.user_list().await.unwrap().users().is_empty());
    // The server sees it all.
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
}

#[tokio::test]
async fn the_in_memory_channel_stops_with_the_server() {
    let etcd = TestEtcd::start();
    let mut c = in_memory(&etcd).await;
    c.put("k", "v", None).await.unwrap();
    drop(etcd);
    assert!(c.get("k", None).await.is_err());
}
