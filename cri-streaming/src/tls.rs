//! TLS for the streaming server (`enable_tls_streaming`): which key pair to
//! serve (containerd's `getStreamListenerMode`), loading it from PEM files,
//! or generating a self-signed one at start-up (containerd's `newTLSCert`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::error::{StreamingError, TlsFileKind};

/// Where the streaming server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `x509_key_pair_streaming.tls_cert_file` / `tls_key_file` (PEM).
    KeyPair {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#1, PKCS#8 or SEC1).
        key: PathBuf,
    },
    /// A self-signed certificate generated at start-up.
    SelfSigned,
}

impl TlsSource {
    /// The listener mode for the CRI keys, as containerd decides it: TLS
    /// off with files set is an error, and so is only one of the two files.
    pub fn from_config(
        enable_tls: bool,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<TlsSource>, StreamingError> {
        match (enable_tls, cert, key) {
            (false, None, None) => Ok(None),
            (false, _, _) => Err(StreamingError::TlsConfig(
                "x509_key_pair_streaming files are set but enable_tls_streaming is not",
            )),
            (true, None, None) => Ok(Some(TlsSource::SelfSigned)),
            (true, Some(cert), Some(key)) => Ok(Some(TlsSource::KeyPair {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })),
            (true, Some(_), None) => Err(StreamingError::TlsConfig(
                "x509_key_pair_streaming.tls_key_file must be set with tls_cert_file",
            )),
            (true, None, Some(_)) => Err(StreamingError::TlsConfig(
                "x509_key_pair_streaming.tls_cert_file must be set with tls_key_file",
            )),
        }
    }
}

/// A loaded server identity: the acceptor and the leaf certificate it
/// presents (so callers can trust exactly it).
#[derive(Clone)]
pub struct StreamingTls {
    /// Accepts TLS connections with the configured identity.
    pub acceptor: TlsAcceptor,
    /// The leaf certificate served.
    pub certificate: CertificateDer<'static>,
}

impl std::fmt::Debug for StreamingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingTls").finish_non_exhaustive()
    }
}

