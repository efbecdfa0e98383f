//! Watch through etcd-client (and our raw client where etcd-client hides a field).

use std::time::Duration;

use tokio_stream::StreamExt;

use etcd_client::{
    Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchFilterType, WatchOptions,
    WatchResponse, WatchStream,
};
use test_etcd::TestEtcd;

use crate::{client, connect};

const WAIT: Duration = Duration::from_secs(5);

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a response in time")
        .unwrap()
        .expect("stream open")
}

/// Asserts that nothing arrives for a short while.
async fn nothing(stream: &mut WatchStream) {
    let got = tokio::time::timeout(Duration::from_millis(200), stream.message()).await;
    assert!(got.is_err(), "expected nothing, got {got:?}");
}

fn summary(resp: &WatchResponse) -> Vec<(EventType, String, String)> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().unwrap();
            (
                e.event_type(),
                kv.key_str().unwrap().to_owned(),
                kv.value_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn created_then_one_response_per_revision() {
    let (_etcd, mut c) = connect().await;
    c.put("other", "x", None).await.unwrap(); // 2
    let mut stream = c.watch("k", None).await.unwrap();
    let created = next(&mut stream).await;
    assert!(created.created() && !created.canceled());
    assert_eq!(created.watch_id(), 0, "auto IDs start at 0");
    assert_eq!(created.header().unwrap().revision(), 2);
    c.put("k", "v1", None).await.unwrap(); // 3
    c.put("other", "y", None).await.unwrap(); // 4
    c.delete("k", None).await.unwrap(); // 5
    let put = next(&mut stream).await;
    assert_eq!(summary(&put), [(EventType::Put, "k".into(), "v1".into())]);
    assert_eq!(put.header().unwrap().revision(), 3);
    let kv = put.events()[0].kv().unwrap();
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (3, 3, 1)
    );
    let del = next(&mut stream).await;
    assert_eq!(del.header().unwrap().revision(), 5);
    let kv = del.events()[0].kv().unwrap();
    assert_eq!(del.events()[0].event_type(), EventType::Delete);
    assert_eq!(
        (kv.key(), kv.mod_revision(), kv.version(), kv.value()),
        (&b"k"[..], 5, 0, &b""[..])
    );
}

#[tokio::test]
async fn prefix_range_and_all_keys_watches() {
    let (_etcd, mut c) = connect().await;
    let mut prefix = c
        .watch("a/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut range = c
        .watch("b", Some(WatchOptions::new().with_range("d")))
        .await
        .unwrap();
    let mut all = c
        .watch("", Some(WatchOptions::new().with_all_keys()))
        .await
        .unwrap();
    for s in [&mut prefix, &mut range, &mut all] {
        assert!(next(s).await.created());
    }
    for k in ["a/1", "c", "d", "a"] {
        c.put(k, "v", None).await.unwrap();
    }
    assert_eq!(summary(&next(&mut prefix).await)[0].1, "a/1");
    nothing(&mut prefix).await;
    assert_eq!(summary(&next(&mut range).await)[0].1, "c");
    nothing(&mut range).await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(summary(&next(&mut all).await)[0].1.clone());
    }
    assert_eq!(keys, ["a/1", "c", "d", "a"]);
}

#[tokio::test]
async fn a_txn_is_one_response_in_op_order() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c
        .watch("", Some(WatchOptions::new().with_all_keys()))
        .await
        .unwrap();
    next(&mut stream).await;
    let txn = Txn::new()
        .when([Compare::version("z", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("z", "1", None), TxnOp::put("a", "2", None)]);
    c.txn(txn).await.unwrap();
    let resp = next(&mut stream).await;
    let keys: Vec<_> = summary(&resp).into_iter().map(|e| e.1).collect();
    assert_eq!(keys, ["z", "a"], "events in op order, not key order");
    assert_eq!(resp.header().unwrap().revision(), 2);
}

