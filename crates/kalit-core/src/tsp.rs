//! RFC 3161 timestamps: the request a client sends, the answer a time-stamping authority (TSA) signs,
//! and the checks on both sides. Written with Kalit's DER writer and read with the `der` crate's decoder
//! (no published RFC 3161 crate matches the `cms` version Kalit uses).
//!
//! A timestamp token is a CMS SignedData whose encapsulated content is a TSTInfo: the TSA's signed
//! statement that a digest (the message imprint) existed at `genTime`. Kalit uses it over a signature
//! value (CAdES-B-T, PAdES-B-T) so that a signature gets a trusted time the signer's clock cannot fake.

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitString, Int, OctetString};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use time::OffsetDateTime;

use crate::cms::{self, PreparedCms, oid};
use crate::der as w;
use crate::digest::HashAlg;
use crate::keys::PrivateKey;
use crate::{CoreError, x509};

/// Largest request, answer or token accepted (a token carries the TSA's chain: a few KiB).
pub const MAX_TSP_LEN: usize = 64 * 1024;

/// Media type of a request (RFC 3161 3.4).
pub const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";
/// Media type of an answer.
pub const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";

/// Kalit's TSA policy: tokens from `kalit ra serve`, time from the RA host's clock, accuracy one second.
pub const KALIT_TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.59999.1.3.1");

/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), the content octets of the OID.
pub const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

fn bad(what: &str) -> CoreError {
    CoreError::invalid(format!("malformed timestamp {what}"))
}

fn hash_of_oid(o: &ObjectIdentifier) -> Option<HashAlg> {
    match *o {
        x if x == oid::SHA256 => Some(HashAlg::Sha256),
        x if x == oid::SHA384 => Some(HashAlg::Sha384),
        x if x == oid::SHA512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

fn hash_oid(h: HashAlg) -> ObjectIdentifier {
    match h {
        HashAlg::Sha256 => oid::SHA256,
        HashAlg::Sha384 => oid::SHA384,
        HashAlg::Sha512 => oid::SHA512,
    }
}

/// A request for a timestamp over a digest (TimeStampReq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampRequest {
    /// The hash algorithm of the imprint.
    pub hash: HashAlg,
    /// The digest to timestamp.
    pub imprint: Vec<u8>,
    /// The nonce's INTEGER content octets (echoed in the token), when sent.
    pub nonce: Option<Vec<u8>>,
    /// Whether the TSA's certificate is asked for in the token.
    pub cert_req: bool,
    /// The policy asked for, when one is.
    pub policy: Option<ObjectIdentifier>,
}

impl TimestampRequest {
    /// A request over `data` with SHA-256, a random 64-bit nonce, and the TSA's certificate asked for.
    pub fn over(data: &[u8]) -> Result<Self, CoreError> {
        let mut nonce = crate::seal::random::<8>()?.to_vec();
        nonce[0] = (nonce[0] & 0x7f) | 0x01;
        Ok(TimestampRequest {
            hash: HashAlg::Sha256,
            imprint: HashAlg::Sha256.digest(data),
            nonce: Some(nonce),
            cert_req: true,
            policy: None,
        })
    }

    /// The DER TimeStampReq.
    pub fn to_der(&self) -> Vec<u8> {
        let imprint = w::seq(&[&w::alg_id(&hash_oid(self.hash)), &w::octets(&self.imprint)]);
        let mut parts = vec![w::small_int(1), imprint];
        if let Some(p) = &self.policy {
            parts.push(w::oid(p));
        }
        if let Some(n) = &self.nonce {
            parts.push(w::tlv(0x02, n));
        }
        if self.cert_req {
            parts.push(vec![0x01, 0x01, 0xff]);
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        w::seq(&refs)
    }

    /// Reads a DER TimeStampReq, as a TSA does. A request the TSA cannot serve is a [`Refusal`] it
    /// answers with (RFC 3161 2.4.2), never a panic.
    pub fn from_der(der: &[u8]) -> Result<Self, Refusal> {
        if der.len() > MAX_TSP_LEN {
            return Err(Refusal::BadRequest("the request is larger than 64 KiB"));
        }
        let fields = SliceReader::new(der)
            .and_then(|mut r| {
                let v = r.sequence(|s: &mut SliceReader<'_>| {
                    let version = Int::decode(s)?;
                    let (alg, imprint) = read_imprint(s)?;
                    let policy = Option::<ObjectIdentifier>::decode(s)?;
                    let nonce = Option::<Int>::decode(s)?;
                    let cert_req = Option::<bool>::decode(s)?.unwrap_or(false);
                    let extensions = !s.is_finished();
                    let n = s.remaining_len();
                    s.read_slice(n)?;
                    Ok::<_, der::Error>((version, alg, imprint, policy, nonce, cert_req, extensions))
                })?;
                r.finish()?;
                Ok(v)
            })
            .map_err(|_| Refusal::BadDataFormat("the request is not a DER TimeStampReq"))?;
        let (version, alg, imprint, policy, nonce, cert_req, extensions) = fields;
        if version.as_bytes() != [1] {
            return Err(Refusal::BadRequest("only version 1 requests are served"));
        }
        if extensions {
            return Err(Refusal::UnacceptedExtension);
        }
        let hash = hash_of_oid(&alg).ok_or(Refusal::BadAlg)?;
        if imprint.len() != hash.output_len() {
            return Err(Refusal::BadDataFormat("the message imprint does not have its hash's length"));
        }
        if nonce.as_ref().is_some_and(|n| n.as_bytes().len() > 32) {
            return Err(Refusal::BadRequest("the nonce is longer than 256 bits"));
        }
        Ok(TimestampRequest { hash, imprint, nonce: nonce.map(|n| n.as_bytes().to_vec()), cert_req, policy })
    }
}

/// MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }.
fn read_imprint(s: &mut SliceReader<'_>) -> der::Result<(ObjectIdentifier, Vec<u8>)> {
    s.sequence(|m: &mut SliceReader<'_>| {
        let alg = m.sequence(|a: &mut SliceReader<'_>| {
            let o = ObjectIdentifier::decode(a)?;
            // Parameters: absent or NULL.
            if !a.is_finished() {
                let p = AnyRef::decode(a)?;
                if p.tag() != Tag::Null {
                    return Err(der::Error::from(der::ErrorKind::Value { tag: p.tag() }));
                }
            }
            Ok(o)
        })?;
        let h = OctetString::decode(m)?;
        Ok((alg, h.as_bytes().to_vec()))
    })
}