impl StreamingTls {
    /// Loads or generates the identity; `address` is the stream server
    /// address, put into a self-signed certificate's names.
    pub fn load(source: &TlsSource, address: &str) -> Result<Self, StreamingError> {
        let (chain, key) = match source {
            TlsSource::KeyPair { cert, key } => (read_chain(cert)?, read_key(key)?),
            TlsSource::SelfSigned => self_signed(address)?,
        };
        let certificate = chain
            .first()
            .cloned()
            .ok_or(StreamingError::TlsConfig("empty certificate chain"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| StreamingError::TlsKeyPair {
                files: describe(source),
                source: e,
            })?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }
}

fn describe(source: &TlsSource) -> String {
    match source {
        TlsSource::KeyPair { cert, key } => format!("{} and {}", cert.display(), key.display()),
        TlsSource::SelfSigned => "self-signed".to_owned(),
    }
}

fn read(path: &Path, kind: TlsFileKind) -> Result<Vec<u8>, StreamingError> {
    std::fs::read(path).map_err(|source| StreamingError::TlsRead {
        kind,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(
    path: &Path,
    kind: TlsFileKind,
    source: rustls::pki_types::pem::Error,
) -> StreamingError {
    StreamingError::TlsPem {
        kind,
        path: path.to_owned(),
        source,
    }
}

/// Every `CERTIFICATE` block of a PEM file, at least one.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, StreamingError> {
    let kind = TlsFileKind::Certificate;
    let pem = read(path, kind)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, kind, e))?;
    if chain.is_empty() {
        return Err(pem_error(
            path,
            kind,
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(chain)
}

/// The first private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, StreamingError> {
    let kind = TlsFileKind::Key;
    let pem = read(path, kind)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| pem_error(path, kind, e))
}

/// The host name, as containerd puts it first in the certificate.
fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}

/// A self-signed certificate for the host name, `address` and every
/// interface address (containerd's `newTLSCert`), with a fresh P-256 key.
fn self_signed(
    address: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), StreamingError> {
    let mut ips: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|addrs| {
            addrs
                .filter_map(|a| a.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|s| IpAddr::V4(s.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Ok(ip) = address.parse::<IpAddr>() {
        if !ip.is_unspecified() {
            ips.insert(0, ip);
        }
    }
    let mut seen = std::collections::HashSet::new();
    ips.retain(|ip| seen.insert(*ip));
    let host = hostname().unwrap_or_else(|| "localhost".to_owned());
    // `new` makes IP-looking names IP address SANs.
    let mut names = vec![host.clone()];
    names.extend(ips.iter().map(IpAddr::to_string));
    let mut params = rcgen::CertificateParams::new(names).map_err(StreamingError::TlsSelfSigned)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let key = rcgen::KeyPair::generate().map_err(StreamingError::TlsSelfSigned)?;
    let cert = params
        .self_signed(&key)
        .map_err(StreamingError::TlsSelfSigned)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((vec![cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn files(cert: &str, key: &str) -> (tempfile::TempDir, TlsSource) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let source = TlsSource::KeyPair {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        (dir, source)
    }

    #[test]
    fn mode_follows_containerd() {
        let (c, k) = (Path::new("/c"), Path::new("/k"));
        assert_eq!(TlsSource::from_config(false, None, None).unwrap(), None);
        assert_eq!(
            TlsSource::from_config(true, None, None).unwrap(),
            Some(TlsSource::SelfSigned)
        );
        assert_eq!(
            TlsSource::from_config(true, Some(c), Some(k)).unwrap(),
            Some(TlsSource::KeyPair {
                cert: c.into(),
                key: k.into()
            })
        );
        for (enable, cert, key) in [
            (true, Some(c), None),
            (true, None, Some(k)),
            (false, Some(c), Some(k)),
        ] {
            assert!(matches!(
                TlsSource::from_config(enable, cert, key),
                Err(StreamingError::TlsConfig(_))
            ));
        }
    }

    #[test]
    fn loads_a_key_pair_from_files() {
        let (cert, key) = pair();
        let (_dir, source) = files(&cert, &key);
        let tls = StreamingTls::load(&source, "127.0.0.1").unwrap();
        let want = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(tls.certificate, want);
    }

    #[test]
    fn self_signed_names_the_stream_address() {
        let tls = StreamingTls::load(&TlsSource::SelfSigned, "127.0.0.1").unwrap();
        // The stream address is an IP SAN (raw 4 bytes after tag 0x87 len 4).
        let der = tls.certificate.as_ref();
        assert!(der.windows(6).any(|w| w == [0x87, 4, 127, 0, 0, 1]));
        assert!(!der.is_empty());
    }

    #[test]
    fn bad_files_name_the_file() {
        let (cert, key) = pair();
        let (_d1, garbage_cert) = files("not a certificate", &key);
        let e = StreamingTls::load(&garbage_cert, "127.0.0.1").unwrap_err();
        assert!(
            matches!(&e, StreamingError::TlsPem { kind: TlsFileKind::Certificate, path, .. } if path.ends_with("cert.pem")),
            "{e:?}"
        );
        assert!(e.to_string().contains("cert.pem"), "{e}");

        let (_d2, garbage_key) = files(&cert, "-----BEGIN PRIVATE KEY-----\n");
        let e = StreamingTls::load(&garbage_key, "127.0.0.1").unwrap_err();
        assert!(
            matches!(
                &e,
                StreamingError::TlsPem {
                    kind: TlsFileKind::Key,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("key.pem"), "{e}");

        let missing = TlsSource::KeyPair {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = StreamingTls::load(&missing, "127.0.0.1").unwrap_err();
        assert!(
            matches!(
                &e,
                StreamingError::TlsRead {
                    kind: TlsFileKind::Certificate,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");

        // A key that does not match the certificate.
        let (_, other_key) = pair();
        let (_d3, mismatched) = files(&cert, &other_key);
        let e = StreamingTls::load(&mismatched, "127.0.0.1").unwrap_err();
        assert!(matches!(&e, StreamingError::TlsKeyPair { .. }), "{e:?}");
        assert!(e.to_string().contains("key.pem"), "{e}");
    }
}
