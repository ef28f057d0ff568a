//! OCSP (RFC 6960), the responder's side: read a request, answer for each certificate it asks about,
//! signed by the CA that issued them (the CA is its own responder, RFC 6960 4.2.2.2). The RA serves it;
//! the status of each serial comes from the RA's records.

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, Int, OctetString};
use der::{Decode, Reader, SliceReader, Tag, TagNumber};
use time::OffsetDateTime;

use crate::der as w;
use crate::keys::PrivateKey;
use crate::{CoreError, SignScheme, x509};

/// Largest request read.
pub const MAX_REQUEST: usize = 16 * 1024;
/// Most certificates asked about in one request.
pub const MAX_CERTS: usize = 16;
/// Media type of a request.
pub const REQUEST_MEDIA_TYPE: &str = "application/ocsp-request";
/// Media type of an answer.
pub const RESPONSE_MEDIA_TYPE: &str = "application/ocsp-response";

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// One certificate a request asks about (CertID), as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// The whole CertID, DER (echoed in the answer).
    pub der: Vec<u8>,
    /// Whether its issuer hashes name the CA that answers.
    pub ours: bool,
    /// The serial number's INTEGER content octets.
    pub serial: Vec<u8>,
}

/// A request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The certificates asked about.
    pub certs: Vec<CertId>,
    /// The nonce extension's value (DER of its OCTET STRING content), echoed in the answer.
    pub nonce: Option<Vec<u8>>,
}

/// The status of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at this time, for this RFC 5280 reason code.
    Revoked(OffsetDateTime, Option<u8>),
    /// Not known to this responder.
    Unknown,
}

/// Why a request gets no per-certificate answer (OCSPResponseStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// malformedRequest (1).
    Malformed = 1,
    /// internalError (2).
    Internal = 2,
}

impl Refusal {
    /// The DER OCSPResponse with this status and no body.
    pub fn to_der(self) -> Vec<u8> {
        w::seq(&[&w::tlv(0x0a, &[self as u8])])
    }
}

fn hashes(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    let a = match *alg {
        x if x == SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        x if x == SHA256 => &digest::SHA256,
        _ => return None,
    };
    Some(digest::digest(a, data).as_ref().to_vec())
}

/// The issuer's name (DER) and public key bits, which CertIDs hash.
fn issuer_parts(issuer_cert: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CoreError> {
    let c = x509::parse(issuer_cert)?;
    Ok((c.subject().as_raw().to_vec(), c.public_key().subject_public_key.data.to_vec()))
}

/// Reads an OCSPRequest, and marks each CertID whose issuer hashes (SHA-1 or SHA-256; CertID hashes
/// name a certificate, they are not signatures) name `issuer_cert`. A signed request is read but its
/// signature is not needed: answers are public.
pub fn read_request(der: &[u8], issuer_cert: &[u8]) -> Result<Request, Refusal> {
    if der.len() > MAX_REQUEST {
        return Err(Refusal::Malformed);
    }
    let (name, key) = issuer_parts(issuer_cert).map_err(|_| Refusal::Internal)?;
    let parsed = SliceReader::new(der)
        .and_then(|mut r| {
            let v = r.sequence(|req: &mut SliceReader<'_>| {
                let v = req.sequence(|tbs: &mut SliceReader<'_>| {
                    // [0] version, [1] requestorName: skipped.
                    while matches!(Tag::peek(tbs), Ok(Tag::ContextSpecific { number: TagNumber(0 | 1), .. })) {
                        AnyRef::decode(tbs)?;
                    }
                    let mut certs = vec![];
                    tbs.sequence(|list: &mut SliceReader<'_>| {
                        while !list.is_finished() {
                            list.sequence(|one: &mut SliceReader<'_>| {
                                let id = one.tlv_bytes()?.to_vec();
                                let n = one.remaining_len();
                                one.read_slice(n)?;
                                certs.push(id);
                                Ok::<_, der::Error>(())
                            })?;
                        }
                        Ok::<_, der::Error>(())
                    })?;
                    let mut nonce = None;
                    if !tbs.is_finished() {
                        let ext = AnyRef::decode(tbs)?;
                        nonce = find_nonce(ext.value())?;
                    }
                    Ok::<_, der::Error>((certs, nonce))
                })?;
                // [0] optionalSignature: not needed.
                let n = req.remaining_len();
                req.read_slice(n)?;
                Ok::<_, der::Error>(v)
            })?;
            r.finish()?;
            Ok::<_, der::Error>(v)
        })
        .map_err(|_| Refusal::Malformed)?;
    let (ids, nonce) = parsed;
    if ids.is_empty() || ids.len() > MAX_CERTS {
        return Err(Refusal::Malformed);
    }
    let certs = ids
        .into_iter()
        .map(|id| {
            let (alg, name_hash, key_hash, serial) = SliceReader::new(&id)
                .and_then(|mut r| {
                    r.sequence(|c: &mut SliceReader<'_>| {
                        let alg = c.sequence(|a: &mut SliceReader<'_>| {
                            let o = ObjectIdentifier::decode(a)?;
                            let n = a.remaining_len();
                            a.read_slice(n)?;
                            Ok::<_, der::Error>(o)
                        })?;
                        let nh = OctetString::decode(c)?.as_bytes().to_vec();
                        let kh = OctetString::decode(c)?.as_bytes().to_vec();
                        let serial = Int::decode(c)?.as_bytes().to_vec();
                        Ok::<_, der::Error>((alg, nh, kh, serial))
                    })
                })
                .map_err(|_| Refusal::Malformed)?;
            let ours = hashes(&alg, &name).is_some_and(|h| h == name_hash)
                && hashes(&alg, &key).is_some_and(|h| h == key_hash);
            Ok(CertId { der: id, ours, serial })
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    Ok(Request { certs, nonce })
}

