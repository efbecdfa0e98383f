//! etcd's HTTP endpoints, on the same port as gRPC, through a plain HTTP/1.1 client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
use test_etcd::TestEtcd;

use crate::{client, connect};

/// An HTTP/1.1 answer: status code, headers (names lowercased), body.
struct Answer {
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` and reads the whole answer (the server closes after it).
fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let code = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    assert!(
        headers
            .iter()
            .all(|(n, v)| n != "transfer-encoding" || v != "chunked"),
        "answers have a length"
    );
    Answer {
        code,
        headers,
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path)
}

async fn raise(client: &mut etcd_client::Client, alarm: AlarmType) {
    let mut options = AlarmOptions::new();
    options.with_member(1);
    client
        .alarm(AlarmAction::Activate, alarm, Some(options))
        .await
        .unwrap();
}

#[tokio::test]
async fn health_answers_on_the_grpc_port() {
    let (etcd, mut client) = connect().await;
    client.put("k", "v", None).await.unwrap();
    let answer = get(etcd.addr(), "/health");
    assert_eq!(answer.code, 200);
    assert_eq!(answer.body, r#"{"health":"true","reason":""}"#);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    client
        .get("k", None)
        .await
        .expect("gRPC still served on the same port");
}

#[tokio::test]
async fn an_alarm_makes_health_fail_unless_excluded() {
    let (etcd, mut client) = connect().await;
    raise(&mut client, AlarmType::Nospace).await;
    let answer = get(etcd.addr(), "/health");
    assert_eq!(answer.code, 503);
    assert_eq!(
        answer.body,
        "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n"
    );
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(get(etcd.addr(), "/health?exclude=NOSPACE").code, 200);
    raise(&mut client, AlarmType::Corrupt).await;
    let both = get(etcd.addr(), "/health?exclude=NOSPACE");
    assert!(both.body.contains("ALARM CORRUPT"), "{}", both.body);
}

#[test]
fn health_is_get_only() {
    let etcd = TestEtcd::start();
    let answer = request(etcd.addr(), "POST", "/health");
    assert_eq!(answer.code, 405);
    assert_eq!(answer.header("allow"), Some("GET"));
    assert_eq!(answer.body, "Method Not Allowed\n");
    assert_eq!(
        request(etcd.addr(), "OPTIONS", "/health").code,
        200,
        "CORS preflight"
    );
}

#[test]
fn version_reports_the_configured_version() {
    let etcd = TestEtcd::start();
    let answer = get(etcd.addr(), "/version");
    assert_eq!(answer.code, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.body,
        r#"{"etcdserver":"3.7.2","etcdcluster":"3.7.0","storage":"3.7.0"}"#
    );
    let older = TestEtcd::builder().version("3.6.4").start().unwrap();
    assert_eq!(
        get(older.addr(), "/version").body,
        r#"{"etcdserver":"3.6.4","etcdcluster":"3.6.0","storage":"3.6.0"}"#
    );
}

#[tokio::test]
async fn readyz_and_livez_run_their_checks() {
    let (etcd, mut client) = connect().await;
    let ready = get(etcd.addr(), "/readyz");
    assert_eq!((ready.code, ready.body.as_str()), (200, "ok\n"));
    assert_eq!(get(etcd.addr(), "/livez").body, "ok\n");
    let verbose = get(etcd.addr(), "/readyz?verbose");
    assert!(verbose.body.contains("[+]data_corruption ok\n") && verbose.body.ends_with("ok\n"));
    assert_eq!(get(etcd.addr(), "/readyz/non_learner").code, 200);
    assert_eq!(get(etcd.addr(), "/readyz/nonsense").code, 404);

    raise(&mut client, AlarmType::Corrupt).await;
    let failed = get(etcd.addr(), "/readyz");
    assert_eq!(failed.code, 503);
    assert!(failed
        .body
        .contains("[-]data_corruption failed: alarm activated: CORRUPT\n"));
    assert!(failed.body.contains("[+]serializable_read ok\n"));
    assert!(failed.body.ends_with("\n\n"));
    assert_eq!(
        get(etcd.addr(), "/readyz?exclude=data_corruption").code,
        200
    );
    assert_eq!(get(etcd.addr(), "/livez").code, 200);
}

#[test]
fn unknown_paths_are_not_found() {
    let etcd = TestEtcd::start();
    for path in ["/healthz", "/nope"] {
        let answer = get(etcd.addr(), path);
        assert_eq!(
            (answer.code, answer.body.as_str()),
            (404, "404 page not found\n")
        );
    }
}

fn metric<'a>(body: &'a str, series: &str) -> Option<&'a str> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
    })
}

#[tokio::test]
async fn metrics_export_etcd_gauges_and_grpc_counters() {
    let etcd = TestEtcd::builder().members(2).start().unwrap();
    let mut client = client(&etcd).await;
    client.get("k", None).await.unwrap();
    client.put("", "v", None).await.unwrap_err();

    let answer = get(etcd.addr(), "/metrics");
    assert_eq!(answer.code, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    let body = &answer.body;
    assert_eq!(metric(body, "etcd_server_has_leader"), Some("1"));
    assert_eq!(
        metric(body, "etcd_mvcc_db_total_size_in_bytes"),
        Some("20480")
    );
    assert_eq!(
        metric(body, "etcd_server_quota_backend_bytes"),
        Some("2.147483648e+09")
    );
    assert_eq!(
        metric(body, "etcd_server_version{server_version=\"3.7.2\"}"),
        Some("1")
    );
    assert_eq!(
        metric(body, "etcd_cluster_version{cluster_version=\"3.7\"}"),
        Some("1")
    );
    assert_eq!(
        metric(body, "etcd_debugging_mvcc_current_revision"),
        Some("1")
    );
    let started = |method: &str| {
        metric(body, &format!(
            "grpc_server_started_total{{grpc_method=\"{method}\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}}"
        ))
        .map(str::to_owned)
    };
    let handled = |code: &str, method: &str| {
        metric(body, &format!(
            "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{method}\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}}"
        ))
        .map(str::to_owned)
    };
    assert_eq!(started("Range").as_deref(), Some("1"));
    assert_eq!(handled("OK", "Range").as_deref(), Some("1"));
    assert_eq!(handled("InvalidArgument", "Put").as_deref(), Some("1"));
    assert_eq!(
        started("Txn").as_deref(),
        Some("0"),
        "series exist before the first call"
    );
    assert!(
        !body.contains("v3lockpb"),
        "lock series appear only once called"
    );
    // Each member says whether it leads; exactly one does.
    let leads: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|e| {
            let addr = e.trim_start_matches("http://").parse().unwrap();
            metric(&get(addr, "/metrics").body, "etcd_server_is_leader")
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut leads = leads;
    leads.sort();
    assert_eq!(leads, ["0", "1"]);
}

#[tokio::test]
async fn a_stream_counts_as_handled_when_it_ends() {
    let etcd = TestEtcd::start();
    let mut client = client(&etcd).await;
    let handled = || {
        let body = get(etcd.addr(), "/metrics").body;
        metric(&body, "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Snapshot\",grpc_service=\"etcdserverpb.Maintenance\",grpc_type=\"server_stream\"}")
            .map(str::to_owned)
    };
    assert_eq!(handled().as_deref(), Some("0"));
    let mut snapshot = client.snapshot().await.unwrap();
    let mut messages = 0;
    while snapshot.message().await.unwrap().is_some() {
        messages += 1;
    }
    assert!(messages > 0);
    // Counted as the server sent the stream's status, before the client saw the stream end.
    assert_eq!(handled().as_deref(), Some("1"));
}

/// etcd's gRPC answers (grpc-go) carry no `Date` header; its HTTP/1.1 answers (Go's net/http) do.
#[tokio::test]
async fn grpc_answers_have_no_date_header_and_http_answers_do() {
    /// Just the field a Range needs; the answer's fields are skipped.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RangeRequest {
        #[prost(bytes = "vec", tag = "1")]
        key: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RangeResponse {}

    let etcd = TestEtcd::start();
    let channel = tonic::transport::Channel::from_shared(etcd.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let answer: tonic::Response<RangeResponse> = grpc
        .unary(
            tonic::Request::new(RangeRequest { key: b"k".to_vec() }),
            http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Range"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        answer
            .metadata()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/grpc")
    );
    assert!(answer.metadata().get("date").is_none());

    assert!(get(etcd.addr(), "/health").header("date").is_some());
}
