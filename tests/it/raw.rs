//! Requests etcd-client cannot make, sent with our own generated client, and request limits.

use etcd_client::{PutOptions, Txn, TxnOp};
use tonic::Code;

use crate::pb::etcdserverpb::{kv_client::KvClient, RangeRequest};
use crate::{client, status};
use test_etcd::TestEtcd;

pub(crate) async fn channel(etcd: &TestEtcd) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(etcd.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn unknown_sort_enums_are_invalid_sort_option() {
    let etcd = TestEtcd::start();
    let mut kv = KvClient::new(channel(&etcd).await);
    for (order, target) in [(7, 0), (0, 9)] {
        let req = RangeRequest {
            key: b"k".to_vec(),
            sort_order: order,
            sort_target: target,
            ..Default::default()
        };
        let err = kv.range(req).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "etcdserver: invalid sort option")
        );
    }
}

#[tokio::test]
async fn an_oversize_put_is_too_large_and_the_server_keeps_serving() {
    let etcd = TestEtcd::start();
    let mut c = client(&etcd).await;
    let big = vec![b'x'; 1_600_000];
    let err = c.put("k", big, None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::InvalidArgument,
            "etcdserver: request is too large".into()
        )
    );
    let huge = vec![b'x'; 2_200_000];
    let err = c.put("k", huge, None).await.unwrap_err();
    let (code, message) = status(err);
    assert_eq!(code, Code::ResourceExhausted);
    assert!(
        message.starts_with("grpc: received message larger than max ("),
        "{message}"
    );
    assert!(message.ends_with(" vs. 2097152)"), "{message}");
    c.put("k", "small", None).await.unwrap();
    assert_eq!(etcd.get("k").as_deref(), Some("small"));
    // A big read is fine: only writes are proposals.
    c.put("k", vec![b'y'; 1_500_000], None).await.unwrap();
    assert_eq!(
        c.get("k", None).await.unwrap().kvs()[0].value().len(),
        1_500_000
    );
}

#[tokio::test]
async fn limits_are_settable_on_the_builder() {
    let etcd = TestEtcd::builder()
        .max_request_bytes(1024)
        .max_txn_ops(2)
        .start()
        .unwrap();
    let mut c = client(&etcd).await;
    let err = c
        .put("k", vec![b'x'; 2000], Some(PutOptions::new()))
        .await
        .unwrap_err();
    assert_eq!(status(err).1, "etcdserver: request is too large");
    let three = Txn::new().and_then([
        TxnOp::put("a", "1", None),
        TxnOp::put("b", "1", None),
        TxnOp::put("c", "1", None),
    ]);
    assert_eq!(
        status(c.txn(three).await.unwrap_err()).1,
        "etcdserver: too many operations in txn request"
    );
    let two = Txn::new().and_then([TxnOp::put("a", "1", None), TxnOp::put("b", "1", None)]);
    assert!(c.txn(two).await.is_ok());
}
