//! Large documents through agent, relay and phone (real processes): 40 MiB travels whole in parts and the
//! phone hashes it itself; 200 MiB takes the digest path (the phone gets the agent's digests and the first
//! bytes, says it cannot check the rest, and asks separately). OpenSSL verifies both.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::common::{PIN, openssl, openssl_cms_verify, verify_raw_with_openssl};
use crate::signing::{Created, Page, finish, pair, stack};

/// Writes `mib` MiB of text (lines that differ, so a shifted byte changes the digest).
fn text_file(path: &Path, mib: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0usize;
    let mut line = 0u64;
    while written < mib << 20 {
        let l = format!("Shartnoma ilovasi, satr {line:010}: tomonlar quyidagilarga kelishdilar.\n");
        f.write_all(l.as_bytes()).unwrap();
        written += l.len();
        line += 1;
    }
    f.flush().unwrap();
}

/// A one-page PDF of about `mib` MiB: one long page-content stream, a cross-reference table.
fn big_pdf(path: &Path, mib: usize) {
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = vec![];
    for body in [
        "<</Type/Catalog/Pages 2 0 R>>",
        "<</Type/Pages/Kids[3 0 R]/Count 1>>",
        "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R>>",
    ] {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", offsets.len()).as_bytes());
    }
    let content = b"% chizma: a long page content stream of comments, 64 bytes.....\n".repeat((mib << 20) / 64);
    offsets.push(pdf.len());
    pdf.extend_from_slice(format!("4 0 obj\n<</Length {}>>\nstream\n", content.len()).as_bytes());
    pdf.extend_from_slice(&content);
    pdf.extend_from_slice(b"\nendstream\nendobj\n");
    let xref = pdf.len();
    pdf.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(format!("trailer\n<</Size 5/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    std::fs::write(path, pdf).unwrap();
}

/// `POST /v1/sessions/{id}/sign` with the file itself as the body, the options in the query.
fn sign_file(agent: &str, origin: &str, c: &Created, file: &Path, query: &str) -> (u16, Value) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let resp = http
        .post(format!("{agent}/v1/sessions/{}/sign?{query}", c.session))
        .header("origin", origin)
        .header("content-type", "application/octet-stream")
        .bearer_auth(&c.token)
        .body(reqwest::blocking::Body::from(std::fs::File::open(file).unwrap()))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().unwrap()).unwrap_or(Value::Null))
}

