//! Range, Put, DeleteRange and Compact through etcd-client.

use etcd_client::{
    CompactionOptions, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget,
};
use tonic::Code;

use crate::{connect, rev, status};

fn keys(resp: &etcd_client::GetResponse) -> Vec<String> {
    resp.kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_owned())
        .collect()
}

async fn seed(client: &mut etcd_client::Client, keys: &[&str]) {
    for k in keys {
        client.put(*k, format!("v-{k}"), None).await.unwrap();
    }
}

#[tokio::test]
async fn headers_look_like_a_fresh_single_node_etcd() {
    let (_etcd, mut client) = connect().await;
    let resp = client.get("missing", None).await.unwrap();
    let header = resp.header().unwrap();
    assert_eq!(header.revision(), 1, "an empty store is at revision 1");
    assert_eq!(header.cluster_id(), 14841639068965178418);
    assert_eq!(header.member_id(), 10276657743932975437);
    assert_eq!(header.raft_term(), 2);
    assert!(resp.kvs().is_empty());
    assert_eq!(resp.count(), 0);
}

#[tokio::test]
async fn put_then_get_a_single_key() {
    let (_etcd, mut client) = connect().await;
    let put = client.put("k", "v1", None).await.unwrap();
    assert_eq!(rev(put.header()), 2);
    client.put("k", "v2", None).await.unwrap();
    let resp = client.get("k", None).await.unwrap();
    let kv = &resp.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version()
        ),
        (&b"v2"[..], 2, 3, 2)
    );
    assert_eq!(rev(resp.header()), 3);
}

#[tokio::test]
async fn ranges_prefixes_and_all_keys() {
    let (_etcd, mut client) = connect().await;
    seed(&mut client, &["a", "b/1", "b/2", "c"]).await;
    let range = client
        .get("a", Some(GetOptions::new().with_range("c")))
        .await
        .unwrap();
    assert_eq!(keys(&range), ["a", "b/1", "b/2"]);
    let prefix = client
        .get("b/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(keys(&prefix), ["b/1", "b/2"]);
    let all = client
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(all.count(), 4);
    let from = client
        .get("b/2", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(keys(&from), ["b/2", "c"]);
    let inverted = client
        .get("c", Some(GetOptions::new().with_range("a")))
        .await
        .unwrap();
    assert_eq!(
        inverted.count(),
        0,
        "an inverted range is empty, not an error"
    );
}

#[tokio::test]
async fn limit_sets_more_and_count_ignores_it() {
    let (_etcd, mut client) = connect().await;
    seed(&mut client, &["a", "b", "c", "d"]).await;
    let resp = client
        .get("", Some(GetOptions::new().with_all_keys().with_limit(1)))
        .await
        .unwrap();
    assert_eq!(keys(&resp), ["a"]);
    assert!(resp.more());
    assert_eq!(resp.count(), 4);
    let exact = client
        .get("", Some(GetOptions::new().with_all_keys().with_limit(4)))
        .await
        .unwrap();
    assert!(!exact.more());
    let negative = client
        .get("", Some(GetOptions::new().with_all_keys().with_limit(-1)))
        .await
        .unwrap();
    assert_eq!(negative.kvs().len(), 4, "a negative limit is no limit");
}

#[tokio::test]
async fn historical_reads_see_old_revisions_with_the_current_header() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "v1", None).await.unwrap(); // 2
    client.put("k", "v2", None).await.unwrap(); // 3
    client.delete("k", None).await.unwrap(); // 4
    let at2 = client
        .get("k", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap();
    assert_eq!(at2.kvs()[0].value(), b"v1");
    assert_eq!(rev(at2.header()), 4);
    let at4 = client
        .get("k", Some(GetOptions::new().with_revision(4)))
        .await
        .unwrap();
    assert!(at4.kvs().is_empty());
    let future = client
        .get("k", Some(GetOptions::new().with_revision(5)))
        .await
        .unwrap_err();
    assert_eq!(
        status(future),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into()
        )
    );
    let negative = client
        .get("k", Some(GetOptions::new().with_revision(-7)))
        .await
        .unwrap();
    assert!(
        negative.kvs().is_empty(),
        "a negative revision reads the current state"
    );
}

