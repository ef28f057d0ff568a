use lopdf::dictionary;

use super::*;
use crate::KeyAlgorithm;
use crate::cms::{PreparedCms, Profile, verify_detached};
use crate::keys::{PrivateKey, generate};

/// A small PDF of `pages` pages made with lopdf, each with a line of text.
pub(crate) fn sample_pdf(pages: usize, xref_stream: bool) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica"});
    let resources = doc.add_object(dictionary! {"Font" => dictionary! {"F1" => font}});
    let mut kids = vec![];
    for n in 1..=pages {
        let text = format!("BT /F1 24 Tf 72 720 Td (Contract page {n}: pay 100 som) Tj ET");
        let content = doc.add_object(lopdf::Stream::new(dictionary! {}, text.into_bytes()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        });
        kids.push(page.into());
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! {"Type" => "Pages", "Kids" => kids, "Count" => pages as i64, "Resources" => resources},
        ),
    );
    let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog);
    let info = doc.add_object(dictionary! {"Title" => Object::string_literal("Rental contract")});
    doc.trailer.set("Info", info);
    doc.reference_table.cross_reference_type = if xref_stream {
        lopdf::xref::XrefType::CrossReferenceStream
    } else {
        lopdf::xref::XrefType::CrossReferenceTable
    };
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn signer() -> (PrivateKey, Vec<u8>) {
    let key = PrivateKey::from_pkcs8(&generate(KeyAlgorithm::P256).unwrap()).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = crate::csr::parse_subject("CN=Ali Valiyev,C=UZ").unwrap();
    let cert = p.self_signed(&key).unwrap().der().to_vec();
    (key, cert)
}

fn spec() -> Spec<'static> {
    Spec {
        field: None,
        reason: Some("I agree"),
        name: Some("Ali Valiyev"),
        time: OffsetDateTime::from_unix_timestamp(1_796_126_400).unwrap(),
        reserve: 8192,
        kind: Kind::Signature,
        visible: None,
        lang: Default::default(),
    }
}

/// Prepares, inspects as the signer would, signs with the PAdES profile and completes.
fn sign(pdf: &[u8], key: &PrivateKey, cert: &[u8]) -> Vec<u8> {
    let prepared = prepare(pdf, &spec()).unwrap();
    let seen = inspect_prepared(&prepared.pdf).unwrap();
    assert_eq!(seen.sha256, prepared.digest(HashAlg::Sha256));
    let scheme = crate::SignScheme::EcdsaP256Sha256;
    let cms = PreparedCms::with_profile(&[cert.to_vec()], scheme, &seen.sha256, Profile::Pades, spec().time).unwrap();
    let sig = key.sign(scheme, &cms.to_be_signed()).unwrap();
    prepared.complete(&cms.finish(&sig)).unwrap()
}

fn verify_all(pdf: &[u8]) -> Vec<PdfSignature> {
    let sigs = signatures(pdf).unwrap();
    for s in &sigs {
        verify_detached(&s.contents, &mut |h| Ok(s.digest(pdf, h)), &[]).unwrap();
    }
    sigs
}

#[test]
fn sign_inspect_complete_and_read_back_on_both_kinds_of_cross_reference() {
    let (key, cert) = signer();
    for xref_stream in [false, true] {
        let original = sample_pdf(2, xref_stream);
        let prepared = prepare(&original, &spec()).unwrap();
        assert_eq!(&prepared.pdf[..original.len()], &original[..], "an incremental update keeps the original bytes");
        let seen = inspect_prepared(&prepared.pdf).unwrap();
        assert_eq!(
            (seen.pages, seen.title.as_deref(), seen.field.as_str()),
            (2, Some("Rental contract"), "KalitSignature1")
        );
        assert!(seen.first_page_text.contains("Contract page 1"), "{:?}", seen.first_page_text);
        let signed = sign(&original, &key, &cert);
        let sigs = verify_all(&signed);
        assert_eq!(sigs.len(), 1);
        let s = &sigs[0];
        assert_eq!(
            (s.sub_filter.as_str(), s.bytes_after, s.reason.as_deref()),
            ("ETSI.CAdES.detached", 0, Some("I agree"))
        );
        assert_eq!(s.claimed_time.as_deref(), Some("D:20261201120000+00'00'"));
        // The signed file is no longer waiting for a signature.
        assert!(inspect_prepared(&signed).is_err());
    }
}

#[test]
fn a_changed_byte_inside_the_signed_ranges_breaks_the_signature() {
    let (key, cert) = signer();
    let signed = sign(&sample_pdf(1, false), &key, &cert);
    let at = signed.windows(3).position(|w| w == b"100").unwrap();
    let mut tampered = signed.clone();
    tampered[at] = b'9';
    let s = &signatures(&tampered).unwrap()[0];
    let err = verify_detached(&s.contents, &mut |h| Ok(s.digest(&tampered, h)), &[]).unwrap_err();
    assert!(matches!(err, CoreError::InvalidSignature(_)), "{err}");
}

