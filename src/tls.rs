//! TLS client configs for outputs (Kafka brokers, `http_client` upstreams): rustls with
//! ring, built once per output from upstream's `tls` fields (roots from
//! `root_cas`/`root_cas_file` or the system store, optional client certificate,
//! `skip_cert_verify`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What the config asks for, with files already read.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Accept any server certificate (upstream's `skip_cert_verify`).
    pub skip_cert_verify: bool,
    /// PEM roots; empty means the system's roots.
    pub root_pems: Vec<u8>,
    /// PEM certificate chain and private key presented to the broker.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

pub fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = if s.skip_cert_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if s.root_pems.is_empty() {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system store may hold certificates webpki cannot use; skip those.
                let _ = roots.add(cert);
            }
        } else {
            for cert in CertificateDer::pem_slice_iter(&s.root_pems) {
                let cert = cert.map_err(|e| format!("tls: root_cas: {e}"))?;
                roots.add(cert).map_err(|e| format!("tls: root_cas: {e}"))?;
            }
        }
        if roots.is_empty() {
            return Err("tls: no root certificates (set root_cas or root_cas_file)".into());
        }
        builder.with_root_certificates(roots)
    };
    let config = match &s.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls: client_certs.cert: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| format!("tls: client_certs.key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls: client_certs: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// `skip_cert_verify: true`: any certificate is accepted, but handshake signatures are
/// still checked (so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_a_config_error() {
        let e = client_config(&TlsSettings {
            root_pems: b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
                .to_vec(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("root_cas"), "{e}");
        assert!(client_config(&TlsSettings {
            skip_cert_verify: true,
            ..Default::default()
        })
        .is_ok());
    }
}
