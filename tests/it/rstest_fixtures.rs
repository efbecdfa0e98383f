//! The ready-made rstest fixtures of the `rstest` feature.

use rstest::rstest;
use test_etcd::rstest::{connected, etcd, seeded_etcd, Connected};
use test_etcd::TestEtcd;

#[rstest]
fn the_plain_fixture_is_an_empty_server(etcd: TestEtcd) {
    assert_eq!(etcd.revision(), 1);
    assert!(etcd.range("").is_empty());
}

#[rstest]
fn the_seeded_fixture_defaults_to_fixtures_etcd_json(seeded_etcd: TestEtcd) {
    assert_eq!(seeded_etcd.get("/app/leader").as_deref(), Some("node-1"));
}

#[rstest]
fn the_seeded_fixture_takes_a_path(#[with("fixtures/sessions.json")] seeded_etcd: TestEtcd) {
    assert!(seeded_etcd.revision() > 1);
}

#[rstest]
#[tokio::test]
async fn the_connected_fixture_has_a_working_client(#[future(awt)] connected: Connected) {
    let Connected { etcd, mut client } = connected;
    client.put("/k", "v", None).await.unwrap();
    assert_eq!(etcd.get("/k").as_deref(), Some("v"));
}

#[rstest]
#[tokio::test]
async fn the_connected_fixture_takes_a_seeded_server(
    #[future(awt)]
    #[with(seeded_etcd("fixtures/app.json"))]
    connected: Connected,
) {
    let Connected { mut client, .. } = connected;
    let resp = client.get("/app/leader", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value(), b"node-1");
}
