//! etcd's JSON gateway (spec §6.3) through a plain HTTP/1.1 client on the gRPC port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{json, Value};
use test_etcd::TestEtcd;

/// Standard base64, as the gateway encodes bytes.
fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// An open HTTP/1.1 answer: status, headers (names lowercased) and the body still to read.
struct Answer {
    code: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding") == Some("chunked")
    }

    /// The next chunk of a chunked body, or `None` at its end.
    fn chunk(&mut self) -> Option<String> {
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).unwrap();
        data.truncate(size);
        (size > 0).then(|| String::from_utf8(data).unwrap())
    }

    /// The next line of a streamed body, as JSON.
    fn line(&mut self, pending: &mut String) -> Value {
        while !pending.contains('\n') {
            pending.push_str(&self.chunk().expect("stream ended early"));
        }
        let (line, rest) = pending.split_once('\n').unwrap();
        let value = serde_json::from_str(line).unwrap();
        *pending = rest.to_owned();
        value
    }

    /// The whole body.
    fn body(mut self) -> String {
        if self.chunked() {
            let mut body = String::new();
            while let Some(chunk) = self.chunk() {
                body.push_str(&chunk);
            }
            return body;
        }
        let mut body = String::new();
        self.reader.read_to_string(&mut body).unwrap();
        body
    }
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(stream, "{head}\r\n{body}").unwrap();
    read_answer(stream)
}

/// Reads the status line and headers of an answer.
fn read_answer(stream: TcpStream) -> Answer {
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code = status.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(": ").unwrap();
        headers.push((n.to_ascii_lowercase(), v.to_owned()));
    }
    Answer {
        code,
        headers,
        reader,
    }
}

/// POSTs `body` and returns the status and the JSON answer.
fn post_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let answer = send(addr, "POST", path, headers, &body.to_string());
    let code = answer.code;
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.body();
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    post_with(addr, path, &[], body)
}

#[test]
fn put_then_range_in_etcd_json() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let (code, put) = post(
        addr,
        "/v3/kv/put",
        json!({"key": b64("foo"), "value": b64("bar")}),
    );
    assert_eq!(code, 200, "{put}");
    let header = &put["header"];
    assert!(header["cluster_id"].is_string(), "{put}");
    assert!(header["member_id"].is_string(), "{put}");
    assert_eq!(header["revision"], "2");
    assert!(header["raft_term"].is_string(), "{put}");
    assert!(put.get("prev_kv").is_none(), "defaults are left out: {put}");

    // lowerCamel names are accepted on input; unknown fields are ignored.
    let (code, range) = post(
        addr,
        "/v3/kv/range",
        json!({"key": b64("f"), "rangeEnd": b64("g"), "bogus": 1}),
    );
    assert_eq!(code, 200, "{range}");
    assert_eq!(range["count"], "1");
    let kv = &range["kvs"][0];
    assert_eq!(kv["key"], b64("foo"));
    assert_eq!(kv["value"], b64("bar"));
    assert_eq!(kv["create_revision"], "2");
    assert_eq!(kv["mod_revision"], "2");
    assert_eq!(kv["version"], "1");
    assert!(kv.get("lease").is_none(), "{kv}");
    assert!(range.get("more").is_none(), "{range}");

    // The /v3beta prefix is rewritten to /v3.
    let (code, beta) = post(
        addr,
        "/v3beta/kv/range",
        json!({"key": b64("foo"), "count_only": true}),
    );
    assert_eq!(code, 200);
    assert_eq!(beta["count"], "1");
    assert!(beta.get("kvs").is_none(), "{beta}");
}

#[test]
fn txn_with_enums_by_name() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    post(
        addr,
        "/v3/kv/put",
        json!({"key": b64("k"), "value": b64("v1")}),
    );
    let txn = json!({
        "compare": [{"key": b64("k"), "result": "EQUAL", "target": "VALUE", "value": b64("v1")}],
        "success": [{"request_put": {"key": b64("k"), "value": b64("v2")}}],
        "failure": [{"request_range": {"key": b64("k")}}],
    });
    let (code, answer) = post(addr, "/v3/kv/txn", txn.clone());
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["succeeded"], true);
    assert!(
        answer["responses"][0]["response_put"]["header"].is_object(),
        "{answer}"
    );
    let (_, answer) = post(addr, "/v3/kv/txn", txn);
    assert!(
        answer.get("succeeded").is_none(),
        "false is left out: {answer}"
    );
    assert_eq!(
        answer["responses"][0]["response_range"]["kvs"][0]["value"],
        b64("v2")
    );
    assert_eq!(etcd.get("k").as_deref(), Some("v2"));
}