#[tokio::test]
async fn start_revision_replays_history_then_goes_live() {
    let (_etcd, mut c) = connect().await;
    for v in ["1", "2", "3"] {
        c.put("k", v, None).await.unwrap(); // 2, 3, 4
    }
    let mut stream = c
        .watch(
            "k",
            Some(WatchOptions::new().with_start_revision(3).with_prev_key()),
        )
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    let replay = next(&mut stream).await;
    assert_eq!(
        replay.events().len(),
        2,
        "a catch-up batch holds several revisions"
    );
    assert_eq!(
        replay.header().unwrap().revision(),
        4,
        "a catch-up header has the current revision"
    );
    assert_eq!(replay.events()[0].prev_kv().unwrap().value(), b"1");
    c.put("k", "4", None).await.unwrap();
    let live = next(&mut stream).await;
    assert_eq!(summary(&live), [(EventType::Put, "k".into(), "4".into())]);
    assert_eq!(live.events()[0].prev_kv().unwrap().value(), b"3");
}

#[tokio::test]
async fn a_future_start_revision_waits_for_it() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c
        .watch("k", Some(WatchOptions::new().with_start_revision(4)))
        .await
        .unwrap();
    next(&mut stream).await;
    c.put("k", "2", None).await.unwrap();
    c.put("k", "3", None).await.unwrap();
    c.put("k", "4", None).await.unwrap();
    let resp = next(&mut stream).await;
    assert_eq!(resp.events()[0].kv().unwrap().mod_revision(), 4);
}

#[tokio::test]
async fn filters_and_prev_kv() {
    let (_etcd, mut c) = connect().await;
    let no_put = WatchOptions::new()
        .with_filters([WatchFilterType::NoPut])
        .with_prev_key();
    let mut deletes = c.watch("k", Some(no_put)).await.unwrap();
    let no_delete = WatchOptions::new().with_filters([WatchFilterType::NoDelete]);
    let mut puts = c.watch("k", Some(no_delete)).await.unwrap();
    next(&mut deletes).await;
    next(&mut puts).await;
    c.put("k", "v", None).await.unwrap();
    c.delete("k", None).await.unwrap();
    let d = next(&mut deletes).await;
    assert_eq!(d.events()[0].event_type(), EventType::Delete);
    assert_eq!(d.events()[0].prev_kv().unwrap().value(), b"v");
    nothing(&mut deletes).await;
    assert_eq!(
        next(&mut puts).await.events()[0].event_type(),
        EventType::Put
    );
    nothing(&mut puts).await;
}