#[test]
fn a_second_signature_keeps_the_first_valid_and_is_an_allowed_change() {
    let (key, cert) = signer();
    let once = sign(&sample_pdf(1, true), &key, &cert);
    let twice = sign(&once, &key, &cert);
    let sigs = verify_all(&twice);
    assert_eq!(sigs.len(), 2);
    let first = sigs.iter().find(|s| s.field == "KalitSignature1").unwrap();
    assert!(first.bytes_after > 0);
    assert_eq!(first.later_changes, Ok(()));
    let second = sigs.iter().find(|s| s.field == "KalitSignature2").unwrap();
    assert_eq!(second.bytes_after, 0);
}

/// An incremental update that replaces the page's text after signing: the signature still verifies
/// over its own revision, and the change is reported.
fn rewrite_page_text(signed: &[u8], text: &str) -> Vec<u8> {
    let mut inc: IncrementalDocument = IncrementalDocument::create_from(signed.to_vec(), load(signed).unwrap());
    let page = *inc.get_prev_documents().get_pages().get(&1).unwrap();
    let content = inc.new_document.add_object(lopdf::Stream::new(dictionary! {}, text.as_bytes().to_vec()));
    inc.opt_clone_object_to_new_document(page).unwrap();
    inc.new_document.get_dictionary_mut(page).unwrap().set("Contents", content);
    let mut out = vec![];
    inc.save_to(&mut out).unwrap();
    out
}

#[test]
fn content_changed_after_signing_is_reported() {
    let (key, cert) = signer();
    let signed = sign(&sample_pdf(1, false), &key, &cert);
    let changed = rewrite_page_text(&signed, "BT /F1 24 Tf 72 720 Td (pay 900 som) Tj ET");
    let s = &verify_all(&changed)[0];
    assert!(s.bytes_after > 0);
    let why = s.later_changes.clone().unwrap_err();
    assert!(why.contains("Contents"), "{why}");
}

/// A lying computer's extra edits in the revision that adds the field: it rewrites page 1's text...
fn rewrite_page(inc: &mut IncrementalDocument) -> Result<(), CoreError> {
    let page = *inc.get_prev_documents().get_pages().get(&1).unwrap();
    let content = inc.new_document.add_object(lopdf::Stream::new(dictionary! {}, b"BT ET".to_vec()));
    inc.new_document.get_dictionary_mut(page).unwrap().set("Contents", content);
    Ok(())
}

/// ...lays a note over it...
fn overlay_note(inc: &mut IncrementalDocument) -> Result<(), CoreError> {
    let page = *inc.get_prev_documents().get_pages().get(&1).unwrap();
    let note = inc.new_document.add_object(dictionary! {"Type" => "Annot", "Subtype" => "FreeText",
    "Rect" => vec![0.into(), 0.into(), 595.into(), 842.into()], "Contents" => Object::string_literal("pay 900")});
    let d = inc.new_document.get_dictionary_mut(page).unwrap();
    let mut annots = d.get(b"Annots").unwrap().as_array().unwrap().clone();
    annots.push(note.into());
    d.set("Annots", annots);
    Ok(())
}

/// ...or takes its text away.
fn blank_page(inc: &mut IncrementalDocument) -> Result<(), CoreError> {
    let page = *inc.get_prev_documents().get_pages().get(&1).unwrap();
    inc.new_document.get_dictionary_mut(page).unwrap().remove(b"Contents");
    Ok(())
}

#[test]
fn the_signer_refuses_a_prepared_pdf_that_changes_more_than_its_field() {
    // A lying computer prepares the signature in a revision that also rewrites the page, or adds an
    // annotation over it: the signer's own check refuses both.
    let original = sample_pdf(1, false);
    let p = prepare_with(&original, &spec(), rewrite_page).unwrap();
    let err = inspect_prepared(&p.pdf).unwrap_err().to_string();
    assert!(err.contains("changed beyond adding a signature field"), "{err}");
    let p = prepare_with(&original, &spec(), overlay_note).unwrap();
    let err = inspect_prepared(&p.pdf).unwrap_err().to_string();
    assert!(err.contains("not a signature"), "{err}");
    // Taking an entry away is a change too: the page loses its text while gaining the field.
    let p = prepare_with(&original, &spec(), blank_page).unwrap();
    let err = inspect_prepared(&p.pdf).unwrap_err().to_string();
    assert!(err.contains("/Contents was removed"), "{err}");
}

#[test]
fn a_byte_range_that_skips_bytes_or_points_elsewhere_is_refused() {
    let (key, cert) = signer();
    let signed = sign(&sample_pdf(1, false), &key, &cert);
    let s = &signatures(&signed).unwrap()[0];
    let [_, a, b, c] = s.byte_range;
    let text = |r: [usize; 4]| format!("[0 {} {} {}]", r[1], r[2], r[3]);
    let original = text(s.byte_range);
    for wrong in [[0, a - 1, b, c], [0, a, b + 2, c - 2], [0, a, b, c + 5], [0, b, a, c]] {
        let mut t = text(wrong).into_bytes();
        if t.len() > original.len() {
            continue;
        }
        t.resize(original.len(), b' ');
        let mut m = signed.clone();
        let at = find_once(&m, original.as_bytes()).unwrap();
        m[at..at + t.len()].copy_from_slice(&t);
        let ok = signatures(&m).map(|v| {
            let s = &v[0];
            verify_detached(&s.contents, &mut |h| Ok(s.digest(&m, h)), &[]).is_ok() && s.bytes_after == 0
        });
        assert!(!matches!(ok, Ok(true)), "{wrong:?} was accepted");
    }
}

