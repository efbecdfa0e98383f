//! The real-etcd backend behind the same TestEtcd API: it spawns etcd 3.7.2 (from the
//! etcd-bin-vendored dev-dependency), seeds fixtures, reads, and cleans up after itself.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_etcd::{Backend, Error, TestEtcd, TestEtcdBuilder};

use crate::client;

fn etcd_bin() -> PathBuf {
    etcd_bin_vendored::etcd_bin_path()
        .expect("etcd for this platform")
        .to_path_buf()
}

fn real() -> TestEtcdBuilder {
    TestEtcd::builder()
        .backend(Backend::Real)
        .etcd_binary(etcd_bin())
}

/// The etcd processes serving `port` and their data dir, found in /proc. (The watchdog shell
/// that starts etcd has the same arguments; it is not counted.)
fn etcd_processes(port: u16) -> (Vec<u32>, Option<PathBuf>) {
    let wanted = format!("--listen-client-urls=http://127.0.0.1:{port}");
    let mut pids = Vec::new();
    let mut data = None;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "etcd" {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == &wanted) {
            pids.push(pid);
            data = data.or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--data-dir="))
                    .map(PathBuf::from)
            });
        }
    }
    (pids, data)
}

/// Whether every process of `pids` has ended and been reaped (a zombie is still in /proc).
fn gone(pids: &[u32]) -> bool {
    pids.iter()
        .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

#[test]
fn serves_fixtures_and_reads_through_the_same_api() {
    let etcd = real()
        .fixture_str(r#"{"/app/leader": "node-1", "/app/mode": "primary"}"#)
        .start()
        .unwrap();
    assert_eq!(etcd.backend(), Backend::Real);
    assert!(etcd.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-1"));
    assert_eq!(etcd.get_bytes("/app/mode"), Some(b"primary".to_vec()));
    assert_eq!(etcd.get("/missing"), None);
    // As on the embedded engine: one revision per fixture key.
    assert_eq!(etcd.revision(), 3);
}

#[tokio::test]
async fn works_from_a_tokio_test_with_a_real_client() {
    let etcd = real().start().unwrap();
    let mut client = client(&etcd).await;
    client.put("/app/leader", "node-2", None).await.unwrap();
    // Direct reads block, but on a thread of their own: fine inside a current-thread runtime.
    assert_eq!(etcd.get("/app/leader").as_deref(), Some("node-2"));
    assert_eq!(etcd.revision(), 2);
}

#[test]
fn drop_kills_and_reaps_etcd_and_removes_its_directory() {
    let etcd = real().start().unwrap();
    let addr = etcd.addr();
    let (pids, data) = etcd_processes(addr.port());
    assert!(!pids.is_empty(), "a running etcd");
    let dir = data
        .expect("a data dir")
        .parent()
        .expect("the guard's directory")
        .to_path_buf();
    assert!(dir.exists());
    drop(etcd);
    // Reaped, not zombies: the processes are gone from /proc.
    assert!(gone(&pids));
    assert!(!dir.exists(), "{} was left behind", dir.display());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

#[test]
fn shutdown_stops_etcd_too() {
    let etcd = real().start().unwrap();
    let (pids, _) = etcd_processes(etcd.addr().port());
    assert!(!pids.is_empty(), "a running etcd");
    etcd.shutdown();
    assert!(gone(&pids));
}

#[test]
fn limits_are_passed_to_etcd() {
    let etcd = real()
        .max_request_bytes(1024)
        .max_txn_ops(2)
        .start()
        .unwrap();
    let (pids, _) = etcd_processes(etcd.addr().port());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.contains("--max-request-bytes=1024"));
    assert!(cmdline.contains("--max-txn-ops=2"));
}

#[test]
fn a_progress_interval_etcd_refuses_needs_the_embedded_backend() {
    let err = real()
        .watch_progress_notify_interval(Duration::from_millis(10))
        .start()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NeedsEmbedded {
                option: "watch_progress_notify_interval"
            }
        ),
        "{err}"
    );
    // The embedded engine takes it.
    TestEtcd::builder()
        .backend(Backend::Embedded)
        .watch_progress_notify_interval(Duration::from_millis(10))
        .start()
        .unwrap();
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let err = TestEtcd::builder()
        .backend(Backend::Real)
        .etcd_binary("/nonexistent/etcd")
        .start()
        .unwrap_err();
    assert!(matches!(err, Error::EtcdSpawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/etcd"), "{err}");
}

#[test]
fn a_bad_fixture_fails_before_etcd_is_spawned() {
    let err = real().fixture_str(r#"{"k": 5}"#).start().unwrap_err();
    assert!(matches!(err, Error::Fixture(_)), "{err}");
}

#[test]
fn etcd_dies_with_the_process_that_started_it() {
    // A process killed by a signal runs no Drop: the watchdog must end etcd and remove its
    // directory anyway. The test
    // binary re-runs itself as that process, which starts etcd, prints its port and hangs.
    if std::env::var_os("TEST_ETCD_ORPHAN_CHILD").is_some() {
        let etcd = real().start().unwrap();
        println!("port {}", etcd.addr().port());
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "real::etcd_dies_with_the_process_that_started_it",
            "--nocapture",
        ])
        .env("TEST_ETCD_ORPHAN_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let port = loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "no port"
        );
        if let Some(port) = line.trim().strip_prefix("port ") {
            break port.parse::<u16>().unwrap();
        }
    };
    let (pids, data) = etcd_processes(port);
    assert!(!pids.is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let ended = (0..500).any(|_| {
        gone(&pids) || {
            std::thread::sleep(Duration::from_millis(10));
            false
        }
    });
    assert!(ended, "etcd outlived the process that started it");
    let dir = data
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .expect("a dir");
    let removed = (0..500).any(|_| {
        !dir.exists() || {
            std::thread::sleep(Duration::from_millis(10));
            false
        }
    });
    assert!(removed, "{} was left behind", dir.display());
}

#[test]
fn a_local_cluster_serves_every_member() {
    let etcd = real()
        .members(3)
        .fixture_str(r#"{"k": "v"}"#)
        .start()
        .unwrap();
    let endpoints = etcd.endpoints();
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints[0], etcd.endpoint());
    // A write through one member is read through every other.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for endpoint in &endpoints {
            let mut client = etcd_client::Client::connect([endpoint], None)
                .await
                .unwrap();
            let resp = client.get("k", None).await.unwrap();
            assert_eq!(resp.kvs()[0].value(), b"v");
            assert_eq!(client.member_list().await.unwrap().members().len(), 3);
        }
    });
    let pids: Vec<u32> = etcd
        .endpoints()
        .iter()
        .flat_map(|e| {
            let port = e.rsplit(':').next().unwrap().parse().unwrap();
            etcd_processes(port).0
        })
        .collect();
    assert_eq!(pids.len(), 3);
    drop(etcd);
    assert!(gone(&pids));
}

