//! TLS on every endpoint (feature `tls`): a certificate authority made at start, a server
//! certificate it signs for the loopback names, client certificates on demand, and the
//! handshake in the accept loop.
//!
//! Everything runs on ring, the provider tonic's `tls-ring` feature (and so etcd-client's `tls`)
//! uses, so a test build compiles one crypto stack.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::service_fn;

/// The names the server certificate is valid for: every name a test reaches a loopback
/// endpoint by.
const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// What Go's HTTP server answers to plain HTTP/1 on a TLS port.
const PLAINTEXT_REFUSAL: &str = "Client sent an HTTP request to an HTTPS server.\n";

/// What a plaintext gRPC client is told: a status, so that it fails at once with a reason
/// instead of an HTTP/2 framing error. Not `Unavailable`, which clients retry.
const PLAINTEXT_GRPC_REFUSAL: &str = "test-etcd: this endpoint serves TLS: connect with an \
https:// URL and trust the CA of TestEtcd::ca_pem()";

/// The first byte of a TLS record carrying a handshake (a ClientHello, when a client starts).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why TLS could not be set up or a certificate issued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot make a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
    #[error("cannot configure client certificate verification: {0}")]
    Verifier(#[from] tokio_rustls::rustls::server::VerifierBuilderError),
}

/// A server's TLS: its CA (kept to issue client certificates) and the acceptor every endpoint
/// uses. Forks share it, so one client configuration reaches both.
pub(crate) struct Tls {
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
    acceptor: TlsAcceptor,
    client_cert_auth: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("client_cert_auth", &self.client_cert_auth)
            .finish_non_exhaustive()
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub(crate) struct Pem {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Tls {
    /// Makes a CA and a server certificate. With `client_cert_auth`, clients must present a
    /// certificate the CA signed, and its common name is the user of requests without a token.
    pub(crate) fn generate(client_cert_auth: bool) -> Result<Tls, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("test-etcd CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_der = ca_cert.der().clone();
        let ca = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?;
        server_params.distinguished_name = name("test-etcd");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &ca)?;

        let provider = Arc::new(ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = if client_cert_auth {
            let mut roots = RootCertStore::empty();
            roots.add(ca_der)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = builder.with_single_cert(vec![server_cert.der().clone()], key)?;
        // gRPC clients insist on h2 being negotiated; curl and browsers may ask for HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            ca,
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_cert_auth,
        })
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client certificate with `common_name`, signed by the CA.
    pub(crate) fn issue_client(&self, common_name: &str) -> Result<Pem, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Runs the handshake on a new connection. Returns the TLS stream and, with client
    /// certificate auth, the common name of the verified client certificate; `None` if the
    /// connection is not TLS (it got a plaintext refusal) or the handshake failed.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> Option<(TlsStream<TcpStream>, Option<Arc<str>>)> {
        let mut first = [0u8; 1];
        // A plaintext client speaks first too: tell it what went wrong instead of a reset.
        if matches!(stream.peek(&mut first).await, Ok(1) if first[0] != TLS_HANDSHAKE_RECORD) {
            refuse_plaintext(stream).await;
            return None;
        }
        let stream = self.acceptor.accept(stream).await.ok()?;
        let common_name = if self.client_cert_auth {
            let (_, connection) = stream.get_ref();
            connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| common_name(cert))
                .map(Arc::from)
        } else {
            None
        };
        Some((stream, common_name))
    }
}

/// Answers every request of a plaintext connection with a refusal: Go's 400 for HTTP/1, a gRPC
/// status for HTTP/2 (h2c).
async fn refuse_plaintext(stream: TcpStream) {
    let service = service_fn(|request: http::Request<Incoming>| async move {
        let response = if request.version() < http::Version::HTTP_2 {
            let mut response =
                http::Response::new(tonic::body::Body::new(PLAINTEXT_REFUSAL.to_owned()));
            *response.status_mut() = http::StatusCode::BAD_REQUEST;
            response
        } else {
            tonic::Status::failed_precondition(PLAINTEXT_GRPC_REFUSAL).into_http()
        };
        Ok::<_, std::convert::Infallible>(response)
    });
    let builder = super::connection_builder();
    let _ = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .await;
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// The subject common name of a DER certificate (the last one, as Go reads it), or `None` if
/// it has none or is not a certificate. The certificate was verified already; this only reads
/// the few fields before the subject, so no X.509 parser is needed.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const VERSION: u8 = 0xa0;
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
    let (SEQUENCE, certificate, _) = tlv(cert.as_ref())? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = tlv(certificate)? else {
        return None;
    };
    if tbs.first() == Some(&VERSION) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity: skipped.
    for _ in 0..4 {
        tbs = tlv(tbs)?.2;
    }
    let (SEQUENCE, mut subject, _) = tlv(tbs)? else {
        return None;
    };
    let mut found = None;
    while !subject.is_empty() {
        let (tag, mut set, rest) = tlv(subject)?;
        subject = rest;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (_, attribute, rest) = tlv(set)?;
            set = rest;
            let (OID, oid, value) = tlv(attribute)? else {
                return None;
            };
            if oid == COMMON_NAME {
                let (_, text, _) = tlv(value)?;
                found = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    found
}

/// One DER element: its tag, its contents and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = input.get(2..2 + n)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    #[test]
    fn reads_the_common_name_of_an_issued_client_certificate() {
        let tls = Tls::generate(true).unwrap();
        let issued = tls.issue_client("alice").unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert.as_bytes()).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("alice"));
    }

    #[test]
    fn garbage_has_no_common_name() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01\x00",
        ] {
            assert_eq!(common_name(&CertificateDer::from(bytes.to_vec())), None);
        }
    }
}
