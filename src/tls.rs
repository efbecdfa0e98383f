//! TLS and mTLS for a [`TestEtcd`] (feature `tls`): the builder options, the CA and client
//! certificates a test configures its client with.

use std::sync::Arc;

use crate::error::Error;
use crate::server::{Tls, TlsError, Transport};
use crate::test_etcd::{TestEtcd, TestEtcdBuilder};

/// Which TLS a builder asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Server certificate only.
    Server,
    /// Clients must present a certificate the CA signed; its common name is the user of
    /// requests without a token (etcd's `--client-cert-auth`).
    Mutual,
}

impl From<TlsError> for Error {
    fn from(err: TlsError) -> Self {
        Error::Tls(err.to_string())
    }
}

/// The transport a builder's TLS choice needs: a fresh CA and server certificate for TLS.
pub(crate) fn transport(mode: Option<TlsMode>) -> Result<Transport, Error> {
    let tls = match mode {
        None => None,
        Some(mode) => Some(Arc::new(Tls::generate(mode == TlsMode::Mutual)?)),
    };
    Ok(Transport { tls })
}

/// A client certificate and its private key, PEM, signed by a server's CA; made by
/// [`TestEtcd::client_certificate`].
#[derive(Clone)]
pub struct ClientCertificate {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of test logs.
        f.debug_struct("ClientCertificate")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().mtls().start()?;
    /// let cert = etcd.client_certificate("alice")?;
    /// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS #8 PEM (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().mtls().start()?;
    /// let cert = etcd.client_certificate("alice")?;
    /// assert!(cert.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl TestEtcdBuilder {
    /// Serves TLS on every endpoint (`https://` URLs), with a certificate authority and a
    /// server certificate for `127.0.0.1`, `localhost` and `::1` made at start. The test trusts
    /// [`TestEtcd::ca_pem`]. A plaintext client gets a failure, never an answer; the HTTP
    /// endpoints (`/health`, `/metrics` ...) are served over TLS too.
    ///
    /// ```
    /// use etcd_client::{Certificate, Client, ConnectOptions, TlsOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Arrange: a TLS server, and a client that trusts its CA.
    /// let etcd = test_etcd::TestEtcd::builder().tls().start()?;
    /// let ca = Certificate::from_pem(etcd.ca_pem().unwrap_or_default());
    /// let options = ConnectOptions::new().with_tls(TlsOptions::new().ca_certificate(ca));
    /// let mut client = Client::connect(etcd.endpoints(), Some(options)).await?;
    ///
    /// // Act
    /// client.put("k", "v", None).await?;
    ///
    /// // Assert
    /// assert!(etcd.endpoint().starts_with("https://127.0.0.1:"));
    /// assert_eq!(etcd.get("k").as_deref(), Some("v"));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self) -> Self {
        self.tls = Some(TlsMode::Server);
        self
    }

    /// Serves mutual TLS, as etcd with `--client-cert-auth`: like [`tls`](Self::tls), and
    /// every client must present a certificate signed by the server's CA (made with
    /// [`TestEtcd::client_certificate`]). While auth is enabled, a request without a token is
    /// made as the user named by the certificate's common name.
    ///
    /// ```
    /// use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Arrange: auth on, alice may write under app/; her certificate, no password.
    /// let etcd = test_etcd::TestEtcd::builder()
    ///     .mtls()
    ///     .fixture_str(r#"{"auth": {"enabled": true,
    ///         "users": [{"name": "root", "password": "pw", "roles": ["root"]},
    ///                   {"name": "alice", "no_password": true, "roles": ["app"]}],
    ///         "roles": [{"name": "app", "permissions": [{"prefix": "app/", "type": "READWRITE"}]}]}}"#)
    ///     .start()?;
    /// let cert = etcd.client_certificate("alice")?;
    /// let tls = TlsOptions::new()
    ///     .ca_certificate(Certificate::from_pem(etcd.ca_pem().unwrap_or_default()))
    ///     .identity(Identity::from_pem(cert.cert_pem(), cert.key_pem()));
    /// let options = ConnectOptions::new().with_tls(tls);
    /// let mut client = Client::connect(etcd.endpoints(), Some(options)).await?;
    ///
    /// // Act: requests without a token run as the certificate's common name.
    /// client.put("app/config", "on", None).await?;
    /// let denied = client.put("other", "x", None).await.unwrap_err();
    ///
    /// // Assert
    /// assert_eq!(etcd.get("app/config").as_deref(), Some("on"));
    /// assert!(denied.to_string().contains("etcdserver: permission denied"));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn mtls(mut self) -> Self {
        self.tls = Some(TlsMode::Mutual);
        self
    }
}

impl TestEtcd {
    /// The PEM of the certificate authority that signed the server's certificate, for the
    /// client to trust; `None` unless the server was built with
    /// [`tls`](TestEtcdBuilder::tls) or [`mtls`](TestEtcdBuilder::mtls). A fork shares it.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().tls().start()?;
    /// assert!(etcd.ca_pem().is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")));
    /// assert!(test_etcd::TestEtcd::start().ca_pem().is_none());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_pem(&self) -> Option<&str> {
        self.transport()?.tls.as_deref().map(Tls::ca_pem)
    }

    /// A new client certificate and key with `common_name` as its subject's common name,
    /// signed by the server's CA: an mTLS server accepts it, and takes the common name as the
    /// user of requests that carry no token. Fails with [`Error::Tls`] on a server without
    /// TLS.
    ///
    /// ```
    /// let etcd = test_etcd::TestEtcd::builder().mtls().start()?;
    /// let alice = etcd.client_certificate("alice")?;
    /// assert!(alice.cert_pem().contains("CERTIFICATE"));
    /// assert!(test_etcd::TestEtcd::start().client_certificate("alice").is_err());
    /// # Ok::<(), test_etcd::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn client_certificate(&self, common_name: &str) -> Result<ClientCertificate, Error> {
        let transport = self.transport().ok_or(Error::NeedsEmbedded {
            option: "client_certificate",
        })?;
        let Some(tls) = &transport.tls else {
            return Err(Error::Tls(
                "the server does not serve TLS: build it with .tls() or .mtls()".to_owned(),
            ));
        };
        let pem = tls.issue_client(common_name)?;
        Ok(ClientCertificate {
            cert_pem: pem.cert,
            key_pem: pem.key,
        })
    }
}
