//! The test client's transport (feature `test-client`): a plain TCP
//! connection for `http://` URLs, TLS for `https://` ones, trusting either
//! any certificate (the self-signed one containerd generates) or given roots.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A byte stream to the streaming server, TLS or not.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

/// A connection to the streaming server.
pub type ClientStream = Box<dyn ClientIo>;

/// Which server certificates an `https://` connection accepts.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// Any certificate (handshake signatures are still checked), as for
    /// the self-signed certificate the server generates.
    #[default]
    AnyCertificate,
    /// Certificates that chain to these roots and name the host.
    Roots(Vec<CertificateDer<'static>>),
}

/// A parsed streaming URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://`.
    pub tls: bool,
    /// `host:port`.
    pub host: String,
    /// `/kind/token`.
    pub path: String,
}

/// Splits an `http://` or `https://` URL.
pub fn parse_url(url: &str) -> io::Result<Target> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(io::Error::other(format!("not an http(s) url: {url}")));
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok(Target {
        tls,
        host: host.to_owned(),
        path: format!("/{path}"),
    })
}

/// Connects to the URL's host, with TLS for `https://`.
pub async fn dial(target: &Target, trust: &Trust) -> io::Result<ClientStream> {
    let tcp = TcpStream::connect(&target.host).await?;
    if !target.tls {
        return Ok(Box::new(tcp));
    }
    let name = target
        .host
        .rsplit_once(':')
        .map_or(target.host.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(name.to_owned()).map_err(io::Error::other)?;
    let connector = TlsConnector::from(Arc::new(client_config(trust)?));
    Ok(Box::new(connector.connect(name, tcp).await?))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(trust: &Trust) -> io::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let config = match trust {
        Trust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
        Trust::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root.clone()).map_err(io::Error::other)?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    Ok(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