#[test]
fn forty_mib_travel_whole_and_two_hundred_mib_by_digest_both_verified_by_openssl() {
    let origin = "https://portal.example";
    let stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let page = Page::new(&stack.agent.url, origin);
    let work = stack.root.path().join("large");
    std::fs::create_dir_all(&work).unwrap();
    let (doc40, doc200) = (work.join("ilova-40.txt"), work.join("arxiv-200.txt"));
    text_file(&doc40, 40);
    text_file(&doc200, 200);
    let pdf70 = work.join("chizmalar-70.pdf");
    big_pdf(&pdf70, 70);
    let c = page.start(None);
    // Join; 40 MiB raw and CMS: approve, PIN; 200 MiB CMS and a 70 MiB PDF: approve, confirm what it
    // cannot check, PIN.
    let phone = pair(&v, &c.qr, &[PIN, "y", PIN, "y", PIN, "y", "y", PIN, "y", "y", PIN]);
    let st = page.wait(&c, "connected");
    assert_eq!(st["phase"], "connected");
    // The page can see what the phone takes before it sends anything.
    assert_eq!(st["documents"], serde_json::json!({ "whole": 64u64 << 20, "digest": true }), "{st}");

    // 40 MiB, raw: travels whole; the page sees how far it got while it travels.
    let (seen_total, done) = (AtomicU64::new(0), AtomicBool::new(false));
    let (code, r) = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if let Some(t) = page.state(&c)["transfer"]["total"].as_u64() {
                    seen_total.store(t, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let out = sign_file(&stack.agent.url, origin, &c, &doc40, "name=ilova-40.txt&media_type=text/plain&format=raw");
        done.store(true, Ordering::SeqCst);
        out
    });
    assert_eq!(code, 200, "{r}");
    let bytes40 = std::fs::read(&doc40).unwrap();
    assert_eq!(r["sha256"], hex::encode(kalit_core::digest::HashAlg::Sha256.digest(&bytes40)));
    assert!(seen_total.load(Ordering::SeqCst) > 40 << 20, "the page saw the transfer's progress");
    let chain = work.join("chain.pem");
    std::fs::write(&chain, r["certificate_pem"].as_str().unwrap()).unwrap();
    let sig40 = work.join("ilova-40.sig");
    std::fs::write(&sig40, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();

    // 40 MiB, CMS: the phone keeps only the first bytes and signs the digest it computed itself.
    let (code, r) =
        sign_file(&stack.agent.url, origin, &c, &doc40, "name=ilova-40.txt&media_type=text/plain&format=cms");
    assert_eq!(code, 200, "{r}");
    let cms40 = work.join("ilova-40.p7s");
    std::fs::write(&cms40, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();

    // 200 MiB as raw: refused at once (the phone would need it whole), nothing reaches the phone.
    let (code, r) = sign_file(&stack.agent.url, origin, &c, &doc200, "name=arxiv.txt&format=raw");
    assert_eq!((code, r["error"]["code"].as_str()), (413, Some("too_large")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("ask for cms"), "{r}");

    // 200 MiB, CMS: the digest path.
    let (code, r) =
        sign_file(&stack.agent.url, origin, &c, &doc200, "name=arxiv-200.txt&media_type=text/plain&format=cms");
    assert_eq!(code, 200, "{r}");
    let sig200 = work.join("arxiv-200.p7s");
    std::fs::write(&sig200, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();

    // A 70 MiB PDF: prepared by the agent, signed by the digest of its byte ranges, completed.
    let (code, r) = sign_file(&stack.agent.url, origin, &c, &pdf70, "name=chizmalar.pdf&format=pades&level=b-b");
    assert_eq!(code, 200, "{r}");
    let signed = B64.decode(r["document"].as_str().unwrap()).unwrap();
    let original = std::fs::read(&pdf70).unwrap();
    assert_eq!(&signed[..original.len()], &original[..], "an incremental update of the page's PDF");
    let signed_path = work.join("chizmalar-70-signed.pdf");
    std::fs::write(&signed_path, &signed).unwrap();
    let sigs = kalit_core::pdf::signatures(&signed).unwrap();
    let (ranges, cms) = (work.join("chizmalar.ranges"), work.join("chizmalar.cms"));
    std::fs::write(&ranges, sigs[0].signed_bytes(&signed)).unwrap();
    std::fs::write(&cms, &sigs[0].contents).unwrap();
    let ca = stack.ra.ca();
    let v_out = crate::common::kalit_cmd(&[
        "verify",
        "--file",
        crate::common::s(&signed_path),
        "--ca",
        crate::common::s(&ca),
        "--json",
    ])
    .output()
    .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&v_out.stdout).unwrap();
    assert_eq!(
        (&rep["valid"], &rep["signatures"][0]["level"]),
        (&serde_json::json!(true), &serde_json::json!("B-B")),
        "{rep}"
    );
    // The PDF world's judges: qpdf's structure check, pdfsig (the RA's root in an NSS database) and pyHanko.
    if let Some(j) = crate::pades::judges() {
        let (nssdb, root_pem) = crate::pades::trusting_nss(&work, &ca);
        crate::pades::judges_accept(&j, &nssdb, &root_pem, &signed_path, "70 MiB by digest", true);
    }

    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("computed the SHA-256 itself"), "{out}");
    assert!(out.contains("CANNOT CHECK THE REST"), "{out}");
    assert!(out.contains(&format!("{} bytes", 200u64 << 20)) || out.contains("Size:"), "{out}");
    let history = v.run(&["history", "--json"], &[]).ok().stdout;
    assert!(history.contains("\"cms-digest\""), "the history says what was signed by digest: {history}");
    assert!(history.contains("\"pades-digest\""), "{history}");
    if openssl().is_some() {
        verify_raw_with_openssl("p-256", false, &chain, &doc40, &sig40, &work);
        openssl_cms_verify(&cms40, &doc40, &stack.ra.ca());
        openssl_cms_verify(&sig200, &doc200, &stack.ra.ca());
        openssl_cms_verify(&cms, &ranges, &stack.ra.ca());
    }
}

/// A phone that takes less (`kalit vault pair --max-document 16 --no-digest`): the page sees its offer,
/// 12 MiB still travels whole, and 20 MiB is refused by the agent before anything reaches the phone.
#[test]
fn a_phone_that_takes_less_is_never_sent_more() {
    let origin = "https://portal.example";
    let stack = stack(&[origin]);
    let v = stack.phone("phone", "p-256", "ali");
    let page = Page::new(&stack.agent.url, origin);
    let work = stack.root.path().join("less");
    std::fs::create_dir_all(&work).unwrap();
    let (doc12, doc20) = (work.join("ilova-12.txt"), work.join("ilova-20.txt"));
    text_file(&doc12, 12);
    text_file(&doc20, 20);
    let c = page.start(None);
    let answers = crate::common::pair_answers(&v.dir, &c.qr, &[PIN, "y", PIN]);
    let args = ["vault", "--vault", crate::common::s(&v.dir), "pair", "--max-document", "16", "--no-digest", &c.qr];
    let mut phone = crate::common::kalit_cmd(&args).spawn().unwrap();
    crate::common::feed(&mut phone, &answers.iter().map(String::as_str).collect::<Vec<_>>());
    let st = page.wait(&c, "connected");
    assert_eq!(st["documents"], serde_json::json!({ "whole": 16u64 << 20, "digest": false }), "{st}");
    let (code, r) = sign_file(&stack.agent.url, origin, &c, &doc12, "name=ilova-12.txt&format=cms");
    assert_eq!(code, 200, "{r}");
    let sig = work.join("ilova-12.p7s");
    std::fs::write(&sig, B64.decode(r["signature"].as_str().unwrap()).unwrap()).unwrap();
    let (code, r) = sign_file(&stack.agent.url, origin, &c, &doc20, "name=ilova-20.txt&format=cms");
    assert_eq!((code, r["error"]["code"].as_str()), (413, Some("too_large")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("does not sign by digest"), "{r}");
    page.end(&c);
    let (code, out, err) = finish(phone);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("1 signed") && !out.contains("ilova-20"), "the phone never heard of the second: {out}");
    if openssl().is_some() {
        openssl_cms_verify(&sig, &doc12, &stack.ra.ca());
    }
}
