//! TLS and mTLS with the certificates the server makes: real handshakes through etcd-client,
//! plain clients refused, client certificates as users, HTTP endpoints over TLS.

use std::sync::Arc;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, Permission, TlsOptions};
use test_etcd::TestEtcd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tonic::Code;

use crate::status;

fn trusting(etcd: &TestEtcd) -> TlsOptions {
    TlsOptions::new().ca_certificate(Certificate::from_pem(etcd.ca_pem().expect("a TLS server")))
}

async fn tls_client(etcd: &TestEtcd, tls: TlsOptions) -> Client {
    let options = ConnectOptions::new().with_tls(tls);
    Client::connect(etcd.endpoints(), Some(options))
        .await
        .expect("connect")
}

/// A client presenting a certificate with common name `cn`.
async fn as_certificate(etcd: &TestEtcd, cn: &str) -> Client {
    let cert = etcd.client_certificate(cn).expect("a client certificate");
    let tls = trusting(etcd).identity(Identity::from_pem(cert.cert_pem(), cert.key_pem()));
    tls_client(etcd, tls).await
}

/// An mTLS server with auth on: root, and alice (no password) who may read and write `app/`.
fn mtls_with_auth() -> TestEtcd {
    TestEtcd::builder()
        .mtls()
        .fixture_str(
            r#"{"auth": {"enabled": true,
                "users": [{"name": "root", "password": "rootpw", "roles": ["root"]},
                          {"name": "alice", "no_password": true, "roles": ["app"]}],
                "roles": [{"name": "app", "permissions": [{"prefix": "app/", "type": "READWRITE"}]}]}}"#,
        )
        .start()
        .expect("start")
}

#[tokio::test]
async fn a_client_trusting_the_ca_talks_tls_to_every_member() {
    // Arrange
    let etcd = TestEtcd::builder().tls().members(2).start().unwrap();
    let mut client = tls_client(&etcd, trusting(&etcd)).await;

    // Act
    client.put("k", "v", None).await.unwrap();
    let members = client.member_list().await.unwrap();

    // Assert: https everywhere, MemberList included.
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
    assert!(etcd
        .endpoints()
        .iter()
        .all(|e| e.starts_with("https://127.0.0.1:")));
    for member in members.members() {
        assert!(
            member.client_urls()[0].starts_with("https://"),
            "{member:?}"
        );
    }
}

#[tokio::test]
async fn the_server_certificate_names_localhost_too() {
    let etcd = TestEtcd::builder().tls().start().unwrap();
    let url = format!("https://localhost:{}", etcd.addr().port());
    let options = ConnectOptions::new().with_tls(trusting(&etcd));
    let mut client = Client::connect([url], Some(options)).await.unwrap();
    client.put("k", "v", None).await.unwrap();
}

#[tokio::test]
async fn a_plaintext_client_fails_against_a_tls_server() {
    // Arrange
    let etcd = TestEtcd::builder().tls().start().unwrap();
    let plain_url = format!("http://{}", etcd.addr());
    let mut client = Client::connect([plain_url], None).await.unwrap();

    // Act
    let err = client.put("k", "v", None).await.unwrap_err();

    // Assert: a refusal that says what to do, at once; nothing was written.
    assert_eq!(
        status(err),
        (
            Code::FailedPrecondition,
            "test-etcd: this endpoint serves TLS: connect with an https:// URL and trust \
             the CA of TestEtcd::ca_pem()"
                .into()
        )
    );
    assert_eq!(etcd.get("k"), None);
}

