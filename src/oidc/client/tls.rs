//! TLS for the calls to the OP: a rustls configuration (aws-lc-rs provider) from the realm's
//! `ssl.*` settings, and the chain-only verifier of `ssl.verification_mode: certificate`.

use crate::config::{RealmSslSettings, VerificationMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

pub(super) fn tls_config(
    ssl: &RealmSslSettings,
    prefix: &str,
) -> Result<rustls::ClientConfig, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !ssl.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|s| {
            let name = iana_suite_name(s.suite());
            ssl.cipher_suites.iter().any(|c| c == &name)
        });
        if provider.cipher_suites.is_empty() {
            return Err(format!(
                "[{prefix}ssl.cipher_suites] leaves no cipher suite this build supports"
            ));
        }
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if ssl.supported_protocols.is_empty() {
        versions.extend_from_slice(rustls::DEFAULT_VERSIONS);
    } else {
        for p in &ssl.supported_protocols {
            match p.as_str() {
                "TLSv1.3" => versions.push(&rustls::version::TLS13),
                "TLSv1.2" => versions.push(&rustls::version::TLS12),
                other => {
                    return Err(format!(
                        "[{prefix}ssl.supported_protocols]: unsupported protocol [{other}]"
                    ))
                }
            }
        }
    }
    let provider = Arc::new(provider);

    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(
            errors = native.errors.len(),
            "some system CA certificates could not be loaded"
        );
    }
    roots.add_parsable_certificates(native.certs);
    for path in &ssl.certificate_authorities {
        let shown = path.display();
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
            format!("[{prefix}ssl.certificate_authorities]: cannot read [{shown}]: {e}")
        })?;
        let mut n = 0;
        for cert in iter {
            let cert = cert.map_err(|e| {
                format!("[{prefix}ssl.certificate_authorities]: bad PEM in [{shown}]: {e}")
            })?;
            roots.add(cert).map_err(|e| {
                format!("[{prefix}ssl.certificate_authorities]: unusable CA in [{shown}]: {e}")
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(format!(
                "[{prefix}ssl.certificate_authorities]: no certificate in [{shown}]"
            ));
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "no trusted CA: the system has none and [{prefix}ssl.certificate_authorities] is not set"
        ));
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the TLS verifier: {e}"))?;

    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            format!("[{prefix}ssl.supported_protocols] / [{prefix}ssl.cipher_suites]: {e}")
        })?;
    let builder = match ssl.verification_mode {
        VerificationMode::Full => builder.with_webpki_verifier(webpki),
        VerificationMode::Certificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner: webpki })),
        VerificationMode::None => {
            return Err(format!(
                "[{prefix}ssl.verification_mode] none is not supported"
            ))
        }
    };
    let mut config = match &ssl.client_certificate {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let certs = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| {
                    format!(
                        "[{prefix}ssl.certificate]: cannot read [{}]: {e}",
                        cert_path.display()
                    )
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    format!(
                        "[{prefix}ssl.certificate]: bad PEM in [{}]: {e}",
                        cert_path.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "[{prefix}ssl.certificate]: no certificate in [{}]",
                    cert_path.display()
                ));
            }
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                format!(
                    "[{prefix}ssl.key]: cannot read a private key from [{}]: {e}",
                    key_path.display()
                )
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("[{prefix}ssl.certificate] / [{prefix}ssl.key]: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// IANA name of a suite (`TLS_AES_128_GCM_SHA256`; rustls spells TLS 1.3 ones `TLS13_...`).
pub(super) fn iana_suite_name(suite: rustls::CipherSuite) -> String {
    let name = suite
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{suite:?}"));
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// `ssl.verification_mode: certificate`: the chain (and everything else webpki checks) is
/// verified; only a host-name mismatch is ignored.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the chain before the name: this error means the chain was good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