/// The nonce in requestExtensions (`[2] EXPLICIT Extensions`): the extnValue's content.
fn find_nonce(extensions: &[u8]) -> der::Result<Option<Vec<u8>>> {
    let mut r = SliceReader::new(extensions)?;
    let mut nonce = None;
    r.sequence(|list: &mut SliceReader<'_>| {
        while !list.is_finished() {
            list.sequence(|e: &mut SliceReader<'_>| {
                let id = ObjectIdentifier::decode(e)?;
                if Tag::peek(e)? == Tag::Boolean {
                    bool::decode(e)?;
                }
                let value = OctetString::decode(e)?;
                if id == OCSP_NONCE && value.as_bytes().len() <= 128 {
                    nonce = Some(value.as_bytes().to_vec());
                }
                Ok::<_, der::Error>(())
            })?;
        }
        Ok::<_, der::Error>(())
    })?;
    Ok(nonce)
}

/// The signed answer: one SingleResponse per CertID with `statuses[i]` (a CertID that does not name
/// this CA is `unknown` whatever `statuses` says), valid from `now` for `valid_for`, signed by the CA's
/// `key` whose certificate is `ca_cert`.
pub fn response(
    req: &Request,
    statuses: &[Status],
    key: &PrivateKey,
    ca_cert: &[u8],
    now: OffsetDateTime,
    valid_for: time::Duration,
) -> Result<Vec<u8>, CoreError> {
    let subject = x509::parse(ca_cert)?.subject().as_raw().to_vec();
    let mut singles = vec![];
    for (i, id) in req.certs.iter().enumerate() {
        let status = if id.ours { statuses.get(i).cloned().unwrap_or(Status::Unknown) } else { Status::Unknown };
        let st = match status {
            Status::Good => vec![0x80, 0x00],
            Status::Unknown => vec![0x82, 0x00],
            Status::Revoked(t, reason) => {
                let mut inner = w::generalized_time(t);
                if let Some(r) = reason {
                    inner.extend(w::ctx(0, &w::tlv(0x0a, &[r])));
                }
                w::tlv(0xa1, &inner)
            }
        };
        singles.push(w::seq(&[
            &id.der,
            &st,
            &w::generalized_time(now),
            &w::ctx(0, &w::generalized_time(now + valid_for)),
        ]));
    }
    let refs: Vec<&[u8]> = singles.iter().map(Vec::as_slice).collect();
    let mut data = vec![w::ctx(1, &subject), w::generalized_time(now), w::seq(&refs)];
    if let Some(n) = &req.nonce {
        let ext = w::seq(&[&w::oid(&OCSP_NONCE), &w::octets(n)]);
        data.push(w::ctx(1, &w::seq(&[&ext])));
    }
    let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let tbs = w::seq(&data_refs);
    let scheme = key.default_scheme();
    let alg = match scheme {
        SignScheme::EcdsaP256Sha256 => w::alg_id(&crate::cms::oid::ECDSA_SHA256),
        SignScheme::RsaPkcs1Sha256 | SignScheme::RsaPssSha256 => w::alg_id_null(&crate::cms::oid::RSA_SHA256),
        SignScheme::Ed25519 => w::alg_id(&crate::cms::oid::ED25519),
    };
    let scheme = if scheme == SignScheme::RsaPssSha256 { SignScheme::RsaPkcs1Sha256 } else { scheme };
    let sig = key.sign(scheme, &tbs)?;
    let bits = w::tlv(0x03, &[&[0u8][..], &sig].concat());
    let certs = w::ctx(0, &w::seq(&[ca_cert]));
    let basic = w::seq(&[&tbs, &alg, &bits, &certs]);
    let bytes = w::seq(&[&w::oid(&OCSP_BASIC), &w::octets(&basic)]);
    Ok(w::seq(&[&w::tlv(0x0a, &[0]), &w::ctx(0, &bytes)]))
}

