//! Any bytes as a PKCS#8 private key, and as an OpenSSL-style subject string.
#![allow(dead_code)]
/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    let _ = kalit_core::keys::PrivateKey::from_pkcs8(&kalit_core::SecretBytes::from_slice(data));
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = kalit_core::csr::parse_subject(s);
    }
}
