//! Faults on demand, restarts and inspection, as a client sees them.

use std::time::{Duration, Instant};

use etcd_client::{ConnectOptions, GetOptions, PutOptions, WatchOptions};
use test_etcd::{Alarm, Error, EtcdFault, TestEtcd};
use tonic::Code;

use crate::{client, connect, status};

const WAIT: Duration = Duration::from_secs(5);

/// Whether a watch stream has ended (an error or the end), within a bounded wait.
async fn ended(stream: &mut etcd_client::WatchStream) -> bool {
    loop {
        match tokio::time::timeout(WAIT, stream.message()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(_) => return true,
        }
    }
}

#[tokio::test]
async fn refused_requests_answer_unavailable_until_the_guard_drops() {
    let (etcd, mut c) = connect().await;
    let guard = etcd.refuse_requests();
    let (code, message) = status(c.get("k", None).await.unwrap_err());
    assert_eq!(code, Code::Unavailable);
    assert!(message.contains("connect: connection refused"), "{message}");
    assert!(message.contains(&etcd.addr().to_string()), "{message}");
    assert_eq!(etcd.revision(), 1);
    drop(guard);
    c.put("k", "v", None).await.unwrap();
}

#[tokio::test]
async fn refusal_does_not_touch_open_streams() {
    let (etcd, mut c) = connect().await;
    let mut stream = c.watch("k", None).await.unwrap();
    stream.message().await.unwrap(); // created
    let _down = etcd.refuse_requests();
    let mut writer = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    assert!(writer.put("k", "v", None).await.is_err());
    assert_eq!(etcd.watchers().len(), 1, "the watcher is still open");
}

#[rstest::rstest]
#[case(
    EtcdFault::RequestTimedOut,
    Code::Unavailable,
    "etcdserver: request timed out"
)]
#[case(
    EtcdFault::LeaderChanged,
    Code::Unavailable,
    "etcdserver: leader changed"
)]
#[case(EtcdFault::NoLeader, Code::Unavailable, "etcdserver: no leader")]
#[case(EtcdFault::Stopped, Code::Unavailable, "etcdserver: server stopped")]
#[case(
    EtcdFault::TimedOutDueToLeaderFail,
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to previous leader failure"
)]
#[case(
    EtcdFault::NotCapable,
    Code::FailedPrecondition,
    "etcdserver: not capable"
)]
#[case(
    EtcdFault::TooManyRequests,
    Code::ResourceExhausted,
    "etcdserver: too many requests"
)]
#[case(EtcdFault::Corrupt, Code::DataLoss, "etcdserver: corrupt cluster")]
#[tokio::test]
async fn the_next_calls_fail_with_etcds_code_and_message(
    #[case] fault: EtcdFault,
    #[case] code: Code,
    #[case] message: &str,
) {
    let (etcd, mut c) = connect().await;
    let _guard = etcd.fail_next("KV/Put", 2, fault).unwrap();
    for _ in 0..2 {
        let err = c.put("k", "v", None).await.unwrap_err();
        assert_eq!(status(err), (code, message.to_owned()));
    }
    assert_eq!(etcd.revision(), 1, "failed puts change nothing");
    c.get("k", None).await.expect("other RPCs are served");
    c.put("k", "v", None)
        .await
        .expect("the third put is served");
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
}

#[tokio::test]
async fn dropping_the_guard_cancels_failures_not_yet_used() {
    let (etcd, mut c) = connect().await;
    let guard = etcd
        .fail_next("/etcdserverpb.KV/Range", 5, EtcdFault::NoLeader)
        .unwrap();
    assert!(c.get("k", None).await.is_err());
    drop(guard);
    c.get("k", None).await.unwrap();
}

#[tokio::test]
async fn clear_faults_undoes_every_fault() {
    let (etcd, mut c) = connect().await;
    let _a = etcd.fail_next("KV/Range", 5, EtcdFault::NoLeader).unwrap();
    let _b = etcd.refuse_requests();
    etcd.clear_faults();
    c.get("k", None).await.unwrap();
}