#[test]
fn members_on_the_embedded_backend_are_simulated() {
    // One `members` option: real processes on the real backend, simulated members here.
    let etcd = TestEtcd::builder()
        .backend(Backend::Embedded)
        .members(3)
        .start()
        .unwrap();
    assert_eq!(etcd.endpoints().len(), 3);
}

#[test]
fn embedded_only_builder_options_need_the_embedded_backend() {
    let cases: Vec<(&str, TestEtcdBuilder)> = vec![
        ("manual_clock", real().manual_clock()),
        ("record_requests", real().record_requests()),
        ("version", real().version("3.6.5")),
        ("quota_backend_bytes", real().quota_backend_bytes(64 * 1024)),
        ("restore_snapshot", real().restore_snapshot(Vec::new())),
        (
            "auth_token_ttl",
            real().auth_token_ttl(Duration::from_secs(5)),
        ),
        ("tls", real().tls()),
    ];
    for (name, builder) in cases {
        let err = builder.start().unwrap_err();
        assert!(
            matches!(err, Error::NeedsEmbedded { option } if option == name),
            "{name}: {err}"
        );
    }
}

#[test]
fn embedded_only_methods_refuse_or_answer_empty_on_a_real_etcd() {
    let etcd = real().fixture_str(r#"{"k": "v"}"#).start().unwrap();
    let needs = |err: Error, name: &str| {
        assert!(
            matches!(err, Error::NeedsEmbedded { option } if option == name),
            "{name}: {err}"
        );
    };
    needs(etcd.fork().unwrap_err(), "fork");
    needs(etcd.start_member(1, "x").unwrap_err(), "start_member");
    needs(
        etcd.delay("KV/Put", Duration::from_millis(1)).unwrap_err(),
        "delay",
    );
    needs(
        etcd.fail_next("KV/Put", 1, test_etcd::EtcdFault::LeaderChanged)
            .unwrap_err(),
        "fail_next",
    );
    needs(
        etcd.write_fixture(std::env::temp_dir().join("test-etcd-never.json"))
            .unwrap_err(),
        "write_fixture",
    );
    needs(
        etcd.client_certificate("alice").unwrap_err(),
        "client_certificate",
    );
    assert!(etcd.range("").is_empty());
    assert!(etcd.leases().is_empty());
    assert!(etcd.watchers().is_empty());
    assert!(etcd.requests().is_empty());
    assert!(etcd.snapshot().is_empty());
    assert!(etcd.ca_pem().is_none());
    assert!(etcd.dump().is_null());
    // Inert: nothing happens to the real etcd.
    drop(etcd.refuse_requests());
    etcd.advance(Duration::from_secs(60));
    etcd.restart();
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
}

#[tokio::test]
async fn in_memory_channel_on_a_real_etcd_is_a_tcp_channel() {
    let etcd = real().fixture_str(r#"{"k": "v"}"#).start().unwrap();
    let channel = etcd.in_memory_channel().await;
    let mut client = etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None)
        .await
        .unwrap();
    let resp = client.get("k", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value(), b"v");
}

#[test]
fn existing_endpoints_give_each_guard_its_own_prefix() {
    let shared = real()
        .fixture_str(r#"{"/other/key": "kept"}"#)
        .start()
        .unwrap();
    let existing = || {
        TestEtcd::builder()
            .backend(Backend::Existing)
            .existing_endpoints(shared.endpoints())
    };
    let a = existing()
        .fixture_str(r#"{"/app/leader": "node-a"}"#)
        .start()
        .unwrap();
    let b = existing()
        .fixture_str(r#"{"/app/leader": "node-b"}"#)
        .start()
        .unwrap();
    assert_eq!(a.backend(), Backend::Existing);
    assert!(a.prefix().starts_with("/test-etcd/"), "{}", a.prefix());
    assert_ne!(a.prefix(), b.prefix());
    assert_eq!(a.endpoints(), shared.endpoints());
    assert_eq!(a.get("/app/leader").as_deref(), Some("node-a"));
    assert_eq!(b.get("/app/leader").as_deref(), Some("node-b"));
    // The prefix is put in front of the key as given, as etcd's own namespacing does.
    let a_key = format!("{}/app/leader", a.prefix());
    assert_eq!(shared.get(&a_key).as_deref(), Some("node-a"));
    // Dropping a guard deletes its prefix and nothing else.
    drop(a);
    assert_eq!(shared.get(&a_key), None);
    assert_eq!(b.get("/app/leader").as_deref(), Some("node-b"));
    assert_eq!(shared.get("/other/key").as_deref(), Some("kept"));
}

#[test]
fn existing_endpoints_refuse_server_options() {
    let err = TestEtcd::builder()
        .backend(Backend::Existing)
        .existing_endpoints(["http://127.0.0.1:1"])
        .max_txn_ops(4)
        .start()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotOnExisting {
                option: "max_txn_ops"
            }
        ),
        "{err}"
    );
    let err = TestEtcd::builder()
        .backend(Backend::Existing)
        .existing_endpoints(["not an endpoint"])
        .start()
        .unwrap_err();
    assert!(matches!(err, Error::BadEndpoint(_)), "{err}");
}

#[tokio::test]
async fn a_single_node_answers_with_a_default_etcds_ids_as_the_embedded_engine_does() {
    let mut headers = Vec::new();
    for backend in [Backend::Real, Backend::Embedded] {
        let etcd = real().backend(backend).start().unwrap();
        let mut client = client(&etcd).await;
        let resp = client.get("k", None).await.unwrap();
        let h = resp.header().unwrap();
        headers.push((h.cluster_id(), h.member_id(), h.revision(), h.raft_term()));
    }
    assert_eq!(headers[0], headers[1]);
    assert_eq!(
        headers[0],
        (0xcdf8_1819_4e3a_8c32, 0x8e9e_05c5_2164_694d, 1, 2)
    );
}

#[test]
fn existing_endpoints_refuse_fixture_leases_history_and_auth() {
    // They would reach beyond the guard's prefix on a shared etcd.
    let cases = [
        (
            "fixture leases",
            r#"{"leases": [{"name": "s", "ttl": 30}],
                "kvs": [{"key": "/k", "value": "v", "lease": "s"}]}"#,
        ),
        (
            "fixture history",
            r#"{"history": [{"put": "a", "value": "1"}]}"#,
        ),
        ("fixture auth", r#"{"auth": {"roles": [{"name": "r"}]}}"#),
    ];
    for (name, fixture) in cases {
        let err = TestEtcd::builder()
            .backend(Backend::Existing)
            .existing_endpoints(["http://127.0.0.1:1"])
            .fixture_str(fixture)
            .start()
            .unwrap_err();
        assert!(
            matches!(err, Error::NotOnExisting { option } if option == name),
            "{name}: {err}"
        );
    }
}

const LEASES_AND_AUTH: &str = r#"{
  "leases": [{"name": "session", "ttl": 30, "id": 1234}, {"name": "picked", "ttl": 40}],
  "kvs": [
    {"key": "/app/leader", "value": "node-1", "lease": "session"},
    {"key": "/app/worker", "value": "w", "lease": "picked"},
    {"key": "/shared/config", "value": "c"},
    {"key": "/secret", "value": "s"}
  ],
  "auth": {
    "enabled": true,
    "roles": [{"name": "app", "permissions": [
      {"prefix": "/app/", "type": "READWRITE"}, {"key": "/shared/config", "type": "READ"}]}],
    "users": [
      {"name": "root", "password": "rootpw", "roles": ["root"]},
      {"name": "alice", "password": "alicepw", "roles": ["app"]}]
  }
}"#;

#[tokio::test]
async fn fixture_leases_and_auth_are_seeded_on_a_real_etcd() {
    for backend in [Backend::Real, Backend::Embedded] {
        let etcd = real()
            .backend(backend)
            .fixture_str(LEASES_AND_AUTH)
            .start()
            .unwrap();
        // The guard's own reads log in as root.
        assert_eq!(etcd.get("/secret").as_deref(), Some("s"), "{backend:?}");
        assert_eq!(etcd.revision(), 5, "{backend:?}");
        let anonymous = etcd_client::Client::connect(etcd.endpoints(), None).await;
        let err = anonymous
            .unwrap()
            .get("/app/leader", None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("user name is empty"), "{err}");
        let options = etcd_client::ConnectOptions::new().with_user("alice", "alicepw");
        let mut alice = etcd_client::Client::connect(etcd.endpoints(), Some(options))
            .await
            .unwrap();
        let resp = alice.get("/app/leader", None).await.unwrap();
        assert_eq!(resp.kvs()[0].value(), b"node-1");
        assert_eq!(resp.kvs()[0].lease(), 1234);
        assert_eq!(
            alice.get("/shared/config", None).await.unwrap().kvs()[0].value(),
            b"c"
        );
        let err = alice.get("/secret", None).await.unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        let options = etcd_client::ConnectOptions::new().with_user("root", "rootpw");
        let mut root = etcd_client::Client::connect(etcd.endpoints(), Some(options))
            .await
            .unwrap();
        let ttl = root
            .lease_time_to_live(
                1234,
                Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
            )
            .await
            .unwrap();
        assert_eq!(ttl.granted_ttl(), 30);
        assert!(0 < ttl.ttl() && ttl.ttl() <= 30, "{}", ttl.ttl());
        assert_eq!(ttl.keys(), [b"/app/leader".to_vec()]);
        // The lease without an ID got one from the server, with its key.
        let worker = root.get("/app/worker", None).await.unwrap();
        let picked = worker.kvs()[0].lease();
        assert!(picked != 0 && picked != 1234);
        let leases = root.leases().await.unwrap();
        let mut ids: Vec<i64> = leases.leases().iter().map(|l| l.id()).collect();
        ids.sort_unstable();
        let mut expected = vec![1234, picked];
        expected.sort_unstable();
        assert_eq!(ids, expected);
    }
}

/// Every revision's keys, and the answer for each revision from 1 to the current one and past
/// it, as a real client sees them.
async fn every_revision(etcd: &TestEtcd) -> Vec<String> {
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let current = etcd.revision();
    let mut seen = Vec::new();
    for revision in 1..=current + 1 {
        let options = etcd_client::GetOptions::new()
            .with_all_keys()
            .with_revision(revision);
        seen.push(match client.get("", Some(options)).await {
            Ok(resp) => format!("{revision}: {:?}", resp.kvs()),
            Err(err) => format!("{revision}: {err}"),
        });
    }
    let leases = client.leases().await.unwrap();
    let mut ids: Vec<i64> = leases.leases().iter().map(|l| l.id()).collect();
    ids.sort_unstable();
    seen.push(format!("leases {ids:?}"));
    seen
}

#[tokio::test]
async fn a_history_fixture_is_replayed_on_a_real_etcd() {
    // Puts, a txn-like joined revision, deletes, a lease granted and revoked, a lease that
    // lives on, and a compaction: both backends end with the same revisions.
    let fixture = r#"{"history": [
        {"put": "a", "value": "1"},
        {"put": "b", "value": "1"},
        {"put": "a", "value": "2"},
        {"grant": "gone", "ttl": 60, "id": 7},
        {"put": "c", "value": "on gone", "lease": "gone"},
        {"put": "d", "value": "2", "revision": 6},
        {"put": "e", "value": "joins", "revision": 6},
        {"compact": 4},
        {"revoke": "gone"},
        {"delete": "a"},
        {"grant": "kept", "ttl": 90, "id": 8},
        {"put": "f", "value": "kept", "lease": "kept"}
    ]}"#;
    let mut seen = Vec::new();
    for backend in [Backend::Embedded, Backend::Real] {
        let etcd = real()
            .backend(backend)
            .fixture_str(fixture)
            .start()
            .unwrap();
        assert_eq!(etcd.revision(), 9, "{backend:?}");
        seen.push(every_revision(&etcd).await);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0][0].contains("compacted"), "{}", seen[0][0]);
    assert_eq!(seen[0].last().unwrap(), "leases [8]");
}