/// Why a TSA refuses a request (RFC 3161 PKIFailureInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The hash algorithm is not SHA-256, SHA-384 or SHA-512.
    BadAlg,
    /// The request is not acceptable.
    BadRequest(&'static str),
    /// The request is not well formed.
    BadDataFormat(&'static str),
    /// The policy asked for is not this TSA's.
    UnacceptedPolicy,
    /// The request carries extensions (this TSA knows none).
    UnacceptedExtension,
    /// The TSA could not make the token.
    SystemFailure,
}

impl Refusal {
    fn bit(self) -> u8 {
        match self {
            Refusal::BadAlg => 0,
            Refusal::BadRequest(_) => 2,
            Refusal::BadDataFormat(_) => 5,
            Refusal::UnacceptedPolicy => 15,
            Refusal::UnacceptedExtension => 16,
            Refusal::SystemFailure => 25,
        }
    }

    /// Words for the statusString.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::BadAlg => "the hash algorithm is not SHA-256, SHA-384 or SHA-512",
            Refusal::BadRequest(m) | Refusal::BadDataFormat(m) => m,
            Refusal::UnacceptedPolicy => "this TSA issues tokens under its own policy only",
            Refusal::UnacceptedExtension => "this TSA accepts no request extensions",
            Refusal::SystemFailure => "the TSA could not sign a token",
        }
    }

    /// The DER TimeStampResp that refuses: status rejection(2), the reason, the failure bit.
    pub fn to_der(self) -> Vec<u8> {
        let n = self.bit();
        let mut bits = vec![0u8; usize::from(n / 8) + 1];
        bits[usize::from(n / 8)] = 0x80 >> (n % 8);
        let unused = 7 - (n % 8);
        let fail_info = w::tlv(0x03, &[&[unused][..], &bits].concat());
        let text = w::seq(&[&w::tlv(0x0c, self.message().as_bytes())]);
        w::seq(&[&w::seq(&[&w::small_int(2), &text, &fail_info])])
    }
}

