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

/// The pid and the data dir of the etcd process serving `port`, found in /proc.
fn etcd_process(port: u16) -> Option<(u32, PathBuf)> {
    let wanted = format!("--listen-client-urls=http://127.0.0.1:{port}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == &wanted) {
            let data = args
                .iter()
                .find_map(|a| a.strip_prefix("--data-dir="))
                .map(PathBuf::from)?;
            return Some((pid, data));
        }
    }
    None
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
    let (pid, data) = etcd_process(addr.port()).expect("a running etcd");
    let dir = data.parent().expect("the guard's directory").to_path_buf();
    assert!(dir.exists());
    drop(etcd);
    // Reaped, not a zombie: the process is gone from /proc.
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists(), "{} was left behind", dir.display());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

#[test]
fn shutdown_stops_etcd_too() {
    let etcd = real().start().unwrap();
    let (pid, _) = etcd_process(etcd.addr().port()).expect("a running etcd");
    etcd.shutdown();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn limits_are_passed_to_etcd() {
    let etcd = real().max_request_bytes(1024).max_txn_ops(2).start().unwrap();
    let (pid, _) = etcd_process(etcd.addr().port()).expect("a running etcd");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
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
