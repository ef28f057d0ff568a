//! Any bytes as a PKCS#8 private key, and as an OpenSSL-style subject string.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kalit_core::keys::PrivateKey::from_pkcs8(&kalit_core::SecretBytes::from_slice(data));
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = kalit_core::csr::parse_subject(s);
    }
});