/// Whether a DER OCSPResponse is `successful` (for metrics).
pub fn is_successful(der: &[u8]) -> bool {
    w::first_element(der).is_some_and(|s| s == [0x0a, 0x01, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyAlgorithm;
    use crate::keys::generate;

    fn ca() -> (PrivateKey, Vec<u8>) {
        let key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject("CN=Issuing").unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap().der().to_vec();
        (key, cert)
    }

    fn request(ca_cert: &[u8], serial: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
        let (name, key) = issuer_parts(ca_cert).unwrap();
        let id = w::seq(&[
            &w::seq(&[&w::oid(&SHA1), &[0x05, 0x00]]),
            &w::octets(&hashes(&SHA1, &name).unwrap()),
            &w::octets(&hashes(&SHA1, &key).unwrap()),
            &w::tlv(0x02, serial),
        ]);
        let list = w::seq(&[&w::seq(&[&id])]);
        let tbs = match nonce {
            Some(n) => {
                let ext = w::seq(&[&w::oid(&OCSP_NONCE), &w::octets(&w::octets(n))]);
                w::seq(&[&list, &w::tlv(0xa2, &w::seq(&[&ext]))])
            }
            None => w::seq(&[&list]),
        };
        w::seq(&[&tbs])
    }

    #[test]
    fn answers_for_its_own_certificates_and_refuses_garbage() {
        let (key, cert) = ca();
        let der = request(&cert, &[0x11; 16], Some(b"nonce-1234"));
        let req = read_request(&der, &cert).unwrap();
        assert_eq!(req.certs.len(), 1);
        assert!(req.certs[0].ours);
        assert_eq!(req.certs[0].serial, vec![0x11; 16]);
        assert!(req.nonce.as_deref().is_some_and(|n| n.ends_with(b"nonce-1234")));
        let now = OffsetDateTime::now_utc();
        let ok = response(&req, &[Status::Good], &key, &cert, now, time::Duration::hours(1)).unwrap();
        assert!(is_successful(&ok));
        // Another CA's certificate is unknown here, whatever the records say.
        let (_, other) = ca();
        let theirs = read_request(&request(&other, &[1], None), &cert).unwrap();
        assert!(!theirs.certs[0].ours);
        for bad in [&b""[..], b"\x30\x00", b"\x30\x02\x30\x00", &[0x30; 30]] {
            assert!(read_request(bad, &cert).is_err());
        }
        for cut in 0..der.len() {
            let _ = read_request(&der[..cut], &cert);
        }
        assert_eq!(Refusal::Malformed.to_der(), vec![0x30, 0x03, 0x0a, 0x01, 0x01]);
    }
}
