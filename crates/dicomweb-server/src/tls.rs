//! HTTPS: the rustls server configuration from PEM files.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Reads the certificate chain and key; the errors name the file and what is wrong with it.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read the TLS certificate chain {cert_path}: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("{cert_path} holds no PEM certificate");
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS private key {key_path}: {e}"))?;
    // The provider is named rather than taken from the process default, which is ambiguous whenever another
    // dependency enables a second rustls provider.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow::anyhow!("the key {key_path} does not fit the certificate {cert_path}: {e}")
        })
}