#[test]
fn hostile_and_malformed_inputs_are_errors() {
    let good = sample_pdf(1, false);
    let mut nested = b"%PDF-1.7\n1 0 obj\n".to_vec();
    nested.extend(std::iter::repeat_n(b'[', 100_000));
    nested.extend_from_slice(b"\nendobj\ntrailer\n<</Root 1 0 R>>\n%%EOF\n");
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"not a pdf".to_vec(),
        b"%PDF-1.7\n".to_vec(),
        good[..good.len() / 2].to_vec(),
        nested,
        [&good[..], b"garbage after"].concat(),
    ];
    for c in cases {
        let _ = signatures(&c);
        let _ = inspect_prepared(&c);
        let _ = prepare(&c, &spec());
    }
    assert!(prepare(b"not a pdf", &spec()).is_err());
    // Truncations and flipped bytes of a signed PDF: errors or reports, never a panic.
    let (key, cert) = signer();
    let signed = sign(&good, &key, &cert);
    for cut in (0..signed.len()).step_by(97) {
        let _ = signatures(&signed[..cut]);
    }
    for at in (0..signed.len()).step_by(53) {
        let mut m = signed.clone();
        m[at] ^= 0x20;
        for s in signatures(&m).unwrap_or_default() {
            let _ = verify_detached(&s.contents, &mut |h| Ok(s.digest(&m, h)), &[]);
        }
    }
}

#[test]
fn a_cms_too_big_for_the_hole_is_refused() {
    let prepared = prepare(&sample_pdf(1, false), &Spec { reserve: 16, ..spec() }).unwrap();
    assert!(prepared.complete(&[0x30; 40]).is_err());
}

#[test]
fn field_names_are_checked() {
    let pdf = sample_pdf(1, false);
    for bad in ["", "a.b"] {
        assert!(prepare(&pdf, &Spec { field: Some(bad), ..spec() }).is_err());
    }
    let (key, cert) = signer();
    let signed = sign(&pdf, &key, &cert);
    assert!(prepare(&signed, &Spec { field: Some("KalitSignature1"), ..spec() }).is_err());
    assert_eq!(prepare(&signed, &spec()).unwrap().field, "KalitSignature2");
}

/// The font of a visible signature's appearance `ap` (its resource `/KalitF1`).
fn appearance_font(doc: &Document, ap: ObjectId) -> Dictionary {
    let stream = doc.get_object(ap).unwrap().as_stream().unwrap();
    let fonts = stream.dict.get(b"Resources").unwrap().as_dict().unwrap().get(b"Font").unwrap().as_dict().unwrap();
    doc.get_dictionary(fonts.get(b"KalitF1").unwrap().as_reference().unwrap()).unwrap().clone()
}

/// The lines a visible signature's appearance draws, read back as a PDF reader copies them: each `<glyphs>
/// Tj` through the font's ToUnicode map.
fn appearance_text(doc: &Document, ap: ObjectId) -> Vec<String> {
    let font = appearance_font(doc, ap);
    let map = doc.get_object(font.get(b"ToUnicode").unwrap().as_reference().unwrap()).unwrap();
    let map = String::from_utf8(map.as_stream().unwrap().decompressed_content().unwrap()).unwrap();
    let mut chars = std::collections::HashMap::new();
    for l in map.lines().filter(|l| l.starts_with('<') && l.contains("> <")) {
        let (gid, utf16) = l.trim_matches(|c| c == '<' || c == '>').split_once("> <").unwrap();
        let units: Vec<u16> =
            (0..utf16.len()).step_by(4).map(|i| u16::from_str_radix(&utf16[i..i + 4], 16).unwrap()).collect();
        chars.insert(u16::from_str_radix(gid, 16).unwrap(), String::from_utf16(&units).unwrap());
    }
    let content = String::from_utf8(doc.get_object(ap).unwrap().as_stream().unwrap().content.clone()).unwrap();
    content
        .lines()
        .filter_map(|l| l.strip_prefix('<')?.split_once("> Tj").map(|(hex, _)| hex.to_owned()))
        .map(|hex| {
            (0..hex.len())
                .step_by(4)
                .map(|i| chars[&u16::from_str_radix(&hex[i..i + 4], 16).unwrap()].clone())
                .collect()
        })
        .collect()
}