/// Whether a DER TimeStampResp grants (status granted or grantedWithMods), for metrics; an answer
/// is only trusted after [`read_response`].
pub fn is_granted(response: &[u8]) -> bool {
    // SEQUENCE { SEQUENCE { INTEGER 0|1 ...
    crate::der::first_element(response)
        .and_then(crate::der::first_element)
        .is_some_and(|status| matches!(status, [0x02, 0x01, 0 | 1]))
}

/// A TSA: its key, its certificate first and the chain above it, and the policy it issues under.
pub struct Tsa<'a> {
    /// The TSA's private key (its certificate has the critical extended key usage timeStamping).
    pub key: &'a PrivateKey,
    /// The TSA certificate, then the CA certificates above it.
    pub chain: &'a [Vec<u8>],
    /// The policy OID every token names.
    pub policy: ObjectIdentifier,
}

impl std::fmt::Debug for Tsa<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsa").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Tsa<'_> {
    /// Answers a DER TimeStampReq with a DER TimeStampResp: a token at `now` with `serial` (a positive
    /// INTEGER's content octets, unique per token), or a refusal. Never fails: a fault is answered as
    /// systemFailure.
    pub fn answer(&self, request: &[u8], now: OffsetDateTime, serial: &[u8]) -> Vec<u8> {
        let req = match TimestampRequest::from_der(request) {
            Ok(r) => r,
            Err(refusal) => return refusal.to_der(),
        };
        if req.policy.is_some_and(|p| p != self.policy) {
            return Refusal::UnacceptedPolicy.to_der();
        }
        match self.token(&req, now, serial) {
            Ok(token) => w::seq(&[&w::seq(&[&w::small_int(0)]), &token]),
            Err(_) => Refusal::SystemFailure.to_der(),
        }
    }

    /// The token (a DER ContentInfo) for an accepted request.
    pub fn token(&self, req: &TimestampRequest, now: OffsetDateTime, serial: &[u8]) -> Result<Vec<u8>, CoreError> {
        let imprint = w::seq(&[&w::alg_id(&hash_oid(req.hash)), &w::octets(&req.imprint)]);
        let accuracy = w::seq(&[&w::small_int(1)]);
        let mut parts = vec![
            w::small_int(1),
            w::oid(&self.policy),
            imprint,
            w::tlv(0x02, serial),
            w::generalized_time(now),
            accuracy,
        ];
        if let Some(n) = &req.nonce {
            parts.push(w::tlv(0x02, n));
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let tst_info = w::seq(&refs);
        let scheme = self.key.default_scheme();
        let mut prepared = PreparedCms::encapsulating(self.chain, scheme, oid::TST_INFO, tst_info)?;
        if !req.cert_req {
            prepared = prepared.without_certificates();
        }
        let signature = self.key.sign(scheme, &prepared.to_be_signed())?;
        Ok(prepared.finish(&signature))
    }
}

/// What a verified timestamp token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampInfo {
    /// The time the TSA vouches for.
    pub time: OffsetDateTime,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA's policy, dotted.
    pub policy: String,
    /// The TSA certificate (DER) that signed the token.
    pub tsa_cert: Vec<u8>,
    /// Every certificate the token carries.
    pub certificates: Vec<Vec<u8>>,
}

impl TimestampInfo {
    /// The TSA's name (its certificate's subject).
    pub fn tsa_name(&self) -> String {
        x509::parse(&self.tsa_cert).map(|c| c.subject().to_string()).unwrap_or_default()
    }
}

