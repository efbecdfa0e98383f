//! Txn through etcd-client: compares, branches, nesting, limits and revisions.

use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use tonic::Code;

use crate::{connect, rev, status};

#[tokio::test]
async fn compare_and_swap_takes_the_right_branch() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "old", None).await.unwrap(); // 2
    let swap = |expected: &str| {
        Txn::new()
            .when([Compare::value("k", CompareOp::Equal, expected)])
            .and_then([TxnOp::put("k", "new", None)])
            .or_else([TxnOp::get("k", None)])
    };
    let miss = client.txn(swap("nope")).await.unwrap();
    assert!(!miss.succeeded());
    assert_eq!(
        rev(miss.header()),
        2,
        "a failed compare with a read branch makes no revision"
    );
    let TxnOpResponse::Get(get) = &miss.op_responses()[0] else {
        panic!("expected a get")
    };
    assert_eq!(get.kvs()[0].value(), b"old");
    let hit = client.txn(swap("old")).await.unwrap();
    assert!(hit.succeeded());
    assert_eq!(rev(hit.header()), 3);
    let TxnOpResponse::Put(put) = &hit.op_responses()[0] else {
        panic!("expected a put")
    };
    assert_eq!(rev(put.header()), 3);
    let sub_header = put.header().unwrap();
    assert_eq!(
        (
            sub_header.cluster_id(),
            sub_header.member_id(),
            sub_header.raft_term()
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn every_compare_target_and_result() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "b", None).await.unwrap(); // create 2
    client.put("k", "b", None).await.unwrap(); // mod 3, version 2
    let cases = [
        (Compare::version("k", CompareOp::Equal, 2), true),
        (Compare::version("k", CompareOp::Greater, 2), false),
        (Compare::create_revision("k", CompareOp::Equal, 2), true),
        (Compare::create_revision("k", CompareOp::Less, 3), true),
        (Compare::mod_revision("k", CompareOp::NotEqual, 3), false),
        (Compare::mod_revision("k", CompareOp::Greater, 2), true),
        (Compare::value("k", CompareOp::Greater, "a"), true),
        (Compare::value("k", CompareOp::Less, "a"), false),
        (Compare::lease("k", CompareOp::Equal, 0), true),
        // A missing key compares as zero everywhere, except VALUE which is always false.
        (
            Compare::create_revision("missing", CompareOp::Equal, 0),
            true,
        ),
        (Compare::version("missing", CompareOp::NotEqual, 0), false),
        (Compare::value("missing", CompareOp::NotEqual, "x"), false),
    ];
    for (compare, expected) in cases {
        let resp = client
            .txn(Txn::new().when([compare.clone()]))
            .await
            .unwrap();
        assert_eq!(resp.succeeded(), expected, "{compare:?}");
    }
}

#[tokio::test]
async fn range_compares_need_every_key_to_match() {
    let (_etcd, mut client) = connect().await;
    client.put("p/a", "1", None).await.unwrap();
    client.put("p/b", "2", None).await.unwrap();
    let all_positive = Compare::value("p/", CompareOp::Greater, "0").with_prefix();
    assert!(client
        .txn(Txn::new().when([all_positive]))
        .await
        .unwrap()
        .succeeded());
    let all_two = Compare::value("p/", CompareOp::Equal, "2").with_prefix();
    assert!(!client
        .txn(Txn::new().when([all_two]))
        .await
        .unwrap()
        .succeeded());
    let none_created = Compare::create_revision("q/", CompareOp::Equal, 0).with_prefix();
    assert!(client
        .txn(Txn::new().when([none_created]))
        .await
        .unwrap()
        .succeeded());
}

#[tokio::test]
async fn a_txn_reads_its_writes_in_one_revision() {
    let (etcd, mut client) = connect().await;
    client.put("a", "1", None).await.unwrap(); // 2
    client.put("c", "1", None).await.unwrap(); // 3
    let txn = Txn::new().and_then([
        TxnOp::put("a", "2", None),
        TxnOp::get("a", None),
        TxnOp::delete("c", Some(DeleteOptions::new().with_prev_key())),
        TxnOp::get("c", None),
        TxnOp::put("b", "x", None),
    ]);
    let resp = client.txn(txn).await.unwrap();
    assert_eq!(rev(resp.header()), 4);
    let ops = resp.op_responses();
    let TxnOpResponse::Get(read) = &ops[1] else {
        panic!()
    };
    assert_eq!(
        (read.kvs()[0].value(), read.kvs()[0].mod_revision()),
        (&b"2"[..], 4)
    );
    let TxnOpResponse::Get(after_delete) = &ops[3] else {
        panic!()
    };
    assert!(after_delete.kvs().is_empty());
    assert_eq!(etcd.revision(), 4);
    assert_eq!(etcd.get("c"), None);
    assert_eq!(etcd.get("b").as_deref(), Some("x"));
}