#[test]
fn a_visible_signature_has_its_box_and_appearance_on_the_chosen_page() {
    let (key, cert) = signer();
    let pdf = sample_pdf(2, false);
    let visible = Visible::parse("2,300,60,220,60").unwrap();
    let spec = Spec { visible: Some(visible), reason: Some("Roziman (oʻqidim)"), ..spec() };
    let prepared = prepare(&pdf, &spec).unwrap();
    let seen = inspect_prepared(&prepared.pdf).unwrap();
    let scheme = crate::SignScheme::EcdsaP256Sha256;
    let cms = PreparedCms::with_profile(std::slice::from_ref(&cert), scheme, &seen.sha256, Profile::Pades, spec.time)
        .unwrap();
    let sig = key.sign(scheme, &cms.to_be_signed()).unwrap();
    let signed = prepared.complete(&cms.finish(&sig)).unwrap();
    verify_all(&signed);
    let doc = load(&signed).unwrap();
    let page2 = *doc.get_pages().get(&2).unwrap();
    let annots = doc.get_dictionary(page2).unwrap().get(b"Annots").unwrap().as_array().unwrap().clone();
    let widget = doc.get_dictionary(annots[0].as_reference().unwrap()).unwrap();
    let rect: Vec<f32> =
        widget.get(b"Rect").unwrap().as_array().unwrap().iter().map(|o| o.as_float().unwrap()).collect();
    assert_eq!(rect, vec![300.0, 60.0, 520.0, 120.0]);
    let ap = widget.get(b"AP").unwrap().as_dict().unwrap().get(b"N").unwrap().as_reference().unwrap();
    let lines = appearance_text(&doc, ap);
    assert_eq!(lines[..2], ["Digitally signed by", "Ali Valiyev"]);
    assert_eq!(lines[3], "Reason: Roziman (oʻqidim)", "Uzbek letters and parentheses as they are");
    // The box's words in the document's language.
    use kalit_proto::session::BoxLanguage;
    for (lang, first, last) in [
        (BoxLanguage::Uz, "Elektron imzo bilan imzolagan:", "Sabab: Roziman (oʻqidim)"),
        (BoxLanguage::Ru, "Подписано электронной подписью:", "Причина: Roziman (oʻqidim)"),
    ] {
        let p = prepare(&pdf, &Spec { lang, ..spec }).unwrap();
        let doc = load(&p.pdf).unwrap();
        let page2 = *doc.get_pages().get(&2).unwrap();
        let annots = doc.get_dictionary(page2).unwrap().get(b"Annots").unwrap().as_array().unwrap().clone();
        let widget = doc.get_dictionary(annots[0].as_reference().unwrap()).unwrap();
        let ap = widget.get(b"AP").unwrap().as_dict().unwrap().get(b"N").unwrap().as_reference().unwrap();
        let lines = appearance_text(&doc, ap);
        assert_eq!((lines[0].as_str(), lines[3].as_str()), (first, last), "{lang:?}");
        assert!(lines[2].starts_with(if lang == BoxLanguage::Uz { "Sana: " } else { "Дата: " }), "{lines:?}");
    }
    // The font is embedded (a TrueType program in the file), not named and left to the reader.
    let font = appearance_font(&doc, ap);
    assert_eq!(font.get(b"Subtype").unwrap().as_name().unwrap(), b"Type0");
    let cid = font.get(b"DescendantFonts").unwrap().as_array().unwrap()[0].as_dict().unwrap();
    let descriptor = doc.get_dictionary(cid.get(b"FontDescriptor").unwrap().as_reference().unwrap()).unwrap();
    let program = doc.get_object(descriptor.get(b"FontFile2").unwrap().as_reference().unwrap()).unwrap();
    let program = program.as_stream().unwrap().decompressed_content().unwrap();
    assert_eq!(&program[..4], &[0, 1, 0, 0], "a TrueType font program");
    for bad in ["0,1,1,100,50", "1,1,1,5,50", "1,1,1,100", "1,x,1,100,50", "1,1,1,100,NaN"] {
        assert!(Visible::parse(bad).is_err(), "{bad}");
    }
    assert!(prepare(&pdf, &Spec { visible: Some(Visible { page: 3, ..visible }), ..spec }).is_err());
    // A Cyrillic name, and one too long for its box: cut with an ellipsis, never drawn past the border.
    let spec = Spec { name: Some("Гулнора Каримова Абдулла қизи"), reason: None, ..spec };
    let narrow = Visible::parse("1,72,72,120,40").unwrap();
    let wide = Visible::parse("1,40,60,520,60").unwrap();
    let tiny = Visible::parse("1,72,72,60,40").unwrap();
    for (v, want) in
        [(wide, "Гулнора Каримова Абдулла қизи"), (narrow, "Гулнора Каримова Абдулла қизи"), (tiny, "Гулнора Кари…")]
    {
        let prepared = prepare(&pdf, &Spec { visible: Some(v), ..spec }).unwrap();
        let doc = load(&prepared.pdf).unwrap();
        let page = *doc.get_pages().get(&v.page).unwrap();
        let annots = doc.get_dictionary(page).unwrap().get(b"Annots").unwrap().as_array().unwrap().clone();
        let widget = doc.get_dictionary(annots[0].as_reference().unwrap()).unwrap();
        let ap = widget.get(b"AP").unwrap().as_dict().unwrap().get(b"N").unwrap().as_reference().unwrap();
        assert_eq!(appearance_text(&doc, ap)[1], want, "{v:?}");
    }
}