/// Reads a TimeStampResp: the token when the status is granted, else the TSA's reason as an error. The
/// token must be over `req`'s imprint, echo its nonce and verify.
pub fn read_response(response: &[u8], req: &TimestampRequest) -> Result<(Vec<u8>, TimestampInfo), CoreError> {
    if response.len() > MAX_TSP_LEN {
        return Err(bad("answer: larger than 64 KiB"));
    }
    let (status, text, fail, token) = SliceReader::new(response)
        .and_then(|mut r| {
            let v = r.sequence(|s: &mut SliceReader<'_>| {
                let (status, text, fail) = s.sequence(|si: &mut SliceReader<'_>| {
                    let status = Int::decode(si)?;
                    let mut text = Vec::new();
                    if Tag::peek(si).ok() == Some(Tag::Sequence) {
                        si.sequence(|t: &mut SliceReader<'_>| {
                            while !t.is_finished() {
                                let any = AnyRef::decode(t)?;
                                text.push(String::from_utf8_lossy(any.value()).into_owned());
                            }
                            Ok::<_, der::Error>(())
                        })?;
                    }
                    let fail = Option::<BitString>::decode(si)?.map(|b| b.raw_bytes().to_vec());
                    Ok::<_, der::Error>((status, text, fail))
                })?;
                let token = if s.is_finished() { None } else { Some(s.tlv_bytes()?.to_vec()) };
                Ok::<_, der::Error>((status, text, fail, token))
            })?;
            r.finish()?;
            Ok(v)
        })
        .map_err(|_| bad("answer: not a DER TimeStampResp"))?;
    if !matches!(status.as_bytes(), [0] | [1]) {
        let why =
            if text.is_empty() { format!("failure bits {:02x?}", fail.unwrap_or_default()) } else { text.join("; ") };
        return Err(CoreError::Refused(format!("the TSA refused the request: {why}")));
    }
    let token = token.ok_or_else(|| bad("answer: granted without a token"))?;
    let (info, tst) = verify_token_inner(&token, &mut |h| {
        if h == req.hash { Ok(req.imprint.clone()) } else { Err(bad("token: another hash than asked for")) }
    })?;
    if tst.nonce != req.nonce {
        return Err(CoreError::InvalidSignature("the TSA's answer does not echo this request's nonce".into()));
    }
    Ok((token, info))
}

/// Verifies a timestamp token over `data` (for a signature timestamp: the signature value): the
/// imprint matches, the TSA's signature verifies with the certificate it names, and that certificate
/// is a TSA's (extended key usage timeStamping). Whether the TSA is trusted is
/// [`check_tsa_chain`]'s question.
pub fn verify_token(token: &[u8], data: &[u8]) -> Result<TimestampInfo, CoreError> {
    verify_token_inner(token, &mut |h| Ok(h.digest(data))).map(|(i, _)| i)
}

struct TstFields {
    nonce: Option<Vec<u8>>,
}

fn verify_token_inner(
    token: &[u8],
    imprint_for: &mut dyn FnMut(HashAlg) -> Result<Vec<u8>, CoreError>,
) -> Result<(TimestampInfo, TstFields), CoreError> {
    if token.len() > MAX_TSP_LEN {
        return Err(bad("token: larger than 64 KiB"));
    }
    let ci = ::cms::content_info::ContentInfo::from_der(token).map_err(|_| bad("token: not a ContentInfo"))?;
    if ci.content_type != oid::SIGNED_DATA {
        return Err(bad("token: not SignedData"));
    }
    let sd: ::cms::signed_data::SignedData = ci.content.decode_as().map_err(|_| bad("token: SignedData"))?;
    if sd.encap_content_info.econtent_type != oid::TST_INFO {
        return Err(bad("token: the content is not a TSTInfo"));
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| bad("token: no TSTInfo inside"))?
        .decode_as::<OctetString>()
        .map_err(|_| bad("token: TSTInfo wrapper"))?
        .as_bytes()
        .to_vec();
    let tst = parse_tst_info(&tst_der)?;
    let want = imprint_for(tst.hash)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(&want, &tst.imprint).is_err() {
        return Err(CoreError::InvalidSignature(
            "the timestamp is over other data than the signature it is attached to".into(),
        ));
    }
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(bad("token: not exactly one signer"));
    };
    let certificates = cms::carried_certificates(&sd)?;
    let v = cms::verify_signer(si, oid::TST_INFO, &certificates, &[], &mut |h| Ok(h.digest(&tst_der))).map_err(
        |e| match e {
            CoreError::InvalidSignature(_) => CoreError::InvalidSignature("the TSA's signature does not verify".into()),
            other => other,
        },
    )?;
    let cert = x509::parse(&v.signer_cert)?;
    let is_tsa = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.time_stamping);
    if !is_tsa {
        return Err(CoreError::Untrusted(
            "the token's signer is not a time-stamping authority (no extended key usage timeStamping)".into(),
        ));
    }
    let info = TimestampInfo {
        time: tst.time,
        serial: hex::encode(&tst.serial),
        policy: tst.policy.to_string(),
        tsa_cert: v.signer_cert,
        certificates,
    };
    Ok((info, TstFields { nonce: tst.nonce }))
}

