//! Any text as the CSR of an issuance request: the RA's checks (PEM, PKCS#10, proof of possession, key
//! policy) must answer with an error or a public key, never panic.
#![allow(dead_code)]
/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // The RA bounds a CSR to 16 KiB (kalit_ra::issue::MAX_CSR_LEN) before this check; the fuzz target
    // links kalit-core alone, not the RA's server.
    let _ = kalit_core::csr::check_request(&text);
    // Also as the DER body of a PEM block, so the fuzzer reaches the PKCS#10 parser quickly.
    let pem =
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n", base64_encode(data));
    let _ = kalit_core::csr::check_request(&pem);
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
