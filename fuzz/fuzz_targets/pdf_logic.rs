//! Any bytes as a PDF: reading its signatures, the signer's inspection of a prepared PDF, verification
//! and preparation give an error or a verdict, never a panic or a hang; and a PDF that `prepare`
//! accepts is one whose prepared form a signer's inspection reads with the same digest.
#![allow(dead_code)]
use kalit_core::digest::HashAlg;
use kalit_core::pdf;

/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    let _ = pdf::signatures(data);
    let _ = pdf::inspect_prepared(data);
    let now = time::OffsetDateTime::from_unix_timestamp(1_796_126_400).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = kalit_core::verify::verify_pdf(data, &[], &[], now);
    let spec = pdf::Spec {
        field: None,
        reason: Some("fuzz"),
        name: None,
        time: now,
        reserve: 64,
        kind: pdf::Kind::Signature,
        visible: None,
        lang: Default::default(),
    };
    // Invisible; a visible box (the page's boxes and turn read from the input); a form field filled.
    let boxed = pdf::Spec { visible: pdf::Visible::parse("1,10,10,100,40").ok(), ..spec.clone() };
    let filled = pdf::Spec { field: Some("Imzo"), ..spec.clone() };
    for spec in [spec, boxed, filled] {
        if let Ok(prepared) = pdf::prepare(data, &spec)
            && let Ok(seen) = pdf::inspect_prepared(&prepared.pdf)
        {
            assert_eq!(
                seen.sha256,
                prepared.digest(HashAlg::Sha256),
                "the signer's digest differs from the preparer's"
            );
            assert_eq!(seen.byte_range, prepared.byte_range);
        }
    }
}