#[test]
fn errors_in_grpc_gateway_shape() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let (code, answer) = post(addr, "/v3/kv/put", json!({"value": b64("v")}));
    assert_eq!(code, 400);
    assert_eq!(
        answer,
        json!({"code": 3, "message": "etcdserver: key is not provided"})
    );

    let get = send(addr, "GET", "/v3/kv/range", &[], "");
    assert_eq!(get.code, 501);
    assert_eq!(
        serde_json::from_str::<Value>(&get.body()).unwrap(),
        json!({"code": 12, "message": "Method Not Allowed"})
    );

    let (code, answer) = post(addr, "/v3/kv/nothing", json!({}));
    assert_eq!(code, 404);
    assert_eq!(answer, json!({"code": 5, "message": "Not Found"}));

    let bad = send(addr, "POST", "/v3/kv/range", &[], "{x");
    assert_eq!(bad.code, 400);
    let bad: Value = serde_json::from_str(&bad.body()).unwrap();
    let message = "invalid character 'x' looking for beginning of object key string";
    assert_eq!(bad, json!({"code": 3, "message": message}));
    let (code, bad) = post(addr, "/v3/kv/range", json!([1]));
    assert_eq!(code, 400);
    assert_eq!(
        bad["message"],
        "proto: syntax error (line 1:1): unexpected token ["
    );
    let (_, bad) = post(addr, "/v3/kv/range", json!({"key": b64("k"), "limit": 1.5}));
    assert_eq!(
        bad["message"],
        "proto: invalid value for int64 field limit: 1.5"
    );

    // etcd rewrites /v3beta/ but not /v3alpha/.
    let alpha = send(addr, "POST", "/v3alpha/kv/range", &[], "{}");
    assert_eq!(
        (alpha.code, alpha.body()),
        (404, "404 page not found\n".to_owned())
    );

    // etcd's CORS handler covers the gateway: its headers, and preflights answered.
    let answer = send(addr, "POST", "/v3/kv/range", &[], "{}");
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(send(addr, "OPTIONS", "/v3/kv/range", &[], "").code, 200);

    // The HTTP endpoints outside /v3/ are as before.
    assert_eq!(send(addr, "GET", "/version", &[], "").code, 200);
}

#[test]
fn auth_token_in_authorization_header() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let ok = |(code, answer): (u16, Value)| assert_eq!(code, 200, "{answer}");
    ok(post(
        addr,
        "/v3/auth/user/add",
        json!({"name": "root", "password": "pw"}),
    ));
    ok(post(
        addr,
        "/v3/auth/user/grant",
        json!({"user": "root", "role": "root"}),
    ));
    let (_, status) = post(addr, "/v3/auth/status", json!({}));
    assert!(status.get("enabled").is_none(), "{status}");
    ok(post(addr, "/v3/auth/enable", json!({})));
    let (_, status) = post(addr, "/v3/auth/status", json!({}));
    assert_eq!(status["enabled"], true);

    let (code, auth) = post(
        addr,
        "/v3/auth/authenticate",
        json!({"name": "root", "password": "pw"}),
    );
    assert_eq!(code, 200, "{auth}");
    let token = auth["token"].as_str().unwrap().to_owned();

    let put = json!({"key": b64("a"), "value": b64("1")});
    let (code, denied) = post(addr, "/v3/kv/put", put.clone());
    assert_ne!(code, 200, "{denied}");
    assert!(denied["code"].is_number(), "{denied}");
    ok(post_with(
        addr,
        "/v3/kv/put",
        &[("Authorization", &token)],
        put.clone(),
    ));
    let bearer = format!("Bearer {token}");
    ok(post_with(
        addr,
        "/v3/kv/put",
        &[("Authorization", &bearer)],
        put.clone(),
    ));
    ok(post_with(
        addr,
        "/v3/kv/put",
        &[("Grpc-Metadata-Token", &token)],
        put,
    ));
    // A stream that fails before its first message answers the failure's status, in the
    // stream's shape.
    let snapshot = send(addr, "POST", "/v3/maintenance/snapshot", &[], "{}");
    assert_eq!(snapshot.code, 400);
    let line = "{\"error\":{\"code\":3,\"message\":\"etcdserver: user name is empty\"}}\n";
    assert_eq!(snapshot.body(), line);
    let (_, list) = post_with(
        addr,
        "/v3/auth/user/list",
        &[("Authorization", &token)],
        json!({}),
    );
    assert_eq!(list["users"], json!(["root"]));
}

#[test]
fn watch_streams_results() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let create = json!({"create_request": {"key": b64("w")}});
    let mut answer = send(addr, "POST", "/v3/watch", &[], &create.to_string());
    assert_eq!(answer.code, 200);
    assert!(answer.chunked());
    let mut pending = String::new();
    let created = answer.line(&mut pending);
    assert_eq!(created["result"]["created"], true, "{created}");
    assert!(
        created["result"]["header"]["revision"].is_string(),
        "{created}"
    );

    post(
        addr,
        "/v3/kv/put",
        json!({"key": b64("w"), "value": b64("x")}),
    );
    let event = answer.line(&mut pending);
    let events = &event["result"]["events"];
    // PUT is the default event type, so it is left out.
    assert!(events[0].get("type").is_none(), "{event}");
    assert_eq!(events[0]["kv"]["key"], b64("w"));
    assert_eq!(events[0]["kv"]["value"], b64("x"));

    post(addr, "/v3/kv/deleterange", json!({"key": b64("w")}));
    let deleted = answer.line(&mut pending);
    assert_eq!(
        deleted["result"]["events"][0]["type"], "DELETE",
        "{deleted}"
    );
}