struct TstInfo {
    policy: ObjectIdentifier,
    hash: HashAlg,
    imprint: Vec<u8>,
    serial: Vec<u8>,
    time: OffsetDateTime,
    nonce: Option<Vec<u8>>,
}

/// TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, accuracy OPTIONAL,
/// ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL, tsa [0] OPTIONAL, extensions [1] OPTIONAL }
fn parse_tst_info(der: &[u8]) -> Result<TstInfo, CoreError> {
    let fields = SliceReader::new(der)
        .and_then(|mut r| {
            let v = r.sequence(|s: &mut SliceReader<'_>| {
                let version = Int::decode(s)?;
                let policy = ObjectIdentifier::decode(s)?;
                let (alg, imprint) = read_imprint(s)?;
                let serial = Int::decode(s)?.as_bytes().to_vec();
                let gen_time = AnyRef::decode(s)?;
                if gen_time.tag() != Tag::GeneralizedTime {
                    return Err(der::Error::from(der::ErrorKind::Value { tag: gen_time.tag() }));
                }
                let gen_time = gen_time.value().to_vec();
                if Tag::peek(s).ok() == Some(Tag::Sequence) {
                    AnyRef::decode(s)?;
                }
                Option::<bool>::decode(s)?;
                let nonce = Option::<Int>::decode(s)?.map(|n| n.as_bytes().to_vec());
                // tsa [0] and extensions [1]: read, not used.
                while !s.is_finished() {
                    let any = AnyRef::decode(s)?;
                    if !matches!(any.tag(), Tag::ContextSpecific { number: TagNumber(0 | 1), .. }) {
                        return Err(der::Error::from(der::ErrorKind::Value { tag: any.tag() }));
                    }
                }
                Ok::<_, der::Error>((version, policy, alg, imprint, serial, gen_time, nonce))
            })?;
            r.finish()?;
            Ok(v)
        })
        .map_err(|_| bad("token: TSTInfo"))?;
    let (version, policy, alg, imprint, serial, gen_time, nonce) = fields;
    if version.as_bytes() != [1] {
        return Err(bad("token: TSTInfo version"));
    }
    let hash = hash_of_oid(&alg).ok_or_else(|| {
        CoreError::Unsupported(format!("timestamp imprint hash {alg} (SHA-1 and others are refused)"))
    })?;
    if imprint.len() != hash.output_len() {
        return Err(bad("token: imprint length"));
    }
    let time = parse_generalized_time(&gen_time).ok_or_else(|| bad("token: genTime"))?;
    Ok(TstInfo { policy, hash, imprint, serial, time, nonce })
}