#[tokio::test]
async fn sorting_by_each_target_and_order() {
    let (_etcd, mut client) = connect().await;
    // Written in reverse key order, so mod/create order is the reverse of key order.
    for (k, v) in [("c", "1"), ("b", "3"), ("a", "2")] {
        client.put(k, v, None).await.unwrap();
    }
    client.put("c", "1", None).await.unwrap(); // c: version 2, newest mod
    let sorted = |target, order| GetOptions::new().with_all_keys().with_sort(target, order);
    let get = |opts| {
        let mut client = client.clone();
        async move { keys(&client.get("", Some(opts)).await.unwrap()) }
    };
    assert_eq!(
        get(sorted(SortTarget::Key, SortOrder::Descend)).await,
        ["c", "b", "a"]
    );
    assert_eq!(
        get(sorted(SortTarget::Value, SortOrder::Ascend)).await,
        ["c", "a", "b"]
    );
    assert_eq!(
        get(sorted(SortTarget::Create, SortOrder::Ascend)).await,
        ["c", "b", "a"]
    );
    assert_eq!(
        get(sorted(SortTarget::Mod, SortOrder::Descend)).await,
        ["c", "a", "b"]
    );
    assert_eq!(
        get(sorted(SortTarget::Version, SortOrder::Descend)).await,
        ["c", "a", "b"]
    );
    // Order NONE with a target other than KEY sorts ascending on that target.
    assert_eq!(
        get(sorted(SortTarget::Mod, SortOrder::None)).await,
        ["b", "a", "c"]
    );
}