/// The signer's check of a prepared PDF, as conformance vectors (`vectors/pdf-v1.json`): honest and lying
/// prepared PDFs with what the check must find, or that it must refuse. The TypeScript phone app replays
/// the same file (`phone/test/pdf.test.ts`). Deterministic: fixed time, no key (an earlier signature's
/// value needs only to be DER for this check).
fn pdf_vectors() -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::json;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let patch = |pdf: &[u8], from: &[u8], to: &[u8]| {
        assert_eq!(from.len(), to.len());
        let mut m = pdf.to_vec();
        let at = find_once(&m, from).expect("the text to patch is in the PDF once");
        m[at..at + to.len()].copy_from_slice(to);
        m
    };
    // A small hole keeps the file small.
    let spec = || Spec { reserve: 64, ..spec() };
    let byte_range_text = |r: [usize; 4]| format!("[0 {} {} {}]", r[1], r[2], r[3]);
    let mut cases: Vec<(&str, Vec<u8>, bool)> = Vec::new();

    let one = prepare(&sample_pdf(1, false), &spec()).unwrap();
    cases.push(("one page, a cross-reference table, an invisible field", one.pdf.clone(), true));
    let visible = Spec { visible: Some(Visible::parse("2,300,60,220,60").unwrap()), ..spec() };
    let three = prepare(&sample_pdf(3, true), &visible).unwrap();
    cases.push(("three pages, cross-reference streams, a visible field on page 2", three.pdf, true));
    let signed_once =
        prepare(&sample_pdf(2, true), &spec()).unwrap().complete(&[0x30, 0x03, 0x02, 0x01, 0x00]).unwrap();
    let second = prepare(&signed_once, &spec()).unwrap();
    cases.push(("a second signature on a signed PDF", second.pdf, true));

    // A form's own empty signature field, filled (not seen on the page, which keeps the file small).
    let template = template_pdf_with(1, 1, [0, 0, 0, 0]);
    let fill = || Spec { field: Some("Imzo"), ..spec() };
    cases.push(("a form's empty signature field, filled", prepare(&template, &fill()).unwrap().pdf, true));
    let (sig_field, text_field) = (field_id(&template, "Imzo"), field_id(&template, "Ism"));
    let move_field = |inc: &mut IncrementalDocument| {
        let d = inc.new_document.get_dictionary_mut(sig_field).unwrap();
        d.set("Rect", vec![0.into(), 0.into(), 595.into(), 842.into()]);
        Ok(())
    };
    cases.push((
        "the filled field is also moved over the page",
        prepare_with(&template, &fill(), move_field).unwrap().pdf,
        false,
    ));
    let refill_text = |inc: &mut IncrementalDocument| {
        inc.opt_clone_object_to_new_document(text_field).unwrap();
        inc.new_document.get_dictionary_mut(text_field).unwrap().set("V", Object::string_literal("Vali Aliyev"));
        Ok(())
    };
    cases.push((
        "a text field's value changes beside the filled field",
        prepare_with(&template, &fill(), refill_text).unwrap().pdf,
        false,
    ));
    cases.push(("already signed: no field waits", signed_once, false));
    cases.push((
        "the new revision rewrites the page",
        prepare_with(&sample_pdf(1, false), &spec(), rewrite_page).unwrap().pdf,
        false,
    ));
    cases.push((
        "the new revision lays a note over the page",
        prepare_with(&sample_pdf(1, true), &spec(), overlay_note).unwrap().pdf,
        false,
    ));
    let retitle = |inc: &mut IncrementalDocument| {
        let info = inc.get_prev_documents().trailer.get(b"Info").unwrap().as_reference().unwrap();
        inc.opt_clone_object_to_new_document(info).unwrap();
        inc.new_document.get_dictionary_mut(info).unwrap().set("Title", Object::string_literal("Gift deed"));
        Ok(())
    };
    cases.push((
        "the new revision changes the title",
        prepare_with(&sample_pdf(1, false), &spec(), retitle).unwrap().pdf,
        false,
    ));
    cases.push((
        "the new revision takes the page's content away",
        prepare_with(&sample_pdf(1, false), &spec(), blank_page).unwrap().pdf,
        false,
    ));
    cases.push(("bytes after the byte range", [&one.pdf[..], b"\n%more\n"].concat(), false));
    let [_, a, b, c] = one.byte_range;
    let skip =
        patch(&one.pdf, byte_range_text(one.byte_range).as_bytes(), byte_range_text([0, a - 1, b, c]).as_bytes());
    cases.push(("a byte range that leaves a byte out", skip, false));
    let not_pades = patch(&one.pdf, b"/ETSI.CAdES.detached", b"/adbe.pkcs7.detached");
    cases.push(("a signature that is not PAdES", not_pades, false));
    cases.push(("not a PDF", b"%!PS-Adobe-3.0\n".to_vec(), false));

    let cases: Vec<_> = cases
        .into_iter()
        .map(|(name, pdf, ok)| {
            let found = inspect_prepared(&pdf);
            assert_eq!(found.is_ok(), ok, "{name}: {:?}", found.as_ref().err());
            let expect = match found {
                Ok(s) => json!({
                    "field": s.field, "field_page": s.field_page, "pages": s.pages, "title": s.title,
                    "earlier_signatures": s.earlier_signatures, "sha256": hex::encode(&s.sha256),
                    "byte_range": s.byte_range,
                }),
                Err(_) => json!("refused"),
            };
            json!({"name": name, "pdf": b64(&pdf), "expect": expect})
        })
        .collect();
    json!({
        "about": "The signer's check of a prepared PDF (kalit_core::pdf::inspect_prepared): what it finds, or that it refuses.",
        "cases": cases,
    })
}