#[tokio::test]
async fn watch_ids_auto_explicit_and_duplicate() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c.watch("a", None).await.unwrap();
    assert_eq!(next(&mut stream).await.watch_id(), 0);
    stream
        .watch("b", Some(WatchOptions::new().with_watch_id(1)))
        .await
        .unwrap();
    assert_eq!(next(&mut stream).await.watch_id(), 1);
    stream.watch("c", None).await.unwrap();
    assert_eq!(
        next(&mut stream).await.watch_id(),
        2,
        "auto IDs skip the ones in use"
    );
    stream
        .watch("d", Some(WatchOptions::new().with_watch_id(-5)))
        .await
        .unwrap();
    assert_eq!(
        next(&mut stream).await.watch_id(),
        -5,
        "any explicit ID is used as given"
    );
    stream
        .watch("e", Some(WatchOptions::new().with_watch_id(1)))
        .await
        .unwrap();
    let dup = next(&mut stream).await;
    assert!(dup.created() && dup.canceled());
    assert_eq!(dup.watch_id(), -1);
    assert_eq!(
        dup.cancel_reason(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
}

#[tokio::test]
async fn bad_creates_are_refused_with_etcds_reasons() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c
        .watch("b", Some(WatchOptions::new().with_range("a")))
        .await
        .unwrap();
    let empty = next(&mut stream).await;
    assert_eq!(
        (empty.created(), empty.canceled(), empty.watch_id()),
        (true, true, -1)
    );
    assert_eq!(empty.cancel_reason(), "mvcc: watcher range is empty");
    assert_eq!(empty.header().unwrap().revision(), 1);
    stream
        .watch("k", Some(WatchOptions::new().with_start_revision(-1)))
        .await
        .unwrap();
    let negative = next(&mut stream).await;
    assert_eq!(
        negative.cancel_reason(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(negative.compact_revision(), 0);
}

#[tokio::test]
async fn cancel_answers_known_ids_only() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c.watch("k", None).await.unwrap();
    next(&mut stream).await;
    stream.cancel(42).await.unwrap();
    stream.cancel(0).await.unwrap();
    let canceled = next(&mut stream).await;
    assert_eq!(
        (canceled.watch_id(), canceled.canceled(), canceled.created()),
        (0, true, false)
    );
    assert_eq!(canceled.cancel_reason(), "");
    c.put("k", "v", None).await.unwrap();
    nothing(&mut stream).await;
}

#[tokio::test]
async fn a_compacted_start_is_created_then_canceled() {
    let (_etcd, mut c) = connect().await;
    for v in ["1", "2", "3"] {
        c.put("k", v, None).await.unwrap(); // 2, 3, 4
    }
    c.compact(3, None).await.unwrap();
    let mut stream = c
        .watch("k", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .unwrap();
    let created = next(&mut stream).await;
    assert!(created.created() && !created.canceled());
    let canceled = next(&mut stream).await;
    assert!(canceled.canceled() && !canceled.created());
    assert_eq!(canceled.watch_id(), created.watch_id());
    assert_eq!(canceled.compact_revision(), 3);
    assert_eq!(canceled.cancel_reason(), "");
    assert_eq!(canceled.header().unwrap().revision(), 0);
    // The compaction point itself is still watchable.
    stream
        .watch("k", Some(WatchOptions::new().with_start_revision(3)))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created());
    assert_eq!(next(&mut stream).await.events().len(), 2);
}

#[tokio::test]
async fn progress_requests_answer_with_watch_id_minus_one() {
    let (_etcd, mut c) = connect().await;
    c.put("k", "v", None).await.unwrap();
    let mut stream = c.watch("other", None).await.unwrap();
    next(&mut stream).await;
    c.put("k", "w", None).await.unwrap(); // 3, outside the watched range
    stream.request_progress().await.unwrap();
    let progress = next(&mut stream).await;
    assert_eq!(progress.watch_id(), -1);
    assert!(progress.events().is_empty() && !progress.created() && !progress.canceled());
    assert_eq!(progress.header().unwrap().revision(), 3);
    stream.cancel(0).await.unwrap();
    assert!(next(&mut stream).await.canceled());
    stream.request_progress().await.unwrap();
    nothing(&mut stream).await;
}

#[tokio::test]
async fn progress_notify_ticks_for_quiet_watchers_only() {
    let etcd = TestEtcd::builder()
        .watch_progress_notify_interval(Duration::from_millis(100))
        .start()
        .unwrap();
    let mut c = client(&etcd).await;
    let mut stream = c
        .watch("k", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    next(&mut stream).await;
    stream.watch("j", None).await.unwrap();
    assert_eq!(next(&mut stream).await.watch_id(), 1);
    let tick = next(&mut stream).await;
    assert_eq!(
        tick.watch_id(),
        0,
        "the notification carries the watcher's own ID"
    );
    assert!(tick.events().is_empty());
    assert_eq!(tick.header().unwrap().revision(), 1);
    let tick = next(&mut stream).await;
    assert_eq!(
        tick.watch_id(),
        0,
        "the watcher without progress_notify gets none"
    );
}

#[tokio::test]
async fn a_slow_reader_catches_up_from_history_without_loss() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c.watch("k", None).await.unwrap();
    next(&mut stream).await;
    // Write far more than the stream buffers while nobody reads.
    let n = 3000;
    for i in 0..n {
        c.put("k", i.to_string(), Some(PutOptions::new()))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < n {
        let resp = next(&mut stream).await;
        seen.extend(resp.events().iter().map(|e| e.kv().unwrap().mod_revision()));
    }
    let expected: Vec<i64> = (2..2 + n as i64).collect();
    assert_eq!(seen, expected, "every revision once, in order");
}

#[tokio::test]
async fn a_slow_reader_overtaken_by_compaction_is_canceled() {
    let (_etcd, mut c) = connect().await;
    let mut stream = c.watch("k", None).await.unwrap();
    next(&mut stream).await;
    // Big enough values that the client's and the transport's buffers fill up too.
    for i in 0..2000 {
        c.put("k", format!("{i:08192}"), None).await.unwrap();
    }
    c.compact(1500, None).await.unwrap();
    let mut last = 0;
    loop {
        let resp = next(&mut stream).await;
        if resp.canceled() {
            assert_eq!(resp.compact_revision(), 1500);
            assert!(
                last < 1499,
                "canceled only if it had not reached the compaction point"
            );
            break;
        }
        for e in resp.events() {
            let rev = e.kv().unwrap().mod_revision();
            assert_eq!(rev, last.max(1) + 1);
            last = rev;
        }
        assert!(last < 2001, "must be canceled before the end");
    }
}

#[tokio::test]
async fn dropping_the_guard_ends_watch_streams() {
    let (etcd, mut c) = connect().await;
    let mut stream = c.watch("k", None).await.unwrap();
    next(&mut stream).await;
    drop(etcd);
    let end = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the stream ends promptly");
    assert!(!matches!(end, Ok(Some(_))), "no more responses: {end:?}");
}

#[tokio::test]
async fn fragments_split_large_catch_up_responses() {
    use crate::pb::etcdserverpb::{
        watch_client::WatchClient, watch_request::RequestUnion, WatchCreateRequest, WatchRequest,
    };
    let (etcd, mut c) = connect().await;
    for i in 0..3 {
        c.put(format!("k{i}"), vec![b'x'; 900 * 1024], None)
            .await
            .unwrap();
    }
    c.put("k3", "small", None).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(etcd.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = WatchClient::new(channel).max_decoding_message_size(usize::MAX);
    let create = WatchCreateRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        start_revision: 2,
        fragment: true,
        ..Default::default()
    };
    let request = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    };
    let mut responses = raw
        .watch(tokio_stream::iter([request]).chain(tokio_stream::pending()))
        .await
        .unwrap()
        .into_inner();
    let created = responses.message().await.unwrap().unwrap();
    assert!(created.created);
    let first = responses.message().await.unwrap().unwrap();
    let second = responses.message().await.unwrap().unwrap();
    assert_eq!((first.events.len(), first.fragment), (2, true));
    assert_eq!((second.events.len(), second.fragment), (2, false));
    assert_eq!(first.header, second.header);
}

#[tokio::test]
async fn lease_expiry_and_revoke_show_as_delete_events_in_one_response() {
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut c = client(&etcd).await;
    let lease = c.lease_grant(10, None).await.unwrap().id();
    for k in ["s/a", "s/b"] {
        c.put(k, "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .unwrap();
    }
    let other = c.lease_grant(10, None).await.unwrap().id();
    c.put("s/c", "v", Some(PutOptions::new().with_lease(other)))
        .await
        .unwrap();
    let mut stream = c
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    next(&mut stream).await;
    c.lease_revoke(other).await.unwrap();
    let revoked = next(&mut stream).await;
    assert_eq!(
        summary(&revoked),
        [(EventType::Delete, "s/c".into(), "".into())]
    );
    etcd.advance(Duration::from_secs(10));
    let expired = next(&mut stream).await;
    let keys: Vec<_> = summary(&expired)
        .into_iter()
        .map(|(t, k, _)| (t, k))
        .collect();
    assert_eq!(
        keys,
        [
            (EventType::Delete, "s/a".into()),
            (EventType::Delete, "s/b".into())
        ]
    );
    assert_eq!(
        expired.header().unwrap().revision(),
        etcd.revision(),
        "both keys in one revision"
    );
}