#[tokio::test]
async fn plain_http_on_a_tls_port_is_told_to_use_https() {
    let etcd = TestEtcd::builder().tls().start().unwrap();
    let mut stream = tokio::net::TcpStream::connect(etcd.addr()).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_tls_client_fails_against_a_plain_server() {
    let etcd = TestEtcd::start();
    let ca_of_another = TestEtcd::builder().tls().start().unwrap();
    let url = format!("https://{}", etcd.addr());
    let options = ConnectOptions::new().with_tls(trusting(&ca_of_another));
    let mut client = Client::connect([url], Some(options)).await.unwrap();
    assert!(client.put("k", "v", None).await.is_err());
    assert_eq!(etcd.get("k"), None);
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let etcd = TestEtcd::builder().tls().start().unwrap();
    let other = TestEtcd::builder().tls().start().unwrap();
    let mut client = tls_client(&etcd, trusting(&other)).await;
    assert!(client.put("k", "v", None).await.is_err());
    assert_eq!(etcd.get("k"), None);
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let etcd = TestEtcd::builder().mtls().start().unwrap();
    let mut client = tls_client(&etcd, trusting(&etcd)).await;
    assert!(client.put("k", "v", None).await.is_err());
    assert_eq!(etcd.get("k"), None);

    let mut with_cert = as_certificate(&etcd, "anyone").await;
    with_cert.put("k", "v", None).await.unwrap();
    assert_eq!(etcd.get("k").as_deref(), Some("v"));
}

#[tokio::test]
async fn with_client_cert_auth_the_common_name_is_the_user() {
    // Arrange
    let etcd = mtls_with_auth();
    let mut alice = as_certificate(&etcd, "alice").await;
    let mut root = as_certificate(&etcd, "root").await;

    // Act and assert: alice's permissions, alice's refusals.
    alice.put("app/x", "1", None).await.unwrap();
    let err = alice.put("other", "1", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::PermissionDenied,
            "etcdserver: permission denied".into()
        )
    );
    let err = alice.user_list().await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::PermissionDenied,
            "etcdserver: permission denied".into()
        )
    );
    // root's certificate is root.
    root.put("other", "1", None).await.unwrap();
    root.role_add("extra").await.unwrap();
    // A watch is checked as the certificate's user too.
    let mut stream = alice.watch("secret", None).await.unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.canceled());
    assert_eq!(
        created.cancel_reason(),
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
}

#[tokio::test]
async fn a_token_wins_over_the_certificate() {
    let etcd = mtls_with_auth();
    let cert = etcd.client_certificate("alice").unwrap();
    let tls = trusting(&etcd).identity(Identity::from_pem(cert.cert_pem(), cert.key_pem()));
    let options = ConnectOptions::new()
        .with_tls(tls)
        .with_user("root", "rootpw");
    let mut client = Client::connect(etcd.endpoints(), Some(options))
        .await
        .unwrap();
    client.put("other", "as root", None).await.unwrap();
    assert_eq!(etcd.get("other").as_deref(), Some("as root"));
}

#[tokio::test]
async fn a_certificate_naming_no_user_is_refused_as_etcd_refuses_an_unknown_user() {
    let etcd = mtls_with_auth();
    let mut ghost = as_certificate(&etcd, "ghost").await;
    let err = ghost.put("app/x", "1", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::PermissionDenied,
            "etcdserver: permission denied".into()
        )
    );
    let err = ghost.user_list().await.unwrap_err();
    assert_eq!(
        status(err),
        (
            Code::FailedPrecondition,
            "etcdserver: user name not found".into()
        )
    );
}

#[tokio::test]
async fn the_certificate_is_ignored_while_auth_is_disabled() {
    let etcd = TestEtcd::builder().mtls().start().unwrap();
    let mut nobody = as_certificate(&etcd, "nobody").await;
    nobody.user_add("root", "pw", None).await.unwrap();
    nobody.user_grant_role("root", "root").await.unwrap();
    nobody
        .role_grant_permission("r", Permission::read("k"))
        .await
        .unwrap_err();
    nobody.put("k", "v", None).await.unwrap();
}

#[tokio::test]
async fn forks_share_the_ca() {
    let etcd = TestEtcd::builder().tls().start().unwrap();
    let fork = etcd.fork().unwrap();
    assert_eq!(fork.ca_pem(), etcd.ca_pem());
    let mut client = tls_client(&fork, trusting(&etcd)).await;
    client.put("k", "v", None).await.unwrap();
    assert!(fork.endpoint().starts_with("https://"));
}

/// One HTTP/1.1 GET over TLS, returning the whole answer.
async fn https_get(etcd: &TestEtcd, path: &str) -> String {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(etcd.ca_pem().unwrap().as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(etcd.addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A peer closing without close_notify is an error to rustls; the answer is complete anyway.
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn http_endpoints_are_served_over_tls() {
    let etcd = TestEtcd::builder().tls().start().unwrap();
    let health = https_get(&etcd, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(
        health.ends_with(r#"{"health":"true","reason":""}"#),
        "{health}"
    );
    let version = https_get(&etcd, "/version").await;
    assert!(version.contains(r#""etcdserver":"3.7.2""#), "{version}");
}
