//! Any bytes as a CMS SignedData: an error or a verdict, never a panic or a hang.
#![allow(dead_code)]
/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    let _ = kalit_core::cms::verify_detached(data, &mut |h| Ok(h.digest(b"document")), &[]);
}