#[test]
fn a_fixture_a_real_etcd_cannot_reproduce_is_a_typed_error() {
    let cases = [
        // A revision with no write.
        r#"{"history": [{"put": "a", "value": "1"}, {"put": "b", "value": "1", "revision": 5}]}"#,
        // A store revision past the last write.
        r#"{"history": [{"put": "a", "value": "1"}], "revision": 9}"#,
        // A version no replay makes.
        r#"{"history": [{"put": "a", "value": "1", "version": 4}]}"#,
        // Keys without their history: etcdctl's output.
        r#"{"header": {"revision": 9}, "kvs": [{"key": "YQ==", "value": "MQ==",
            "create_revision": 3, "mod_revision": 5, "version": 2}], "count": 1}"#,
        // A stored password hash.
        r#"{"auth": {"users": [{"name": "u", "password_hash":
            "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"}]}}"#,
        // Auth on, with no password root could log in with.
        r#"{"auth": {"enabled": true,
            "users": [{"name": "root", "no_password": true, "roles": ["root"]}]}}"#,
    ];
    for fixture in cases {
        let err = real().fixture_str(fixture).start().unwrap_err();
        assert!(
            matches!(&err, Error::NotReproducible { fixture, .. } if fixture == "<string>"),
            "{fixture}: {err}"
        );
        // The embedded engine takes each of them.
        TestEtcd::builder()
            .backend(Backend::Embedded)
            .fixture_str(fixture)
            .start()
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    }
    // A lease granted again with another TTL by a later fixture.
    let err = real()
        .fixture_str(r#"{"leases": [{"name": "s", "ttl": 30, "id": 5}]}"#)
        .fixture_str(r#"{"leases": [{"name": "s", "ttl": 60, "id": 5}]}"#)
        .start()
        .unwrap_err();
    assert!(matches!(err, Error::NotReproducible { .. }), "{err}");
    assert!(err.to_string().contains("another TTL"), "{err}");
}