#[test]
fn committed_pdf_vectors_are_what_the_code_generates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/pdf-v1.json");
    let text = serde_json::to_string_pretty(&pdf_vectors()).unwrap() + "\n";
    if std::env::var_os("KALIT_WRITE_VECTORS").is_some() {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(committed == text, "{} differs from what the code generates (KALIT_WRITE_VECTORS=1)", path.display());
}

#[test]
fn preparing_an_owned_pdf_and_hashing_it_at_once_gives_the_same_file_and_digests() {
    for xref_stream in [false, true] {
        let original = sample_pdf(3, xref_stream);
        let spec = Spec { visible: Some(Visible::parse("2,300,60,220,60").unwrap()), ..spec() };
        let borrowed = prepare(&original, &spec).unwrap();
        let owned = prepare_owned(original.clone(), &spec).unwrap();
        assert_eq!((&owned.pdf, owned.byte_range, &owned.field), (&borrowed.pdf, borrowed.byte_range, &borrowed.field));
        let (both, digests) = prepare_and_digest(original.clone(), &spec, &[HashAlg::Sha256, HashAlg::Sha512]).unwrap();
        assert_eq!(both.pdf, borrowed.pdf);
        assert_eq!(digests, vec![borrowed.digest(HashAlg::Sha256), borrowed.digest(HashAlg::Sha512)]);
        assert_eq!(inspect_prepared(&both.pdf).unwrap().sha256, digests[0]);
    }
    // A PDF that does not end in a newline: the new revision starts on a line of its own either way.
    let no_newline = sample_pdf(1, false);
    assert_eq!(no_newline.last(), Some(&b'F'), "lopdf ends its files with %%EOF");
    let owned = prepare_owned(no_newline.clone(), &spec()).unwrap();
    assert_eq!(owned.pdf, prepare(&no_newline, &spec()).unwrap().pdf);
    assert_eq!(owned.pdf[no_newline.len()], b'\n');
    inspect_prepared(&owned.pdf).unwrap();
    let with_newline = [&no_newline[..], b"\n"].concat();
    let owned = prepare_owned(with_newline.clone(), &spec()).unwrap();
    assert_eq!(owned.pdf, prepare(&with_newline, &spec()).unwrap().pdf);
    assert_ne!(owned.pdf[with_newline.len()], b'\n', "no second newline");
    assert!(prepare_and_digest(b"not a pdf".to_vec(), &spec(), &[HashAlg::Sha256]).is_err());
}

/// A one-page PDF whose page is turned by `rotate` (on the page, or inherited from its page tree) and
/// shows `crop` of its 595 x 842 media box.
fn turned_pdf(rotate: i64, inherited: bool, crop: Option<[i64; 4]>) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let content = doc.add_object(lopdf::Stream::new(dictionary! {}, b"BT ET".to_vec()));
    let mut page = dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
    };
    if let Some(c) = crop {
        page.set("CropBox", c.iter().map(|&v| Object::Integer(v)).collect::<Vec<_>>());
    }
    let mut pages = dictionary! {"Type" => "Pages", "Count" => 1};
    if inherited {
        pages.set("Rotate", rotate);
    } else {
        page.set("Rotate", rotate);
    }
    let page = doc.add_object(page);
    pages.set("Kids", vec![page.into()]);
    doc.objects.insert(pages_id, Object::Dictionary(pages));
    let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn a_visible_box_is_measured_on_the_page_as_shown_and_turned_back_to_read_upright() {
    let v = Visible::parse("1,40,30,200,60").unwrap();
    // (rotate, inherited, crop, the page's size as shown, /Rect, /Matrix)
    type Case = (i64, bool, Option<[i64; 4]>, (f32, f32), [f32; 4], Option<[f32; 6]>);
    let cases: [Case; 7] = [
        (0, false, None, (595.0, 842.0), [40.0, 30.0, 240.0, 90.0], None),
        // Shown from its crop box's corner, not the media box's.
        (0, false, Some([100, 50, 500, 800]), (400.0, 750.0), [140.0, 80.0, 340.0, 140.0], None),
        // Turned a quarter clockwise: the box's left edge runs up the page's own y axis.
        (90, false, None, (842.0, 595.0), [505.0, 40.0, 565.0, 240.0], Some([0.0, 1.0, -1.0, 0.0, 0.0, 0.0])),
        (90, true, None, (842.0, 595.0), [505.0, 40.0, 565.0, 240.0], Some([0.0, 1.0, -1.0, 0.0, 0.0, 0.0])),
        (180, false, None, (595.0, 842.0), [355.0, 752.0, 555.0, 812.0], Some([-1.0, 0.0, 0.0, -1.0, 0.0, 0.0])),
        (-90, false, None, (842.0, 595.0), [30.0, 602.0, 90.0, 802.0], Some([0.0, -1.0, 1.0, 0.0, 0.0, 0.0])),
        // Not a multiple of 90: readers ignore it, and so does the box.
        (45, false, None, (595.0, 842.0), [40.0, 30.0, 240.0, 90.0], None),
    ];
    for (rotate, inherited, crop, shown, rect, matrix) in cases {
        let pdf = turned_pdf(rotate, inherited, crop);
        let doc = load(&pdf).unwrap();
        let page = *doc.get_pages().get(&1).unwrap();
        assert_eq!(PageFrame::of(&doc, page).shown(), shown, "{rotate}");
        let prepared = prepare(&pdf, &Spec { visible: Some(v), ..spec() }).unwrap();
        let doc = load(&prepared.pdf).unwrap();
        let annots = doc.get_dictionary(page).unwrap().get(b"Annots").unwrap().as_array().unwrap().clone();
        let widget = doc.get_dictionary(annots[0].as_reference().unwrap()).unwrap();
        let got: Vec<f32> =
            widget.get(b"Rect").unwrap().as_array().unwrap().iter().map(|o| o.as_float().unwrap()).collect();
        assert_eq!(got, rect, "{rotate} {crop:?}");
        let ap = widget.get(b"AP").unwrap().as_dict().unwrap().get(b"N").unwrap().as_reference().unwrap();
        let ap = doc.get_object(ap).unwrap().as_stream().unwrap();
        let m = ap.dict.get(b"Matrix").ok().map(|m| {
            let m: Vec<f32> = m.as_array().unwrap().iter().map(|o| o.as_float().unwrap()).collect();
            <[f32; 6]>::try_from(m).unwrap()
        });
        assert_eq!(m, matrix, "{rotate}");
        // The box's own space is the box as shown: its text is laid out for 200 x 60, whatever the turn.
        let bbox: Vec<f32> =
            ap.dict.get(b"BBox").unwrap().as_array().unwrap().iter().map(|o| o.as_float().unwrap()).collect();
        assert_eq!(bbox, [0.0, 0.0, 200.0, 60.0]);
    }
    // A box past the page's edge as shown is refused with what the page measures.
    let landscape = turned_pdf(90, false, None);
    let off = Spec { visible: Some(Visible::parse("1,30,700,200,60").unwrap()), ..spec() };
    let e = prepare(&landscape, &off).unwrap_err().to_string();
    assert!(e.contains("does not fit on page 1") && e.contains("842 x 595"), "{e}");
    assert!(prepare(&turned_pdf(0, false, None), &off).is_ok(), "on the upright page it fits");
}

