//! One key, many purposes: what a document may never be.
//!
//! A person's certificate key signs documents, CSRs (PKCS#10 proof of possession) and Kalit statements.
//! A signature made for one purpose must never count for another. Statements are safe by construction
//! (they are signed under a scheme no document signature can match: `keys::PrivateKey::sign_statement`),
//! and this module is the second, independent barrier that the vault applies to every document, in every
//! front end:
//!
//! - bytes that begin with a Kalit namespace (`kalit/`) are never signed as a document, in any format;
//! - a **raw** signature is never made over bytes that are one complete ASN.1 DER structure (a SEQUENCE
//!   or SET spanning the whole input). That is the whole kind of the structures whose signatures mean
//!   something elsewhere: CertificationRequestInfo (a CSR), TBSCertificate, TBSCertList (a CRL), CMS
//!   signed attributes, OCSP and timestamp requests and responses, attribute certificates. People's
//!   documents are not bare DER; a portal that needs one of these structures signed must ask for it as
//!   what it is, not as a document.
//! - a raw signature over bytes the phone cannot show as text needs a separate confirmation that says so
//!   ([`needs_blind_confirmation`]).

use crate::CoreError;

/// Why a document is refused, if it is.
pub fn check_document(data: &[u8], raw: bool) -> Result<(), CoreError> {
    if kalit_proto::namespace::is_kalit_statement(data) {
        return Err(CoreError::Refused(
            "this document begins with \"kalit/\", the prefix of Kalit's own protocol statements: a phone never signs such bytes as a document"
                .into(),
        ));
    }
    if raw && let Some(what) = der_structure(data) {
        return Err(CoreError::Refused(format!(
            "this document is {what}, an ASN.1 structure whose signature means something other than \"I sign this document\"; Kalit never makes a raw signature over such bytes (ask for a CMS signature of the file instead)"
        )));
    }
    Ok(())
}

/// True when a raw signature over `data` needs the person's separate confirmation that they sign bytes
/// the phone cannot show them: anything but printable UTF-8 text.
pub fn needs_blind_confirmation(data: &[u8]) -> bool {
    !is_displayable_text(data)
}

/// Printable UTF-8: no NUL or other control characters except tab, line feed, carriage return and form
/// feed.
pub fn is_displayable_text(data: &[u8]) -> bool {
    match std::str::from_utf8(data) {
        Ok(s) => s.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}')),
        Err(_) => false,
    }
}

/// Reads a BER/DER length at the start of `input`: `(length or None for indefinite, rest)`.
fn read_len(input: &[u8]) -> Option<(Option<usize>, &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first < 0x80 {
        return Some((Some(first as usize), rest));
    }
    if first == 0x80 {
        return Some((None, rest));
    }
    let n = (first & 0x7f) as usize;
    if n > 8 || rest.len() < n {
        return None;
    }
    let len = rest[..n].iter().try_fold(0usize, |acc, b| acc.checked_mul(256).map(|a| a + *b as usize))?;
    Some((Some(len), &rest[n..]))
}

/// The children of a constructed TLV's content, when they parse as definite-length TLVs (tag, content).
fn children(mut content: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = vec![];
    while !content.is_empty() {
        let (&tag, rest) = content.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (len, rest) = read_len(rest)?;
        let len = len?;
        if rest.len() < len {
            return None;
        }
        out.push((tag, &rest[..len]));
        content = &rest[len..];
        if out.len() > 64 {
            break;
        }
    }
    Some(out)
}