#[tokio::test]
async fn keys_only_count_only_and_serializable() {
    let (_etcd, mut client) = connect().await;
    seed(&mut client, &["a", "b"]).await;
    let ko = client
        .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
        .await
        .unwrap();
    assert_eq!(keys(&ko), ["a", "b"]);
    assert!(ko
        .kvs()
        .iter()
        .all(|kv| kv.value().is_empty() && kv.version() == 1));
    let co = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .unwrap();
    assert!(co.kvs().is_empty());
    assert_eq!(co.count(), 2);
    assert!(!co.more());
    let ser = client
        .get("a", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(ser.kvs()[0].value(), b"v-a");
}

#[tokio::test]
async fn min_and_max_revision_filters_are_inclusive_and_do_not_change_count() {
    let (_etcd, mut client) = connect().await;
    seed(&mut client, &["a", "b", "c", "d"]).await; // mod 2..5
    client.put("a", "again", None).await.unwrap(); // a: create 2, mod 6
    let opts = GetOptions::new().with_all_keys();
    let r = client
        .get("", Some(opts.clone().with_min_mod_revision(4)))
        .await
        .unwrap();
    assert_eq!(keys(&r), ["a", "c", "d"]);
    assert_eq!(r.count(), 4);
    let r = client
        .get("", Some(opts.clone().with_max_mod_revision(4)))
        .await
        .unwrap();
    assert_eq!(keys(&r), ["b", "c"]);
    let r = client
        .get(
            "",
            Some(
                opts.clone()
                    .with_min_create_revision(3)
                    .with_max_create_revision(4),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(&r), ["b", "c"]);
}

#[tokio::test]
async fn put_prev_kv_ignore_value_and_ignore_lease() {
    let (_etcd, mut client) = connect().await;
    let first = client
        .put("k", "v1", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert!(first.prev_key().is_none());
    let second = client
        .put("k", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(second.prev_key().unwrap().value(), b"v1");
    client
        .put("k", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap();
    assert_eq!(client.get("k", None).await.unwrap().kvs()[0].value(), b"v2");
    let kv = &client.get("k", None).await.unwrap().kvs()[0].clone();
    assert_eq!(kv.version(), 3);
    client
        .put("k", "v4", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap();
    assert_eq!(client.get("k", None).await.unwrap().kvs()[0].value(), b"v4");
}

#[tokio::test]
async fn put_errors_have_etcds_codes_and_messages() {
    let (etcd, mut client) = connect().await;
    let cases = [
        (
            client.put("", "v", None).await,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            client
                .put("k", "v", Some(PutOptions::new().with_ignore_value()))
                .await,
            Code::InvalidArgument,
            "etcdserver: value is provided",
        ),
        (
            client
                .put(
                    "k",
                    "",
                    Some(PutOptions::new().with_ignore_lease().with_lease(5)),
                )
                .await,
            Code::InvalidArgument,
            "etcdserver: lease is provided",
        ),
        (
            client
                .put("missing", "", Some(PutOptions::new().with_ignore_value()))
                .await,
            Code::InvalidArgument,
            "etcdserver: key not found",
        ),
        (
            client
                .put("k", "v", Some(PutOptions::new().with_lease(12345)))
                .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        ),
    ];
    for (result, code, message) in cases {
        assert_eq!(status(result.unwrap_err()), (code, message.to_owned()));
    }
    assert_eq!(etcd.revision(), 1, "failed puts consume no revision");
}

#[tokio::test]
async fn delete_single_key_ranges_and_prev_kv() {
    let (_etcd, mut client) = connect().await;
    seed(&mut client, &["a", "b", "c", "d"]).await; // revision 5
    let one = client.delete("a", None).await.unwrap();
    assert_eq!((one.deleted(), rev(one.header())), (1, 6));
    let range = client
        .delete(
            "b",
            Some(DeleteOptions::new().with_range("d").with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(range.deleted(), 2);
    let prev: Vec<_> = range
        .prev_kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_owned())
        .collect();
    assert_eq!(prev, ["b", "c"]);
    assert_eq!(rev(range.header()), 7, "one revision for the whole range");
    let nothing = client.delete("zzz", None).await.unwrap();
    assert_eq!(
        (nothing.deleted(), rev(nothing.header())),
        (0, 7),
        "deleting nothing makes no revision"
    );
    let err = client.delete("", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::InvalidArgument,
            "etcdserver: key is not provided".into()
        )
    );
}

#[tokio::test]
async fn a_deleted_key_comes_back_with_a_new_create_revision() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "1", None).await.unwrap(); // 2
    client.put("k", "2", None).await.unwrap(); // 3
    client.delete("k", None).await.unwrap(); // 4
    client.put("k", "3", None).await.unwrap(); // 5
    let kv = client.get("k", None).await.unwrap().kvs()[0].clone();
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (5, 5, 1)
    );
}

#[tokio::test]
async fn compaction_frees_old_revisions_with_etcds_errors() {
    let (_etcd, mut client) = connect().await;
    client.put("k", "1", None).await.unwrap(); // 2
    client.put("k", "2", None).await.unwrap(); // 3
    client.put("k", "3", None).await.unwrap(); // 4
    let resp = client
        .compact(3, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    assert_eq!(rev(resp.header()), 4);
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    let old = client
        .get("k", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    assert_eq!(status(old), (Code::OutOfRange, compacted.into()));
    let at = client
        .get("k", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(
        at.kvs()[0].value(),
        b"2",
        "the compaction point itself stays readable"
    );
    let again = client.compact(3, None).await.unwrap_err();
    assert_eq!(status(again), (Code::OutOfRange, compacted.into()));
    let future = client.compact(10, None).await.unwrap_err();
    assert_eq!(
        status(future),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into()
        )
    );
    client.compact(4, None).await.unwrap();
    assert_eq!(client.get("k", None).await.unwrap().kvs()[0].value(), b"3");
}

#[tokio::test]
async fn range_stream_returns_the_range_in_chunks() {
    let (_etcd, mut client) = connect().await;
    for i in 0..35 {
        client.put(format!("k{i:02}"), "v", None).await.unwrap();
    }
    let mut stream = client
        .kv_client()
        .get_stream("k", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut sizes = Vec::new();
    let mut last = None;
    while let Some(resp) = stream.message().await.unwrap() {
        sizes.push(resp.kvs().len());
        last = Some(resp);
    }
    assert_eq!(sizes, [10, 20, 5]);
    let last = last.unwrap();
    assert_eq!((last.count(), rev(last.header())), (35, 36));
    let sorted = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Key, SortOrder::Descend);
    let err = match client.kv_client().get_stream("k", Some(sorted)).await {
        Ok(mut stream) => stream.message().await.unwrap_err(),
        Err(err) => err,
    };
    assert_eq!(
        status(err),
        (
            Code::Unimplemented,
            "RangeStream does not support custom sort orders".into()
        )
    );
}
