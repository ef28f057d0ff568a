//! A minimal DER writer for the structures Kalit emits itself (CMS SignedData). Parsing of untrusted
//! input never goes through this module; it uses the `der`/`cms`/`x509-parser` crates.

use const_oid::ObjectIdentifier;

/// Tag-length-value with a definite DER length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already-encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// The content octets of a SET OF, sorted as DER requires.
pub fn set_of_content(mut items: Vec<Vec<u8>>) -> Vec<u8> {
    items.sort();
    items.concat()
}

/// SET OF already-encoded items, sorted.
pub fn set_of(items: Vec<Vec<u8>>) -> Vec<u8> {
    tlv(0x31, &set_of_content(items))
}

/// OBJECT IDENTIFIER.
pub fn oid(o: &ObjectIdentifier) -> Vec<u8> {
    tlv(0x06, o.as_bytes())
}

/// OCTET STRING.
pub fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

/// Small non-negative INTEGER.
pub fn small_int(v: u8) -> Vec<u8> {
    if v < 0x80 { tlv(0x02, &[v]) } else { tlv(0x02, &[0, v]) }
}

/// Explicit or implicit context-specific constructed tag `[n]`.
pub fn ctx(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xA0 | n, content)
}

/// AlgorithmIdentifier with absent parameters.
pub fn alg_id(o: &ObjectIdentifier) -> Vec<u8> {
    seq(&[&oid(o)])
}

/// AlgorithmIdentifier with NULL parameters.
pub fn alg_id_null(o: &ObjectIdentifier) -> Vec<u8> {
    seq(&[&oid(o), &[0x05, 0x00]])
}

/// GeneralizedTime `YYYYMMDDhhmmssZ` (UTC, whole seconds), as RFC 3161 and RFC 6960 write it.
pub fn generalized_time(t: time::OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    tlv(0x18, s.as_bytes())
}

/// The complete encoding (tag, length, content) of the first element inside the DER SEQUENCE or SET
/// `der` (for example the signed part of a certificate or CSR), read with the `der` crate's decoder.
pub fn first_element(der: &[u8]) -> Option<&[u8]> {
    use der::{Decode, Header, Reader, SliceReader};
    let mut r = SliceReader::new(der).ok()?;
    let outer = Header::decode(&mut r).ok()?;
    let mut inner = SliceReader::new(r.read_slice(outer.length()).ok()?).ok()?;
    inner.tlv_bytes().ok()
}

/// The length in bytes (tag, length and content) of the DER element at the start of `der`, read with
/// the `der` crate's decoder; `None` when it does not start with a complete element.
pub fn tlv_len(der: &[u8]) -> Option<usize> {
    use der::{Decode, Header, Reader, SliceReader};
    // A zero byte is padding (a PDF signature hole), never a tag Kalit reads.
    if der.first().is_none_or(|b| *b == 0) {
        return None;
    }
    let mut r = SliceReader::new(der).ok()?;
    let h = Header::decode(&mut r).ok()?;
    let head = usize::try_from(u32::from(r.position())).ok()?;
    let body = usize::try_from(u32::from(h.length())).ok()?;
    head.checked_add(body).filter(|t| *t <= der.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths() {
        assert_eq!(tlv(0x04, &[1; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[1; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[1; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(small_int(200), vec![0x02, 0x02, 0x00, 200]);
    }

    #[test]
    fn first_element_of_a_sequence() {
        let inner = seq(&[&small_int(5), &octets(&[7; 200])]);
        let outer = seq(&[&inner, &small_int(1)]);
        assert_eq!(first_element(&outer), Some(&inner[..]));
        assert_eq!(first_element(&outer[..outer.len() - 1]), None);
        assert_eq!(first_element(&[0x30, 0x00]), None);
    }
}