/// When `data` is one complete constructed ASN.1 SEQUENCE or SET (definite length covering the input
/// exactly, or an indefinite-length BER one), names what it most likely is.
fn der_structure(data: &[u8]) -> Option<&'static str> {
    let (&tag, rest) = data.split_first()?;
    if tag != 0x30 && tag != 0x31 {
        return None;
    }
    let (len, rest) = read_len(rest)?;
    let content = match len {
        Some(l) if l == rest.len() => rest,
        Some(_) => return None,
        // Indefinite length: structured BER, refused as the same kind.
        None => return Some("an ASN.1 BER structure"),
    };
    let kids = children(content).unwrap_or_default();
    let tags: Vec<u8> = kids.iter().map(|k| k.0).collect();
    let what = if tag == 0x31 {
        if tags.iter().all(|t| *t == 0x30) { "a set of CMS signed attributes" } else { "an ASN.1 SET" }
    } else if tags.starts_with(&[0x02, 0x30, 0x30, 0xa0]) || tags == [0x02, 0x30, 0x30] {
        "a certificate request body (CertificationRequestInfo)"
    } else if tags.starts_with(&[0xa0, 0x02, 0x30, 0x30, 0x30, 0x30, 0x30])
        || tags.starts_with(&[0x02, 0x30, 0x30, 0x30, 0x30, 0x30])
    {
        "a certificate body (TBSCertificate)"
    } else if tags.starts_with(&[0x02, 0x30, 0x30, 0x17])
        || tags.starts_with(&[0x02, 0x30, 0x30, 0x18])
        || tags.starts_with(&[0x30, 0x30, 0x17])
    {
        "a certificate revocation list body (TBSCertList)"
    } else if tags.first() == Some(&0x30)
        && tags.len() <= 2
        && kids.first().is_some_and(|k| children(k.1).is_some_and(|c| c.iter().any(|x| x.0 == 0x30)))
    {
        "an OCSP request, a timestamp request or a similar signed structure"
    } else {
        "an ASN.1 DER structure"
    };
    Some(what)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::statement::Statement;

    #[test]
    fn statements_are_refused_in_every_format() {
        let st = Statement::register("relay", &[1; 32], "alice", &[2; 32], "fp");
        for raw in [true, false] {
            let e = check_document(st.as_bytes(), raw).unwrap_err();
            assert_eq!(e.code(), kalit_proto::ErrorCode::RefusedByPolicy);
        }
        assert!(check_document(b"kalit/anything", false).is_err());
        assert!(check_document(b"Kalit is a word", true).is_ok());
    }

    #[test]
    fn der_structures_are_refused_raw_only() {
        // A minimal SEQUENCE { INTEGER 0, SEQUENCE {}, SEQUENCE {} } shaped like a CertificationRequestInfo.
        let cri = [0x30, 0x08, 0x02, 0x01, 0x00, 0x30, 0x00, 0x30, 0x01, 0x00];
        assert!(check_document(&cri, true).is_err());
        assert!(check_document(&cri, false).is_ok(), "a CMS signature of any file is fine");
        let set = [0x31, 0x04, 0x30, 0x02, 0x05, 0x00];
        assert!(check_document(&set, true).unwrap_err().to_string().contains("signed attributes"));
        // Indefinite length BER.
        assert!(check_document(&[0x30, 0x80, 0x00, 0x00], true).is_err());
        // A SEQUENCE followed by more bytes is not one structure: a document that merely starts like DER.
        assert!(check_document(&[0x30, 0x00, b'x'], true).is_ok());
        assert!(check_document(&[0x30, 0x05, 0x00], true).is_ok(), "truncated");
        assert!(check_document(b"", true).is_ok());
        assert!(check_document(b"0\x03abc", true).is_err(), "text that happens to be DER is still DER");
    }

    #[test]
    fn displayable_text() {
        assert!(is_displayable_text("Shartnoma\n\tmatni\r\n".as_bytes()));
        assert!(is_displayable_text("Договор".as_bytes()));
        assert!(!is_displayable_text(b"%PDF-1.7\n\x00\x01"));
        assert!(!is_displayable_text(b"\xff\xfe"));
        assert!(!is_displayable_text(b"ansi \x1b[2J"));
        assert!(needs_blind_confirmation(&[0x89, b'P', b'N', b'G']));
    }
}
