//! The TestEtcd guard: ports, drop, runtimes, fixtures.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use rstest::{fixture, rstest};
use test_etcd::{Error, TestEtcd};

use crate::client;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn drop_frees_the_port() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    assert!(TcpStream::connect(addr).is_ok());
    drop(etcd);
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after drop"
    );
    assert!(
        TcpListener::bind(addr).is_ok(),
        "the port can be bound again"
    );
}

/// Runs in a process of its own (see the test below), so that no other test's threads or
/// sockets blur the counts.
#[test]
#[ignore = "run by thousands_of_servers_leave_no_thread_fd_port_or_memory_behind in a child process"]
fn leak_check_alone() {
    let warm_up = TestEtcd::start();
    drop(warm_up);
    let (fds, tasks) = (open_fds(), threads());
    let mut ports = Vec::new();
    for _ in 0..300 {
        let etcd = TestEtcd::start();
        let _conn = TcpStream::connect(etcd.addr()).unwrap();
        ports.push(etcd.addr());
    }
    assert_eq!(threads(), tasks, "every server thread has ended");
    assert_eq!(open_fds(), fds, "every socket is closed");
    for addr in ports {
        assert!(
            TcpStream::connect(addr).is_err(),
            "{addr} still accepts connections"
        );
    }
    // Thousands of cycles more: memory settles instead of growing with them.
    let cycle = |n: usize| {
        for _ in 0..n {
            drop(TestEtcd::start());
        }
    };
    cycle(1_000);
    let settled = rss_kib();
    cycle(9_000);
    let grown = rss_kib().saturating_sub(settled);
    assert!(
        grown < 8 * 1024,
        "10,000 start/drop cycles grew memory by {grown} KiB"
    );
    assert_eq!(threads(), tasks, "every server thread has ended");
    assert_eq!(open_fds(), fds, "every socket is closed");
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn thousands_of_servers_leave_no_thread_fd_port_or_memory_behind() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "guard::leak_check_alone",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("1 passed"), "the check ran: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_with_open_connections_returns_promptly() {
    let etcd = TestEtcd::start();
    let mut c = client(&etcd).await;
    c.put("k", "v", None).await.unwrap();
    let started = std::time::Instant::now();
    drop(etcd);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        c.get("k", None).await.is_err(),
        "the client sees the server gone"
    );
}

#[test]
fn works_from_a_plain_test_with_its_own_runtime() {
    let etcd = TestEtcd::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = client(&etcd).await;
        c.put("k", "v", None).await.unwrap();
    });
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
}

#[tokio::test(start_paused = true)]
async fn works_while_tokio_time_is_paused() {
    let etcd = TestEtcd::start();
    let mut c = client(&etcd).await;
    c.put("k", "v", None).await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(c.get("k", None).await.unwrap().kvs()[0].value(), b"v");
}

#[fixture]
fn app() -> TestEtcd {
    TestEtcd::builder()
        .fixture("fixtures/app.json")
        .start()
        .unwrap()
}

#[rstest]
#[tokio::test]
async fn works_as_an_rstest_fixture(app: TestEtcd) {
    let mut c = client(&app).await;
    let resp = c.get("/app/leader", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value_str().unwrap(), "node-1");
}

#[rstest]
fn every_shipped_fixture_loads(#[files("fixtures/*.json")] path: std::path::PathBuf) {
    let etcd = TestEtcd::builder().fixture(&path).start().unwrap();
    assert!(etcd.revision() > 1, "{} seeds keys", path.display());
}

#[test]
fn fixtures_layer_in_order_each_key_one_put() {
    let etcd = TestEtcd::builder()
        .fixture_str(r#"{"a": "1", "b": "1"}"#)
        .fixture_json(serde_json::json!({"kvs": [{"key": "b", "value": "2"}]}))
        .start()
        .unwrap();
    assert_eq!(etcd.get("b").as_deref(), Some("2"));
    assert_eq!(etcd.revision(), 4);
}

#[test]
fn a_bad_fixture_names_file_line_column_and_path() {
    let err = TestEtcd::builder()
        .fixture_str("{\n  \"kvs\": [\n    {\"key\": \"a\", \"value\": 5}\n  ]\n}")
        .start()
        .unwrap_err();
    let Error::Fixture(err) = err else {
        panic!("expected a fixture error, got {err:?}")
    };
    assert_eq!((err.line(), err.column()), (Some(3), Some(27)));
    assert_eq!(err.json_path(), Some("$.kvs[0].value"));
    let missing = TestEtcd::builder()
        .fixture("fixtures/nope.json")
        .start()
        .unwrap_err();
    assert!(missing.to_string().contains("nope.json"), "{missing}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = taken.local_addr().unwrap();
    let err = TestEtcd::builder().listen(addr).start().unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()));
}
