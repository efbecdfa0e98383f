//! Bad input of every kind: each gets etcd's answer (or a closed connection) and the server keeps
//! serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use etcd_client::{GetOptions, Txn, TxnOp, WatchOptions};
use test_etcd::TestEtcd;
use tonic::Code;

use crate::{client, connect, status};

/// A second client still gets answers.
async fn still_serving(etcd: &TestEtcd) {
    let mut other = client(etcd).await;
    other
        .put("alive", "yes", None)
        .await
        .expect("the server keeps serving");
    assert_eq!(etcd.get("alive").as_deref(), Some("yes"));
}

#[tokio::test]
async fn garbage_bytes_on_the_port_close_that_connection_only() {
    let etcd = TestEtcd::start();
    for garbage in [
        &b"\x00\x01\x02garbage\xff\xfe"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xde\xad\xbe\xef",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let mut raw = TcpStream::connect(etcd.addr()).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(garbage).unwrap();
        let mut buf = [0u8; 256];
        // Either an HTTP error answer or a closed connection: never a hang or a crash.
        let _ = raw.read(&mut buf);
    }
    still_serving(&etcd).await;
}

#[tokio::test]
async fn invalid_requests_get_etcds_errors() {
    let (etcd, mut c) = connect().await;
    let cases = [
        (
            c.get("", None).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            c.get("k", Some(GetOptions::new().with_revision(99)))
                .await
                .map(drop),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            c.put(vec![b'k'; 2_000_000], "v", None).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: request is too large",
        ),
        (
            c.compact(-5, None).await.map(drop),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
    ];
    for (result, code, message) in cases {
        assert_eq!(status(result.unwrap_err()), (code, message.to_owned()));
    }
    // An inverted range is not an error: it is empty.
    assert_eq!(
        c.get("z", Some(GetOptions::new().with_range("a")))
            .await
            .unwrap()
            .count(),
        0
    );
    still_serving(&etcd).await;
}

#[tokio::test]
async fn deeply_nested_txns_are_refused_without_harm() {
    let (etcd, mut c) = connect().await;
    let mut txn = Txn::new().and_then([TxnOp::put("deep", "v", None)]);
    for _ in 0..200 {
        txn = Txn::new().and_then([TxnOp::txn(txn)]);
    }
    assert!(
        c.txn(txn).await.is_err(),
        "200 levels exceed both the op budget and the decoder"
    );
    assert_eq!(etcd.get("deep"), None);
    still_serving(&etcd).await;
}

#[tokio::test]
async fn an_oversize_watch_request_ends_that_stream_only() {
    let (etcd, mut c) = connect().await;
    let mut ok = c.watch("k", None).await.unwrap();
    ok.message().await.unwrap();
    let mut big = c.watch("k", None).await.unwrap();
    big.message().await.unwrap();
    big.watch(vec![b'x'; 2_200_000], None).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match big.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    let err = end.expect_err("a gRPC error");
    let (code, message) = status(err);
    assert_eq!(code, Code::ResourceExhausted);
    assert!(
        message.starts_with("grpc: received message larger than max"),
        "{message}"
    );
    c.put("k", "v", None).await.unwrap();
    assert!(
        ok.message().await.unwrap().unwrap().events().len() == 1,
        "other streams go on"
    );
    still_serving(&etcd).await;
}

#[tokio::test]
async fn thousands_of_watchers_and_clients_that_vanish_mid_stream() {
    let (etcd, mut c) = connect().await;
    let mut stream = c.watch("w/0", None).await.unwrap();
    stream.message().await.unwrap();
    for i in 1..2000 {
        stream
            .watch(format!("w/{i}"), Some(WatchOptions::new()))
            .await
            .unwrap();
    }
    for _ in 1..2000 {
        assert!(stream.message().await.unwrap().unwrap().created());
    }
    // Many streams from clients that go away without a word.
    for _ in 0..50 {
        let mut gone = client(&etcd).await;
        let mut s = gone.watch("w/1", None).await.unwrap();
        s.message().await.unwrap();
        drop(s);
        drop(gone);
    }
    c.put("w/1999", "v", None).await.unwrap();
    let event = stream.message().await.unwrap().unwrap();
    assert_eq!(event.watch_id(), 1999);
    still_serving(&etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_opens_thousands_of_streams() {
    // etcd allows any number of concurrent streams on a connection (its
    // --max-concurrent-streams defaults to 2^32-1); a lower cap makes such a client hang.
    const STREAMS: usize = 2000;
    let (etcd, mut c) = connect().await;
    let opened = tokio::time::timeout(Duration::from_secs(60), async {
        let mut streams = Vec::new();
        for i in 0..STREAMS {
            let mut s = c.watch(format!("many/{}", i % 10), None).await.unwrap();
            assert!(s.message().await.unwrap().unwrap().created());
            streams.push(s);
        }
        streams
    })
    .await
    .expect("every stream opens");
    assert_eq!(etcd.watchers().len(), STREAMS);
    c.put("many/3", "v", None).await.unwrap();
    for mut s in opened.into_iter().skip(3).step_by(10) {
        let resp = s.message().await.unwrap().unwrap();
        assert_eq!(resp.events()[0].kv().unwrap().key(), b"many/3");
    }
    crate::load::wait_for_no_watchers(&etcd).await;
    still_serving(&etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_disconnect_mid_stream() {
    let (etcd, mut c) = connect().await;
    let mut kept = c
        .watch("mid/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(kept.message().await.unwrap().unwrap().created());
    for _ in 0..20 {
        // A watcher with a backlog the server is still sending, and a keep-alive stream,
        // both cut off with the connection.
        let mut gone = client(&etcd).await;
        let mut s = gone
            .watch("mid/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(s.message().await.unwrap().unwrap().created());
        let lease = gone.lease_grant(60, None).await.unwrap().id();
        let (mut keeper, _answers) = gone.lease_keep_alive(lease).await.unwrap();
        keeper.keep_alive().await.unwrap();
        let ops: Vec<_> = (0..100)
            .map(|i| TxnOp::put(format!("mid/{i}"), vec![b'x'; 10_000], None))
            .collect();
        c.txn(Txn::new().and_then(ops)).await.unwrap();
        drop((s, keeper, gone));
    }
    // The watcher that stayed got every revision, the others left nothing on the server.
    for revision in 0..20 {
        let resp = kept.message().await.unwrap().unwrap();
        assert_eq!(resp.events().len(), 100, "revision {revision}");
    }
    drop((kept, c));
    crate::load::wait_for_no_watchers(&etcd).await;
    still_serving(&etcd).await;
}