#[tokio::test]
async fn a_failed_stream_fails_when_it_opens() {
    let (etcd, mut c) = connect().await;
    let _g = etcd
        .fail_next("Watch/Watch", 1, EtcdFault::NoLeader)
        .unwrap();
    let opened = c.watch("k", None).await;
    let failed = match opened {
        Err(err) => Some(status(err)),
        Ok(mut stream) => match stream.message().await {
            Err(err) => Some(status(err)),
            Ok(_) => None,
        },
    };
    assert_eq!(
        failed,
        Some((Code::Unavailable, "etcdserver: no leader".to_owned()))
    );
}

#[test]
fn unknown_rpcs_are_an_error() {
    let etcd = TestEtcd::start();
    let err = etcd
        .fail_next("KV/Putt", 1, EtcdFault::NoLeader)
        .unwrap_err();
    assert!(matches!(&err, Error::UnknownRpc(rpc) if rpc == "KV/Putt"));
    assert!(etcd.delay("Nope", Duration::from_secs(1)).is_err());
    assert!(etcd.delay("Lock/Lock", Duration::from_secs(1)).is_ok());
}

#[tokio::test]
async fn delays_hold_only_the_chosen_rpc() {
    let (etcd, mut c) = connect().await;
    let guard = etcd.delay("KV/Put", Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    c.put("k", "v", None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Not asserting that a get is fast (no timed tests); it is served under the delay of puts.
    c.get("k", None).await.unwrap();
    drop(guard);
    c.put("k", "v2", None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn delays_run_on_the_servers_clock_not_the_tests() {
    // The test's tokio clock is paused; the server's runtime is not, so the delay ends.
    let (etcd, mut c) = connect().await;
    let _g = etcd.delay_all(Duration::from_millis(50));
    c.put("k", "v", None).await.unwrap();
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
}

#[tokio::test]
async fn end_streams_ends_watches_and_keep_alives_and_clients_reconnect() {
    let (etcd, mut c) = connect().await;
    let mut watch = c.watch("k", None).await.unwrap();
    watch.message().await.unwrap();
    let lease = c.lease_grant(30, None).await.unwrap().id();
    let (mut keeper, mut keep_alive) = c.lease_keep_alive(lease).await.unwrap();
    keeper.keep_alive().await.unwrap();
    keep_alive.message().await.unwrap();

    etcd.end_streams();

    assert!(ended(&mut watch).await, "the watch ended");
    let after = tokio::time::timeout(WAIT, keep_alive.message())
        .await
        .unwrap();
    assert!(!matches!(after, Ok(Some(_))), "the keep-alive stream ended");
    assert!(etcd.watchers().is_empty());
    c.put("k", "v", None).await.expect("a new connection");
}

#[tokio::test]
async fn watches_are_cancelled_as_compacted() {
    let (etcd, mut c) = connect().await;
    c.put("k", "1", None).await.unwrap();
    let mut stream = c.watch("k", None).await.unwrap();
    let created = stream.message().await.unwrap().unwrap();
    etcd.cancel_watches_compacted();
    let resp = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.watch_id(), created.watch_id());
    assert!(resp.canceled());
    assert_eq!(resp.compact_revision(), 2);
    assert!(etcd.watchers().is_empty());
    // The store is not compacted: reading and watching from the revision go on.
    let mut again = c
        .watch("k", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .unwrap();
    again.message().await.unwrap(); // created
    let replay = again.message().await.unwrap().unwrap();
    assert_eq!(replay.events()[0].kv().unwrap().value(), b"1");
}

#[tokio::test]
async fn alarms_refuse_writes_and_show_until_the_guard_drops() {
    let (etcd, mut c) = connect().await;
    let corrupt = etcd.raise_alarm(Alarm::Corrupt);
    let err = c.put("k", "v", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (Code::DataLoss, "etcdserver: corrupt cluster".to_owned())
    );
    c.get("k", None).await.expect("reads go on");
    let alarms = c
        .alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    drop(corrupt);
    c.put("k", "v", None).await.unwrap();
    let nospace = etcd.raise_alarm(Alarm::NoSpace);
    let (code, _) = status(c.put("k", "v", None).await.unwrap_err());
    assert_eq!(code, Code::ResourceExhausted);
    nospace.undo();
    c.put("k", "v", None).await.unwrap();
}

#[tokio::test]
async fn restart_keeps_the_data_ends_streams_and_raises_the_term() {
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut c = client(&etcd).await;
    let lease = c.lease_grant(60, None).await.unwrap().id();
    c.put("k", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    c.put("k", "v2", None).await.unwrap();
    etcd.advance(Duration::from_secs(20));
    let term = c.status().await.unwrap().raft_term();
    let mut watch = c.watch("k", None).await.unwrap();
    watch.message().await.unwrap();
    let addr = etcd.addr();

    etcd.restart();

    assert!(ended(&mut watch).await);
    assert_eq!(etcd.addr(), addr);
    let resp = c
        .get("k", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap();
    assert_eq!(resp.kvs()[0].value(), b"v", "history is kept");
    assert_eq!(resp.header().unwrap().revision(), 3);
    let ttl = c.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.ttl(), 40, "the lease keeps its remaining time");
    assert_eq!(c.status().await.unwrap().raft_term(), term + 1);
}

#[tokio::test]
async fn restart_drops_auth_tokens_but_keeps_users() {
    let etcd = TestEtcd::start();
    let mut admin = client(&etcd).await;
    admin.user_add("root", "pw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let options = ConnectOptions::new().with_user("root", "pw");
    let mut root = etcd_client::Client::connect(etcd.endpoints(), Some(options.clone()))
        .await
        .unwrap();
    root.put("k", "v", None).await.unwrap();

    etcd.restart();

    // A call sent on the old connection before the client saw it close fails with a
    // transport error, as with a real etcd; the next one reconnects.
    let mut err = root.put("k", "v2", None).await.unwrap_err();
    if err.to_string().contains("transport error") {
        err = root.put("k", "v2", None).await.unwrap_err();
    }
    assert_eq!(
        status(err),
        (
            Code::Unauthenticated,
            "etcdserver: invalid auth token".to_owned()
        )
    );
    let mut again = etcd_client::Client::connect(etcd.endpoints(), Some(options))
        .await
        .expect("the user is still there");
    again.put("k", "v2", None).await.unwrap();
}

#[tokio::test]
async fn a_watch_resumes_after_a_restart_from_the_next_revision() {
    let (etcd, mut c) = connect().await;
    let mut watch = c.watch("cfg", None).await.unwrap();
    watch.message().await.unwrap();
    c.put("cfg", "1", None).await.unwrap();
    let seen = watch
        .message()
        .await
        .unwrap()
        .unwrap()
        .header()
        .unwrap()
        .revision();

    etcd.restart();
    assert!(ended(&mut watch).await);
    etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap()
        .put("cfg", "2", None)
        .await
        .unwrap();

    let from = WatchOptions::new().with_start_revision(seen + 1);
    let mut resumed = c.watch("cfg", Some(from)).await.unwrap();
    resumed.message().await.unwrap(); // created
    let event = resumed.message().await.unwrap().unwrap();
    assert_eq!(event.events()[0].kv().unwrap().value(), b"2");
}

#[tokio::test]
async fn restart_empty_loses_everything_but_keeps_the_port() {
    let etcd = TestEtcd::builder()
        .fixture_str(r#"{"leases": [{"name": "s", "ttl": 30}], "kvs": [{"key": "k", "value": "v", "lease": "s"}]}"#)
        .start()
        .unwrap();
    let mut c = client(&etcd).await;
    etcd.restart_empty();
    let resp = c.get("k", None).await.unwrap();
    assert!(resp.kvs().is_empty());
    assert_eq!(resp.header().unwrap().revision(), 1);
    assert!(c.leases().await.unwrap().leases().is_empty());
    assert!(etcd.leases().is_empty());
    c.put("k", "new", None).await.unwrap();
    assert_eq!(etcd.revision(), 2);
}

#[tokio::test]
async fn the_request_log_holds_methods_and_decoded_requests() {
    let etcd = TestEtcd::builder().record_requests().start().unwrap();
    let mut c = client(&etcd).await;
    c.put("k", "v", None).await.unwrap();
    let mut watch = c.watch("k", None).await.unwrap();
    watch.message().await.unwrap();
    let _f = etcd.fail_next("KV/Range", 1, EtcdFault::NoLeader).unwrap();
    assert!(c.get("k", None).await.is_err());

    let log = etcd.requests();
    let methods: Vec<&str> = log.iter().map(|r| r.method()).collect();
    assert_eq!(
        methods,
        [
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.KV/Range"
        ]
    );
    let put = log[0].request().unwrap();
    assert!(
        put.starts_with("PutRequest { key: [107], value: [118]"),
        "{put}"
    );
    assert!(log[1].request().unwrap().contains("CreateRequest"));
    assert_eq!(
        log[2].request(),
        None,
        "a failed call's message is not read"
    );

    etcd.clear_requests();
    assert!(etcd.requests().is_empty());
    c.put("k", "v", None).await.unwrap();
    assert_eq!(etcd.requests().len(), 1);
}

#[tokio::test]
async fn without_recording_the_log_stays_empty() {
    let (etcd, mut c) = connect().await;
    c.put("k", "v", None).await.unwrap();
    assert!(etcd.requests().is_empty());
}

#[tokio::test]
async fn inspection_reads_keys_leases_and_watchers() {
    let etcd = TestEtcd::builder().manual_clock().start().unwrap();
    let mut c = client(&etcd).await;
    let lease = c.lease_grant(10, None).await.unwrap().id();
    c.put("/app/a", "1", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    c.put("/app/b", "2", None).await.unwrap();
    c.put("/app/b", "3", None).await.unwrap();
    c.put("/other", "x", None).await.unwrap();

    let kvs = etcd.range("/app/");
    assert_eq!(kvs.len(), 2);
    assert_eq!(
        (kvs[0].key_str(), kvs[0].lease),
        ("/app/a".to_owned(), lease)
    );
    assert_eq!(
        (
            kvs[1].value_str(),
            kvs[1].create_revision,
            kvs[1].mod_revision,
            kvs[1].version
        ),
        ("3".to_owned(), 3, 4, 2)
    );
    assert_eq!(etcd.range("").len(), 3);
    assert_eq!(etcd.revision(), 5);

    etcd.advance(Duration::from_secs(4));
    let leases = etcd.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].id, leases[0].ttl), (lease, 10));
    assert_eq!(leases[0].remaining, Duration::from_secs(6));
    assert_eq!(leases[0].keys, [b"/app/a".to_vec()]);

    assert!(etcd.watchers().is_empty());
    let mut stream = c
        .watch("/app/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let id = stream.message().await.unwrap().unwrap().watch_id();
    let open = etcd.watchers();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].key.as_slice(), open[0].range_end.as_slice()),
        (&b"/app/"[..], &b"/app0"[..])
    );
    stream.cancel(id).await.unwrap();
    stream.message().await.unwrap(); // cancelled
    assert!(etcd.watchers().is_empty());
}

#[tokio::test]
async fn every_member_restarts_on_its_own_port() {
    let etcd = TestEtcd::builder().members(3).start().unwrap();
    let before = etcd.endpoints();
    let mut c = client(&etcd).await;
    c.put("k", "v", None).await.unwrap();

    etcd.restart();

    assert_eq!(etcd.endpoints(), before);
    for endpoint in before {
        let mut member = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let resp = member.get("k", None).await.unwrap();
        assert_eq!(resp.kvs()[0].value(), b"v");
        assert_eq!(
            resp.header().unwrap().raft_term(),
            3,
            "one election after bootstrap's term 2"
        );
    }
}