#[test]
fn lease_grant_keepalive_and_timetolive() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let (code, grant) = post(addr, "/v3/lease/grant", json!({"TTL": "60"}));
    assert_eq!(code, 200, "{grant}");
    assert_eq!(grant["TTL"], "60");
    let id = grant["ID"].as_str().unwrap().to_owned();

    let mut keepalive = send(
        addr,
        "POST",
        "/v3/lease/keepalive",
        &[],
        &json!({"ID": id}).to_string(),
    );
    assert_eq!(keepalive.code, 200);
    let mut pending = String::new();
    let kept = keepalive.line(&mut pending);
    assert_eq!(kept["result"]["ID"], id.as_str(), "{kept}");
    assert_eq!(kept["result"]["TTL"], "60");

    let (_, ttl) = post(
        addr,
        "/v3/kv/lease/timetolive",
        json!({"ID": id, "keys": true}),
    );
    assert_eq!(ttl["grantedTTL"], "60", "{ttl}");
    let (_, leases) = post(addr, "/v3/lease/leases", json!({}));
    assert_eq!(leases["leases"][0]["ID"], id.as_str(), "{leases}");
    let (code, _) = post(addr, "/v3/lease/revoke", json!({"ID": id}));
    assert_eq!(code, 200);
    let (code, gone) = post(addr, "/v3/lease/revoke", json!({"ID": id}));
    assert_eq!(code, 404, "{gone}");
    assert_eq!(
        gone,
        json!({"code": 5, "message": "etcdserver: requested lease not found"})
    );
}

#[test]
fn maintenance_and_cluster() {
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let (code, status) = post(addr, "/v3/maintenance/status", json!({}));
    assert_eq!(code, 200, "{status}");
    assert!(status["version"].is_string(), "{status}");
    assert!(status["dbSize"].is_string(), "{status}");
    assert!(status["leader"].is_string(), "{status}");
    let (_, hash) = post(addr, "/v3/maintenance/hashkv", json!({}));
    assert!(hash["hash"].is_number(), "uint32 is a number: {hash}");
    let (_, members) = post(addr, "/v3/cluster/member/list", json!({}));
    assert!(members["members"][0]["clientURLs"].is_array(), "{members}");

    let mut snapshot = send(addr, "POST", "/v3/maintenance/snapshot", &[], "{}");
    assert_eq!(snapshot.code, 200);
    let mut pending = String::new();
    let first = snapshot.line(&mut pending);
    assert!(first["result"]["blob"].is_string(), "{first}");
}

#[test]
fn faults_reach_gateway_calls() {
    // The gateway is a gRPC client of the member, so injected faults apply to it too.
    let etcd = TestEtcd::start();
    let _guard = etcd
        .fail_next("KV/Range", 1, test_etcd::EtcdFault::NoLeader)
        .unwrap();
    let (code, answer) = post(etcd.addr(), "/v3/kv/range", json!({"key": b64("k")}));
    assert_eq!(code, 503);
    assert_eq!(
        answer,
        json!({"code": 14, "message": "etcdserver: no leader"})
    );
    let (code, _) = post(etcd.addr(), "/v3/kv/range", json!({"key": b64("k")}));
    assert_eq!(code, 200);
}

#[test]
fn watch_requests_on_an_open_body() {
    // A chunked request body that stays open: each request is served as it arrives.
    let etcd = TestEtcd::start();
    let addr = etcd.addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    let chunk = |stream: &mut TcpStream, json: Value| {
        let text = format!("{json}\n");
        write!(stream, "{:x}\r\n{text}\r\n", text.len()).unwrap();
    };
    write!(
        stream,
        "POST /v3/watch HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    chunk(&mut stream, json!({"create_request": {"key": b64("a")}}));
    let mut answer = read_answer(stream.try_clone().unwrap());
    assert_eq!(answer.code, 200);
    let mut pending = String::new();
    assert_eq!(answer.line(&mut pending)["result"]["created"], true);

    post(
        addr,
        "/v3/kv/put",
        json!({"key": b64("a"), "value": b64("1")}),
    );
    let event = answer.line(&mut pending);
    assert_eq!(
        event["result"]["events"][0]["kv"]["value"],
        b64("1"),
        "{event}"
    );

    chunk(&mut stream, json!({"cancel_request": {"watch_id": "0"}}));
    let canceled = answer.line(&mut pending);
    assert_eq!(canceled["result"]["canceled"], true, "{canceled}");
}
