//! x509-limbo's path-validation cases (tests/limbo/limbo-subset.json, see subset.py) against the chain
//! check Kalit uses everywhere (`x509::check_chain`), through `x509::conformance::validate_path_for`: the
//! same path validation and the same policy on the anchor and the signer's certificate, for the TLS
//! purpose each case names instead of document signing (limbo's leaves are TLS certificates), without
//! Kalit's keyUsage requirement on the signer.
//!
//! Every case must agree with limbo's expected result, except those listed below with the reason Kalit
//! decides differently; a listed case must still behave as listed (so a change in either direction is
//! noticed and this list updated).

#![allow(clippy::unwrap_used)]

use kalit_core::x509::conformance::{TlsPurpose, validate_path_for};
use serde_json::Value;

/// Cases Kalit refuses although limbo accepts them.
const STRICTER: &[(&str, &str)] = &[
    ("cve::cve-2024-0567", "Kalit builds a chain from at most 8 certificates at hand; this case gives more"),
    ("pathlen::validation-ignores-pathlen-in-leaf", "a CA certificate never signs documents as the signer"),
    ("rfc5280::ca-as-leaf", "a CA certificate never signs documents as the signer"),
    ("pathlen::self-issued-certs-pathlen", "rustls-webpki does not exempt self-issued intermediates"),
    ("rfc5280::nc::permitted-self-issued", "rustls-webpki does not exempt self-issued intermediates"),
    ("rfc5280::nc::permitted-dn-match", "rustls-webpki refuses directoryName name constraints (docs/DESIGN.md)"),
    ("rfc5280::nc::nc-permits-email-exact", "rustls-webpki refuses rfc822Name constraints on subject emails"),
    ("rfc5280::nc::nc-permits-email-domain", "rustls-webpki refuses rfc822Name constraints on subject emails"),
    ("rfc5280::nc::nc-permits-email-literal-asterisk-exact-match", "as above"),
    ("rfc5280::nc::nc-permits-email-literal-double-asterisk", "as above"),
    ("rfc5280::nc::nc-permits-email-literal-mid-asterisk", "as above"),
    ("rfc5280::validity::notafter-fractional", "ambiguous in RFC 5280; Kalit compares at full precision"),
];

/// Cases Kalit accepts although limbo refuses them: rules on how a CA must *issue* (encodings, identifier
/// extensions, serial numbers) that do not make a chain less trustworthy, which OpenSSL's default
/// verification does not enforce either; the CA/Browser Forum's web-PKI profile, which does not govern
/// document-signing certificates; limbo's per-case depth parameter; and a name-constraint workload that
/// rustls-webpki bounds instead of refusing.
const LAXER: &[(&str, &str)] = &[
    ("pathlen::max-chain-depth-0-exhausted", "limbo's max_chain_depth parameter; Kalit's depth is fixed"),
    ("pathlen::max-chain-depth-1-exhausted", "limbo's max_chain_depth parameter; Kalit's depth is fixed"),
    ("pathological::nc-dos-3", "bounded by rustls-webpki's name-constraint budget, technically valid"),
    ("rfc5280::aki::critical-aki", "issuance rule"),
    ("rfc5280::aki::leaf-missing-aki", "issuance rule"),
    ("rfc5280::aki::intermediate-missing-aki", "issuance rule"),
    ("rfc5280::aki::cross-signed-root-missing-aki", "issuance rule"),
    ("rfc5280::ski::critical-ski", "issuance rule"),
    ("rfc5280::ski::root-missing-ski", "issuance rule"),
    ("rfc5280::ski::intermediate-missing-ski", "issuance rule"),
    ("rfc5280::serial::too-long", "issuance rule"),
    ("rfc5280::serial::zero", "issuance rule"),
    ("rfc5280::serial::negative", "issuance rule"),
    ("rfc5280::pc::ica-noncritical-pc", "issuance rule (policies are not evaluated)"),
    ("rfc5280::nc::permitted-dns-match-noncritical", "issuance rule (criticality of name constraints)"),
    ("rfc5280::nc::invalid-dnsname-leading-period", "DNS-name constraint syntax; Kalit checks no DNS names"),
    ("rfc5280::san::noncritical-with-empty-subject", "issuance rule; Kalit checks no subjectAltName"),
    ("rfc5280::san::underscore-dns", "DNS-name syntax; Kalit checks no DNS names"),
    ("rfc5280::san::ip-in-dns", "DNS-name syntax; Kalit checks no DNS names"),
    ("rfc5280::ca-empty-subject", "issuance rule"),
    ("webpki::aki::root-with-aki-missing-keyidentifier", "web-PKI profile"),
    ("webpki::aki::root-with-aki-authoritycertissuer", "web-PKI profile"),
    ("webpki::aki::root-with-aki-authoritycertserialnumber", "web-PKI profile"),
    ("webpki::aki::root-with-aki-all-fields", "web-PKI profile"),
    ("webpki::aki::root-with-aki-ski-mismatch", "web-PKI profile"),
    ("webpki::eku::ee-anyeku", "web-PKI profile"),
    ("webpki::eku::ee-critical-eku", "web-PKI profile"),
    ("webpki::eku::ee-without-eku", "web-PKI profile (RFC 5280 allows a certificate without EKU)"),
    ("webpki::eku::root-has-eku", "web-PKI profile"),
    ("webpki::nc::intermediate-permitted-excluded-subtrees-both-null", "issuance rule"),
    ("webpki::nc::intermediate-permitted-excluded-subtrees-both-empty-sequences", "issuance rule"),
    ("webpki::malformed-aia", "web-PKI profile; Kalit does not fetch from AIA"),
    ("webpki::forbidden-rsa-not-divisible-by-8-in-root", "web-PKI profile"),
    ("webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf", "web-PKI profile"),
];

fn ders(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|p| kalit_core::x509::parse_cert_bundle(p.as_str().unwrap().as_bytes()).unwrap())
        .collect()
}

#[test]
fn x509_limbo_path_validation() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/limbo/limbo-subset.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v["testcases"].as_array().unwrap();
    assert!(cases.len() > 150, "the subset shrank: {}", cases.len());
    let mut seen = 0;
    let mut wrong = vec![];
    for t in cases {
        let id = t["id"].as_str().unwrap();
        let leaf =
            kalit_core::x509::parse_cert_bundle(t["peer_certificate"].as_str().unwrap().as_bytes()).unwrap().remove(0);
        let when = match t["validation_time"].as_str() {
            Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap(),
            // Cases without a time are built to be valid now.
            None => time::OffsetDateTime::now_utc(),
        };
        let purpose = if t["validation_kind"] == "CLIENT" { TlsPurpose::Client } else { TlsPurpose::Server };
        let r =
            validate_path_for(&leaf, &ders(&t["untrusted_intermediates"]), &ders(&t["trusted_certs"]), when, purpose);
        let limbo_accepts = t["expected_result"] == "SUCCESS";
        let listed = STRICTER.iter().chain(LAXER).find(|(i, _)| *i == id);
        let want = match listed {
            None => limbo_accepts,
            Some(_) => {
                seen += 1;
                !limbo_accepts
            }
        };
        if r.is_ok() != want {
            wrong.push(format!("{id}: limbo {}, Kalit {:?}", t["expected_result"], r.err().map(|e| e.to_string())));
        }
    }
    assert!(wrong.is_empty(), "{} cases differ from what is expected:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(seen, STRICTER.len() + LAXER.len(), "a listed case is not in the subset");
}