/// [`sample_pdf`] with a form made by its author: an empty signature field `Imzo` (its own widget, a box
/// on page `page` at 300,100 220 x 60) and a text field, as a portal's template has them.
pub(crate) fn template_pdf(pages: usize, page: usize) -> Vec<u8> {
    template_pdf_with(pages, page, [300, 100, 520, 160])
}

/// [`template_pdf`] with the signature field's box at `rect` (all zero: a field that is not seen).
fn template_pdf_with(pages: usize, page: usize, rect: [i64; 4]) -> Vec<u8> {
    let mut doc = load(&sample_pdf(pages, false)).unwrap();
    let page_id = *doc.get_pages().get(&(page as u32)).unwrap();
    let sig = doc.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Widget", "FT" => "Sig", "T" => Object::string_literal("Imzo"),
        "F" => 4, "P" => page_id,
        "Rect" => rect.iter().map(|&v| Object::Integer(v)).collect::<Vec<_>>(),
    });
    let text = doc.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Widget", "FT" => "Tx", "T" => Object::string_literal("Ism"),
        "V" => Object::string_literal("Ali Valiyev"), "P" => page_id,
        "Rect" => vec![72.into(), 600.into(), 300.into(), 620.into()],
    });
    doc.get_dictionary_mut(page_id).unwrap().set("Annots", vec![sig.into(), text.into()]);
    let form = doc.add_object(dictionary! {"Fields" => vec![sig.into(), text.into()]});
    let root = doc.trailer.get(b"Root").unwrap().as_reference().unwrap();
    doc.get_dictionary_mut(root).unwrap().set("AcroForm", form);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// The object id of field `name`.
fn field_id(pdf: &[u8], name: &str) -> ObjectId {
    let doc = load(pdf).unwrap();
    signature_fields(&doc).into_iter().find(|f| f.name == name).and_then(|f| f.id).unwrap_or_else(|| {
        doc.objects
            .iter()
            .find(|(_, o)| o.as_dict().ok().and_then(|d| d.get(b"T").ok()) == Some(&Object::string_literal(name)))
            .map(|(id, _)| *id)
            .unwrap()
    })
}

