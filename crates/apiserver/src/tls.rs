//! HTTPS serving: rustls with the cluster's serving certificate, HTTP/1.1 and HTTP/2 by
//! ALPN (kubectl and client-go use h2), and client certificates *requested* but not
//! required at the TLS layer. As kube-apiserver does, a certificate that fails to verify
//! does not break the handshake: the connection is marked and its requests get 401 from
//! the authenticator, so clients see a Status instead of a TLS alert.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::PeerCertificate;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of the server: its configuration and the CA that client certificates
/// must chain to.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<ServerConfig>,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsServer {
    /// From PEM: the CA that signs client certificates, the serving chain and its key.
    pub fn new(client_ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("client CA: {e}"))?;
            roots.add(cert).map_err(|e| format!("client CA: {e}"))?;
        }
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("client certificate verifier: {e}"))?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("serving certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("serving key: {e}"))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_client_cert_verifier(Arc::new(RequestClientCertificate {
                inner: client_verifier.clone(),
            }))
            .with_single_cert(chain, key)
            .map_err(|e| format!("serving certificate: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsServer {
            config: Arc::new(config),
            client_verifier,
        })
    }

    /// Verify a connection's client certificate chain against the CA.
    fn peer_of(&self, chain: Option<&[CertificateDer<'static>]>) -> PeerCertificate {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return PeerCertificate::None;
        };
        if let Err(e) =
            self.client_verifier
                .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            return PeerCertificate::Rejected(e.to_string());
        }
        match podium_pki::subject_of(leaf) {
            Ok(subject) => PeerCertificate::Verified(subject),
            Err(e) => PeerCertificate::Rejected(e.to_string()),
        }
    }

    /// Accept connections on `listener` for ever, serving `router` on each.
    pub async fn serve(self, listener: TcpListener, router: Router) -> std::io::Result<()> {
        let acceptor = TlsAcceptor::from(self.config.clone());
        loop {
            let (tcp, peer_addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let router = router.clone();
            let tls = self.clone();
            tokio::spawn(async move {
                // Plain HTTP on the HTTPS port gets Go's answer, not a TLS alert a person
                // cannot read. A TLS connection starts with a handshake record (0x16).
                let mut first = [0u8; 1];
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
                    Ok(Ok(1)) if first[0] != 0x16 => {
                        use tokio::io::AsyncWriteExt;
                        let mut tcp = tcp;
                        let _ = tcp
                            .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                            .await;
                        let _ = tcp.shutdown().await;
                        return;
                    }
                    Ok(Ok(1)) => {}
                    _ => return,
                }
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer_addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let peer = tls.peer_of(stream.get_ref().1.peer_certificates());
                let service = hyper::service::service_fn(
                    move |mut request: http::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(peer.clone());
                        router.clone().oneshot(request)
                    },
                );
                let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(peer = %peer_addr, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

/// Asks for a client certificate and checks the handshake signature (proof that the
/// client holds the key) but leaves the chain to [`TlsServer::peer_of`].
#[derive(Debug)]
struct RequestClientCertificate {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