/// `YYYYMMDDhhmmss[.f+]Z`, the form RFC 3161 2.4.2 requires (fractions are dropped).
fn parse_generalized_time(v: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s.strip_suffix('Z')?;
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| main[a..b].parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0, 4)?).ok()?,
        time::Month::try_from(u8::try_from(n(4, 6)?).ok()?).ok()?,
        u8::try_from(n(6, 8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(n(8, 10)?).ok()?,
        u8::try_from(n(10, 12)?).ok()?,
        u8::try_from(n(12, 14)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// The EKU rule of a TSA certificate (RFC 3161 2.3): the extension is present and names timeStamping.
struct TimeStamping;

impl webpki::ExtendedKeyUsageValidator for TimeStamping {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = vec![];
        for id in iter {
            let id = id?;
            if webpki::KeyPurposeId::new(EKU_TIME_STAMPING) == id {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(webpki::RequiredEkuNotFoundContext {
            required: webpki::KeyUsage::required(EKU_TIME_STAMPING),
            present,
        }))
    }
}

/// Checks that `tsa_cert` is a TSA's certificate that chains to one of `anchors` (through `pool`) at
/// time `at` (the token's own time: a TSA certificate that expired since still vouches for the tokens
/// it signed while valid).
pub fn check_tsa_chain(
    tsa_cert: &[u8],
    pool: &[Vec<u8>],
    anchors: &[Vec<u8>],
    at: OffsetDateTime,
) -> Result<kalit_proto::verify::ChainReport, CoreError> {
    x509::validate_path_with(tsa_cert, pool, anchors, at, TimeStamping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyAlgorithm;
    use crate::keys::generate;

    /// A CA and a TSA under it, made with rcgen.
    fn tsa_pki() -> (Vec<u8>, Vec<u8>, PrivateKey) {
        use rcgen::{BasicConstraints, CertificateParams, CustomExtension, IsCa, Issuer, KeyUsagePurpose};
        let ca_key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
        let mut ca = CertificateParams::new(vec![]).unwrap();
        ca.distinguished_name = crate::csr::parse_subject("CN=Test Root,C=UZ").unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let tsa_key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
        let mut t = CertificateParams::new(vec![]).unwrap();
        t.distinguished_name = crate::csr::parse_subject("CN=Test TSA,C=UZ").unwrap();
        t.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku = CustomExtension::from_oid_content(&[2, 5, 29, 37], w::seq(&[&w::tlv(0x06, EKU_TIME_STAMPING)]));
        eku.set_criticality(true);
        t.custom_extensions = vec![eku];
        let issuer = Issuer::new(ca, ca_key);
        let tsa_cert = t.signed_by(&tsa_key, &issuer).unwrap().der().to_vec();
        (ca_cert, tsa_cert, tsa_key)
    }

    #[test]
    fn a_token_over_a_request_verifies_and_is_trusted_through_its_ca() {
        let (ca, tsa_cert, key) = tsa_pki();
        let chain = vec![tsa_cert.clone(), ca.clone()];
        let tsa = Tsa { key: &key, chain: &chain, policy: KALIT_TSA_POLICY };
        let req = TimestampRequest::over(b"a signature value").unwrap();
        assert_eq!(TimestampRequest::from_der(&req.to_der()).unwrap(), req);
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let resp = tsa.answer(&req.to_der(), now, &[0x42, 1, 2, 3]);
        let (token, info) = read_response(&resp, &req).unwrap();
        assert_eq!(info.time, now);
        assert_eq!(info.serial, "42010203");
        assert_eq!(info.tsa_cert, tsa_cert);
        assert_eq!(verify_token(&token, b"a signature value").unwrap(), info);
        assert!(matches!(verify_token(&token, b"another value"), Err(CoreError::InvalidSignature(_))));
        check_tsa_chain(&info.tsa_cert, &info.certificates, std::slice::from_ref(&ca), now).unwrap();
        // Another request's nonce is not this answer's.
        let other = TimestampRequest { nonce: Some(vec![9]), ..req.clone() };
        assert!(read_response(&resp, &other).is_err());
    }

    #[test]
    fn a_signature_timestamp_attached_to_a_cms_is_verified_with_it() {
        let (ca, tsa_cert, tsa_key) = tsa_pki();
        let chain = vec![tsa_cert, ca];
        let tsa = Tsa { key: &tsa_key, chain: &chain, policy: KALIT_TSA_POLICY };
        let signer = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject("CN=Signer").unwrap();
        let cert = p.self_signed(&signer).unwrap().der().to_vec();
        let scheme = crate::SignScheme::EcdsaP256Sha256;
        let doc = b"the document";
        let now = OffsetDateTime::now_utc();
        let prep = PreparedCms::with_profile(
            std::slice::from_ref(&cert),
            scheme,
            &HashAlg::Sha256.digest(doc),
            cms::Profile::Pades,
            now,
        )
        .unwrap();
        let plain = prep.clone().finish(&signer.sign(scheme, &prep.to_be_signed()).unwrap());
        let v = cms::verify_detached(&plain, &mut |h| Ok(h.digest(doc)), &[]).unwrap();
        assert_eq!((v.signing_time, v.timestamp), (None, None), "PAdES carries no signingTime");
        let req = TimestampRequest::over(&cms::signature_value(&plain).unwrap()).unwrap();
        let (token, _) = read_response(&tsa.answer(&req.to_der(), now, &[7]), &req).unwrap();
        let stamped = cms::add_signature_timestamp(&plain, &token).unwrap();
        let v = cms::verify_detached(&stamped, &mut |h| Ok(h.digest(doc)), &[]).unwrap();
        assert_eq!(v.timestamp.unwrap().serial, "07");
        assert!(cms::add_signature_timestamp(&stamped, &token).is_err(), "one timestamp per signature");
        // A token over another signature does not fit this one.
        let other = TimestampRequest::over(b"another signature").unwrap();
        let (wrong, _) = read_response(&tsa.answer(&other.to_der(), now, &[8]), &other).unwrap();
        let err = cms::verify_detached(
            &cms::add_signature_timestamp(&plain, &wrong).unwrap(),
            &mut |h| Ok(h.digest(doc)),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, CoreError::InvalidSignature(_)), "{err}");
    }

    #[test]
    fn a_signer_without_the_time_stamping_usage_is_not_a_tsa() {
        let (ca, _, _) = tsa_pki();
        let key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name = crate::csr::parse_subject("CN=Not a TSA").unwrap();
        let cert = p.self_signed(&key).unwrap().der().to_vec();
        let chain = vec![cert.clone()];
        let tsa = Tsa { key: &key, chain: &chain, policy: KALIT_TSA_POLICY };
        let req = TimestampRequest::over(b"x").unwrap();
        let resp = tsa.answer(&req.to_der(), OffsetDateTime::now_utc(), &[1]);
        assert!(matches!(read_response(&resp, &req), Err(CoreError::Untrusted(_))));
        assert!(check_tsa_chain(&cert, &[], &[ca], OffsetDateTime::now_utc()).is_err());
    }

    #[test]
    fn refusals_carry_their_reason_and_bit() {
        let (ca, tsa_cert, key) = tsa_pki();
        let chain = vec![tsa_cert, ca];
        let tsa = Tsa { key: &key, chain: &chain, policy: KALIT_TSA_POLICY };
        let now = OffsetDateTime::now_utc();
        let mut req = TimestampRequest::over(b"x").unwrap();
        req.imprint.pop();
        let resp = tsa.answer(&req.to_der(), now, &[1]);
        let err = read_response(&resp, &req).unwrap_err().to_string();
        assert!(err.contains("length"), "{err}");
        assert_eq!(
            Refusal::BadAlg.to_der()[..],
            w::seq(&[&w::seq(&[
                &w::small_int(2),
                &w::seq(&[&w::tlv(0x0c, Refusal::BadAlg.message().as_bytes())]),
                &[0x03, 0x02, 0x07, 0x80]
            ])])[..]
        );
        assert!(Refusal::UnacceptedExtension.to_der().ends_with(&[0x03, 0x04, 0x07, 0x00, 0x00, 0x80]));
        let policy = TimestampRequest { policy: Some(oid::SHA256), ..TimestampRequest::over(b"x").unwrap() };
        assert!(
            read_response(&tsa.answer(&policy.to_der(), now, &[1]), &policy)
                .unwrap_err()
                .to_string()
                .contains("policy")
        );
        for garbage in [&b""[..], b"\x30\x00", b"\x30\x03\x02\x01\x02", &[0x30; 40]] {
            let resp = tsa.answer(garbage, now, &[1]);
            assert!(read_response(&resp, &req).is_err());
        }
    }

    #[test]
    fn generalized_times() {
        let t = parse_generalized_time(b"20261201120000Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_126_400);
        assert_eq!(parse_generalized_time(b"20261201120000.123Z"), Some(t));
        for bad in
            [&b"20261201120000"[..], b"2026120112000Z", b"20261301120000Z", b"2026120112000aZ", b"20261201120000.Z1"]
        {
            assert_eq!(parse_generalized_time(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