#[test]
fn a_form_s_empty_signature_field_is_filled_where_its_author_put_it() {
    let (key, cert) = signer();
    let template = template_pdf(2, 2);
    let spec = Spec { field: Some("Imzo"), ..spec() };
    let prepared = prepare(&template, &spec).unwrap();
    assert_eq!(prepared.field, "Imzo");
    let seen = inspect_prepared(&prepared.pdf).unwrap();
    assert_eq!((seen.field.as_str(), seen.field_page), ("Imzo", Some(2)));
    let doc = load(&prepared.pdf).unwrap();
    // Still one signature field and one text field: the empty one was filled, none was added.
    assert_eq!(signature_fields(&doc).len(), 1);
    let id = field_id(&template, "Imzo");
    let field = doc.get_dictionary(id).unwrap();
    let rect: Vec<f32> =
        field.get(b"Rect").unwrap().as_array().unwrap().iter().map(|o| o.as_float().unwrap()).collect();
    assert_eq!(rect, [300.0, 100.0, 520.0, 160.0], "its author's box");
    let ap = field.get(b"AP").unwrap().as_dict().unwrap().get(b"N").unwrap().as_reference().unwrap();
    assert_eq!(appearance_text(&doc, ap)[..2], ["Digitally signed by", "Ali Valiyev"]);
    let scheme = crate::SignScheme::EcdsaP256Sha256;
    let cms = PreparedCms::with_profile(std::slice::from_ref(&cert), scheme, &seen.sha256, Profile::Pades, spec.time)
        .unwrap();
    let sig = key.sign(scheme, &cms.to_be_signed()).unwrap();
    let signed = prepared.complete(&cms.finish(&sig)).unwrap();
    let sigs = verify_all(&signed);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].field, "Imzo");
    // Once signed, it is not filled again; and a box of its own would contradict the field's.
    let e = prepare(&signed, &spec).unwrap_err().to_string();
    assert!(e.contains("already signed"), "{e}");
    let boxed = Spec { visible: Some(Visible::parse("1,40,40,200,60").unwrap()), ..spec };
    let e = prepare(&template, &boxed).unwrap_err().to_string();
    assert!(e.contains("its own place on the page"), "{e}");
    // A name the PDF does not have still makes a new field beside it.
    let other = prepare(&template, &Spec { field: Some("Boshqa"), ..spec }).unwrap();
    assert_eq!(signature_fields(&load(&other.pdf).unwrap()).len(), 2);
    inspect_prepared(&other.pdf).unwrap();
    // The name of the form's text field is taken: a second field of that name would make the form's
    // names ambiguous.
    let e = prepare(&template, &Spec { field: Some("Ism"), ..spec }).unwrap_err().to_string();
    assert!(e.contains("already has a field named \"Ism\" that is not a signature field"), "{e}");
    assert_eq!(field_names(&load(&template).unwrap()), ["Imzo".to_string(), "Ism".to_string()].into());
}

#[test]
fn the_signer_refuses_a_filled_field_that_changed_more_than_its_value_and_appearance() {
    let template = template_pdf(1, 1);
    let spec = Spec { field: Some("Imzo"), ..spec() };
    let sig_field = field_id(&template, "Imzo");
    let text_field = field_id(&template, "Ism");
    // The field moved over the page's text, or made hidden, in the same revision.
    for (key, value) in
        [("Rect", Object::Array(vec![0.into(), 0.into(), 595.into(), 842.into()])), ("F", Object::Integer(2))]
    {
        let p = prepare_with(&template, &spec, |inc| {
            inc.new_document.get_dictionary_mut(sig_field).unwrap().set(key, value);
            Ok(())
        })
        .unwrap();
        let e = inspect_prepared(&p.pdf).unwrap_err().to_string();
        assert!(e.contains("changed beyond adding a signature field"), "{key}: {e}");
    }
    // A text field given a value in the same revision is not a signature field being filled.
    let p = prepare_with(&template, &spec, |inc| {
        inc.opt_clone_object_to_new_document(text_field).unwrap();
        let d = inc.new_document.get_dictionary_mut(text_field).unwrap();
        d.set("V", Object::string_literal("Vali Aliyev"));
        Ok(())
    })
    .unwrap();
    let e = inspect_prepared(&p.pdf).unwrap_err().to_string();
    assert!(e.contains("changed"), "{e}");
}

#[test]
fn a_visible_box_s_lines_stay_inside_it_whatever_its_height() {
    let font = font::SigFont::load().unwrap();
    let four: Vec<String> = ["Digitally signed by", "Ali Valiyev", "Date: 2026-12-01 12:00 UTC", "Reason: Roziman"]
        .map(String::from)
        .to_vec();
    for lines in [&four[..3], &four[..]] {
        for h in [10.0f32, 14.0, 20.0, 30.0, 40.0, 60.0, 80.0, 200.0] {
            let (content, _) = appearance(220.0, h, &font, lines);
            let content = String::from_utf8(content).unwrap();
            // "/KalitF1 SIZE Tf LEADING TL 4 FIRST_BASELINE Td", then one "<…> Tj T*" per line drawn.
            let head: Vec<f32> = content
                .split_once("/KalitF1 ")
                .unwrap()
                .1
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .take(4)
                .collect();
            let [size, leading, _, first] = head[..] else { panic!("{content}") };
            let drawn = content.matches(" Tj T*").count();
            assert!(drawn >= 1 && drawn <= lines.len(), "{h}: {drawn} lines");
            let last = first - leading * (drawn - 1) as f32;
            assert!(first + 0.76 * size <= h, "{h}: the first line reaches above the box: {content}");
            assert!(last - 0.24 * size >= 1.9, "{h}: the last line's descenders leave the box: {content}");
            if h >= 60.0 {
                assert_eq!(drawn, lines.len(), "{h}: every line fits");
            }
        }
    }
}