#[tokio::test]
async fn nested_txns_run_on_their_own_compares() {
    let (_etcd, mut client) = connect().await;
    client.put("flag", "on", None).await.unwrap();
    let inner = Txn::new()
        .when([Compare::value("flag", CompareOp::Equal, "off")])
        .and_then([TxnOp::put("x", "then", None)])
        .or_else([TxnOp::put("x", "else", None)]);
    let resp = client
        .txn(Txn::new().and_then([TxnOp::txn(inner)]))
        .await
        .unwrap();
    let TxnOpResponse::Txn(nested) = &resp.op_responses()[0] else {
        panic!()
    };
    assert!(!nested.succeeded());
    assert_eq!(
        client.get("x", None).await.unwrap().kvs()[0].value(),
        b"else"
    );
}

#[tokio::test]
async fn duplicate_keys_and_too_many_ops_are_refused() {
    let (_etcd, mut client) = connect().await;
    let dup = Txn::new().and_then([TxnOp::put("a", "1", None), TxnOp::put("a", "2", None)]);
    assert_eq!(
        status(client.txn(dup).await.unwrap_err()),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".into()
        )
    );
    let put_in_delete = Txn::new().and_then([
        TxnOp::delete("a", Some(DeleteOptions::new().with_range("c"))),
        TxnOp::put("b", "1", None),
    ]);
    assert_eq!(
        status(client.txn(put_in_delete).await.unwrap_err()).1,
        "etcdserver: duplicate key given in txn request"
    );
    let ops: Vec<_> = (0..129)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    let too_many = Txn::new().and_then(ops);
    assert_eq!(
        status(client.txn(too_many).await.unwrap_err()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into()
        )
    );
    let ops: Vec<_> = (0..128)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    assert!(
        client.txn(Txn::new().and_then(ops)).await.is_ok(),
        "128 ops are allowed"
    );
}

#[tokio::test]
async fn a_bad_op_on_the_executed_branch_fails_the_whole_txn() {
    let (etcd, mut client) = connect().await;
    let bad_lease = Txn::new().and_then([
        TxnOp::put("a", "1", None),
        TxnOp::put("b", "1", Some(PutOptions::new().with_lease(42))),
    ]);
    let err = client.txn(bad_lease.clone()).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::NotFound,
            "etcdserver: requested lease not found".into()
        )
    );
    assert_eq!(etcd.revision(), 1);
    assert_eq!(etcd.get("a"), None);
    // The same op on the branch not taken is not checked.
    let untaken = Txn::new()
        .when([Compare::version("a", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("a", "1", None)])
        .or_else([TxnOp::put("b", "1", Some(PutOptions::new().with_lease(42)))]);
    assert!(client.txn(untaken).await.unwrap().succeeded());
}

#[tokio::test]
async fn txn_range_revisions_are_checked_against_the_state_before_it() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "1", None).await.unwrap(); // 2
    let future = Txn::new().and_then([TxnOp::get("k", Some(GetOptions::new().with_revision(3)))]);
    assert_eq!(
        status(client.txn(future).await.unwrap_err()).1,
        "etcdserver: mvcc: required revision is a future revision"
    );
    let minus_one =
        Txn::new().and_then([TxnOp::get("k", Some(GetOptions::new().with_revision(-1)))]);
    assert!(
        client.txn(minus_one).await.is_ok(),
        "-1 passes on a never-compacted store"
    );
    let minus_two =
        Txn::new().and_then([TxnOp::get("k", Some(GetOptions::new().with_revision(-2)))]);
    assert_eq!(
        status(client.txn(minus_two).await.unwrap_err()).1,
        "etcdserver: mvcc: required revision has been compacted"
    );
}

#[tokio::test]
async fn empty_keys_anywhere_in_a_txn_are_refused() {
    let (_etcd, mut client) = connect().await;
    let in_compare = Txn::new().when([Compare::version("", CompareOp::Equal, 0)]);
    assert_eq!(
        status(client.txn(in_compare).await.unwrap_err()),
        (
            Code::InvalidArgument,
            "etcdserver: key is not provided".into()
        )
    );
    let nested = Txn::new().or_else([TxnOp::txn(Txn::new().and_then([TxnOp::get("", None)]))]);
    assert_eq!(
        status(client.txn(nested).await.unwrap_err()).1,
        "etcdserver: key is not provided"
    );
}
