//! The server's TLS material: on first start a local CA and a certificate for `127.0.0.1`, `::1`
//! and `localhost` signed by it are written to `<data-dir>/tls/`; later starts reuse them. Users
//! trust `ca.pem` (e.g. with `REQUESTS_CA_BUNDLE` for the az CLI).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The PEM files the server uses.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA users trust.
    pub ca_cert: PathBuf,
    /// The server's certificate chain (leaf, then CA).
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// Loads the TLS files in `data_dir/tls`, creating them if missing.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<TlsFiles> {
    let dir = data_dir.join("tls");
    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        chain: dir.join("server-chain.pem"),
        key: dir.join("server-key.pem"),
    };
    if files.ca_cert.exists() && files.chain.exists() && files.key.exists() {
        return Ok(files);
    }
    crate::files::create_private_dir(&dir)?;
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params.distinguished_name.push(DnType::CommonName, "crosspool local CA");
    ca_params.distinguished_name.push(DnType::OrganizationName, "crosspool");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).context("signing the CA certificate")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().context("generating the server key")?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned()]).context("server parameters")?;
    server_params.distinguished_name.push(DnType::CommonName, "crosspool");
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("a valid address")));
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse().expect("a valid address")));
    server_params.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert =
        server_params.signed_by(&server_key, &issuer).context("signing the server certificate")?;

    crate::files::write_public(&files.ca_cert, ca_cert.pem().as_bytes())?;
    crate::files::write_public(
        &files.chain,
        format!("{}{}", server_cert.pem(), ca_cert.pem()).as_bytes(),
    )?;
    crate::files::write_secret(&files.key, server_key.serialize_pem().as_bytes())?;
    Ok(files)
}
