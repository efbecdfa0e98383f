//! The `test-etcd` binary: etcd's flags, a fixture, the endpoint printed when ready, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_test-etcd");

#[tokio::test]
async fn serves_a_fixture_until_sigterm() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/app.json");
    let mut child = Command::new(BIN)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:0",
            "--fixture",
            fixture,
        ])
        .args([
            "--name=ci",
            "--max-txn-ops",
            "64",
            "--auth-token-ttl=60",
            "--bcrypt-cost=4",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let resp = client.get("/app/leader", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value_str().unwrap(), "node-1");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success(), "exits cleanly on SIGTERM");
}

#[test]
fn an_unsupported_etcd_flag_is_an_error() {
    let out = Command::new(BIN)
        .args(["--data-dir", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("flag --data-dir is not supported"),
        "{stderr}"
    );
}

#[test]
fn a_bad_fixture_fails_with_its_location() {
    let out = Command::new(BIN)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:0",
            "--fixture",
            "/nonexistent/fixture.json",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/fixture.json"));
}

#[test]
fn auth_token_ttl_takes_whole_seconds() {
    let out = Command::new(BIN)
        .args(["--auth-token-ttl", "5m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("flag --auth-token-ttl needs a number, got \"5m\""),
        "{stderr}"
    );
}
