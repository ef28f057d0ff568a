//! Any bytes as a CMS SignedData: an error or a verdict, never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kalit_core::cms::verify_detached(data, &mut |h| Ok(h.digest(b"document")), &[]);
});
