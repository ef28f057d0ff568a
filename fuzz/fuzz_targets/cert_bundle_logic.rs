//! Any bytes as a PEM/DER certificate bundle; what parses is summarised and chain-checked against itself.
#![allow(dead_code)]
/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    if let Ok(certs) = kalit_core::x509::parse_cert_bundle(data) {
        for c in &certs {
            let _ = kalit_core::x509::cert_info(c);
            let _ = kalit_core::x509::cert_spki(c);
        }
        let _ = kalit_core::x509::check_chain(
            &certs[0],
            &certs,
            &certs[certs.len() - 1..],
            time::OffsetDateTime::UNIX_EPOCH,
        );
    }
}
