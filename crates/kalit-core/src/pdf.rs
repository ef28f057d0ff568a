//! PDF signatures (PAdES, ETSI EN 319 142-1) on lopdf, by incremental update only: the original bytes
//! stay untouched, so earlier signatures stay valid.
//!
//! Signing is three steps, so that the private key can live on another device:
//! 1. [`prepare`] appends a revision with a signature field whose value reserves a hole (`/Contents`)
//!    and whose `/ByteRange` names everything but the hole;
//! 2. the signer checks the prepared file with [`inspect_prepared`] (it recomputes the digest over the
//!    byte ranges itself, and refuses a revision that changes anything but the signature's own objects)
//!    and makes a detached CMS over that digest with the PAdES profile;
//! 3. [`Prepared::complete`] writes the CMS, hex-encoded, into the hole.
//!
//! [`signatures`] reads every signature of a PDF back for verification, with what changed after it.

use std::collections::BTreeSet;

use lopdf::{Dictionary, Document, IncrementalDocument, LoadOptions, Object, ObjectId, StringFormat, dictionary};
use time::OffsetDateTime;

use crate::CoreError;
use crate::digest::{HashAlg, Hasher};

mod font;
mod levels;
pub use levels::{Finished, PublicData, finish};

/// Largest PDF accepted.
pub const MAX_PDF_LEN: usize = 256 * 1024 * 1024;
/// Bytes reserved for a signature's CMS (a PAdES B-T with an RSA-3072 chain and a TSA token fits).
pub const DEFAULT_RESERVE: usize = 16 * 1024;
/// Most decompressed bytes one stream may grow to while a PDF is read (decompression bombs).
const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;
/// How deep the field tree is followed.
const MAX_FIELD_DEPTH: usize = 16;
/// The ByteRange placeholder: ten digits, patched in place once the offsets are known.
const PLACEHOLDER: i64 = 9_999_999_999;

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidInput(msg.into())
}

/// What kind of signature a prepared revision holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A signer's signature: `/SubFilter /ETSI.CAdES.detached`, a CMS in the hole.
    Signature,
    /// A document timestamp (PAdES-B-LTA): `/Type /DocTimeStamp /SubFilter /ETSI.RFC3161`, an RFC
    /// 3161 token in the hole.
    DocTimeStamp,
}

/// What to put in the signature dictionary.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The field's name (`/T`); default `KalitSignatureN`.
    pub field: Option<&'a str>,
    /// Why the person signs (`/Reason`).
    pub reason: Option<&'a str>,
    /// The signer's name (`/Name`).
    pub name: Option<&'a str>,
    /// The time claimed by the signer's device (`/M`); a trusted time comes from a timestamp.
    pub time: OffsetDateTime,
    /// Bytes reserved for the CMS or token.
    pub reserve: usize,
    /// Signature or document timestamp.
    pub kind: Kind,
    /// A visible signature: a box on a page with the signer's name, the time and the reason; `None`
    /// for an invisible one.
    pub visible: Option<Visible>,
    /// The language of the visible box's words.
    pub lang: kalit_proto::session::BoxLanguage,
}

/// Where a visible signature goes: a page (1 is the first) and a box in PDF points (1/72 inch) from the
/// lower-left corner of the page as it is shown (its `/CropBox`, turned by its `/Rotate`), so that a box
/// on a landscape scan lands where it is seen and its text reads upright. A box that does not fit on the
/// page is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visible {
    /// Page number, from 1.
    pub page: u32,
    /// Left edge.
    pub x: f32,
    /// Bottom edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl Visible {
    /// Reads `PAGE,X,Y,W,H` (numbers in points).
    pub fn parse(s: &str) -> Result<Visible, CoreError> {
        let bad =
            || invalid(format!("visible box {s:?}: expected PAGE,X,Y,WIDTH,HEIGHT in points, e.g. 1,72,72,220,60"));
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [page, x, y, w, h] = parts[..] else { return Err(bad()) };
        let num = |t: &str| t.parse::<f32>().ok().filter(|v| v.is_finite() && (0.0..=14_400.0).contains(v));
        let v = Visible {
            page: page.parse().ok().filter(|p| *p >= 1).ok_or_else(bad)?,
            x: num(x).ok_or_else(bad)?,
            y: num(y).ok_or_else(bad)?,
            width: num(w).filter(|v| *v >= 20.0).ok_or_else(bad)?,
            height: num(h).filter(|v| *v >= 10.0).ok_or_else(bad)?,
        };
        Ok(v)
    }
}

/// A page as it is shown: its visible box (`/CropBox`, else `/MediaBox`, in default user space) and how
/// far it is turned clockwise (`/Rotate`); all three may be inherited from the page tree.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PageFrame {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    /// 0, 90, 180 or 270.
    rotate: u16,
}

/// A rectangle `[x0 y0 x1 y1]` (its numbers direct or referenced), with its corners put in order; `None`
/// unless it is four finite numbers.
fn rect_of(doc: &Document, o: &Object) -> Option<[f32; 4]> {
    let a = resolve(doc, o)?.as_array().ok()?;
    let n: Vec<f32> = a.iter().filter_map(|o| resolve(doc, o)?.as_float().ok()).collect();
    let [a, b, c, d] = n[..] else { return None };
    let r = [a.min(c), b.min(d), a.max(c), b.max(d)];
    r.iter().all(|v| v.is_finite()).then_some(r)
}

impl PageFrame {
    fn of(doc: &Document, page: ObjectId) -> PageFrame {
        // The first value found on the page or its ancestors (at most 32 levels: a loop ends too).
        let inherited = |key: &[u8]| -> Option<&Object> {
            let mut id = page;
            for _ in 0..32 {
                let d = doc.get_dictionary(id).ok()?;
                if let Ok(o) = d.get(key) {
                    return resolve(doc, o);
                }
                id = d.get(b"Parent").ok()?.as_reference().ok()?;
            }
            None
        };
        let rect = |key: &[u8]| rect_of(doc, inherited(key)?).filter(|r| r[2] > r[0] && r[3] > r[1]);
        // Readers fall back to US Letter when a page states no box.
        let [x0, y0, x1, y1] = rect(b"CropBox").or_else(|| rect(b"MediaBox")).unwrap_or([0.0, 0.0, 612.0, 792.0]);
        let rotate = inherited(b"Rotate")
            .and_then(|o| o.as_i64().ok())
            .map(|r| r.rem_euclid(360))
            .filter(|r| r % 90 == 0)
            .map_or(0, |r| r as u16);
        PageFrame { x0, y0, x1, y1, rotate }
    }

    /// Width and height of the page as shown.
    fn shown(&self) -> (f32, f32) {
        self.shown_size([self.x0, self.y0, self.x1, self.y1])
    }

    /// Where a box measured on the page as shown lies in the page's own space (`/Rect`), and the
    /// appearance's `/Matrix` that turns it back so that its text reads upright.
    fn place(&self, v: &Visible) -> Result<([f32; 4], [f32; 6]), CoreError> {
        let (w, h) = self.shown();
        if v.x + v.width > w + 0.01 || v.y + v.height > h + 0.01 {
            return Err(invalid(format!(
                "the visible box {},{},{},{} does not fit on page {}, which is {} x {} points as shown",
                v.x, v.y, v.width, v.height, v.page, w, h
            )));
        }
        let (dx, dy, dw, dh) = (v.x, v.y, v.width, v.height);
        let (x0, y0, x1, y1) = (self.x0, self.y0, self.x1, self.y1);
        let rect = match self.rotate {
            90 => [x1 - dy - dh, y0 + dx, x1 - dy, y0 + dx + dw],
            180 => [x1 - dx - dw, y1 - dy - dh, x1 - dx, y1 - dy],
            270 => [x0 + dy, y1 - dx - dw, x0 + dy + dh, y1 - dx],
            _ => [x0 + dx, y0 + dy, x0 + dx + dw, y0 + dy + dh],
        };
        Ok((rect, self.turn()))
    }

    /// The `/Matrix` that turns an appearance drawn upright back against the page's `/Rotate`.
    fn turn(&self) -> [f32; 6] {
        match self.rotate {
            90 => [0.0, 1.0, -1.0, 0.0, 0.0, 0.0],
            180 => [-1.0, 0.0, 0.0, -1.0, 0.0, 0.0],
            270 => [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
            _ => [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        }
    }

    /// Width and height as shown of a `/Rect` on this page.
    fn shown_size(&self, rect: [f32; 4]) -> (f32, f32) {
        let (w, h) = (rect[2] - rect[0], rect[3] - rect[1]);
        if self.rotate % 180 == 90 { (h, w) } else { (w, h) }
    }
}

/// An empty signature field the PDF already has (a form's "sign here"), to be filled instead of adding
/// one: a field that is its own widget, its box (`/Rect`, when it has an area) and its page.
struct Fill {
    id: ObjectId,
    rect: Option<[f32; 4]>,
    page: Option<ObjectId>,
}

impl Fill {
    fn of(doc: &Document, f: &SigField) -> Result<Fill, CoreError> {
        if f.value.is_some() {
            return Err(invalid(format!("the PDF's field {:?} is already signed", f.name)));
        }
        let id = f.id.ok_or_else(|| invalid(format!("the field {:?} is not an object of its own", f.name)))?;
        let d = doc.get_dictionary(id).map_err(|_| invalid(format!("the field {:?} is not a dictionary", f.name)))?;
        if d.has(b"Kids") {
            return Err(invalid(format!(
                "the field {:?} has several widgets; Kalit fills a signature field that is its own widget",
                f.name
            )));
        }
        let rect =
            d.get(b"Rect").ok().and_then(|o| rect_of(doc, o)).filter(|r| r[2] - r[0] >= 1.0 && r[3] - r[1] >= 1.0);
        // Its page: the one whose /Annots hold it (its /P may lie or be missing).
        let page = doc.get_pages().into_values().find(|p| {
            doc.get_dictionary(*p)
                .ok()
                .and_then(|pd| pd.get(b"Annots").ok())
                .and_then(|a| resolve(doc, a))
                .and_then(|a| a.as_array().ok())
                .is_some_and(|a| a.iter().any(|o| o.as_reference().ok() == Some(id)))
        });
        Ok(Fill { id, rect, page })
    }
}

/// The smallest size a visible signature's text is made to fit its box; below it, lines are cut.
const MIN_TEXT_SIZE: f32 = 6.0;

/// The appearance stream of a visible signature: a light box with a border and up to four lines, made
/// smaller (down to 6 points) when the widest does not fit and then cut to the box's width
/// (`font::SigFont::fit`); returns the stream and the glyphs it draws.
fn appearance(w: f32, h: f32, font: &font::SigFont, lines: &[String]) -> (Vec<u8>, Vec<font::Glyph>) {
    let room = (w - 8.0).max(0.0);
    // The lines fit between 3 points of margin above and the last line's descenders 2 points above the
    // bottom: a first baseline one size below the top, each next one 1.2 sizes lower, descenders of 0.24.
    // At least 5 points, unless even one line fits only smaller (a box of 10 to 11 points).
    let n = lines.len().max(1) as f32;
    let one_line = (h - 5.0) / 1.24;
    let by_height = ((h - 5.0) / (1.24 + 1.2 * (n - 1.0))).clamp(one_line.min(5.0), 12.0);
    let widest = lines.iter().map(|l| font.measure(l)).fold(0.0, f32::max);
    let size = if widest * by_height <= room {
        by_height
    } else {
        (room / widest).clamp(MIN_TEXT_SIZE.min(by_height), by_height)
    };
    let mut ops = format!(
        "q 0.94 0.96 1 rg 0 0 {w:.2} {h:.2} re f Q\nq 0.16 0.27 0.55 RG 1 w 0.5 0.5 {:.2} {:.2} re S Q\nBT 0 0 0 rg /KalitF1 {size:.2} Tf {:.2} TL 4 {:.2} Td\n",
        w - 1.0,
        h - 1.0,
        size * 1.2,
        h - size - 3.0
    );
    let mut used = Vec::new();
    // In a box too low for every line even at 5 points, the last lines are left out rather than drawn
    // past its border.
    let fitting = (((h - 5.0) / size - 1.24) / 1.2 + 1.0).floor().max(1.0) as usize;
    for l in lines.iter().take(fitting) {
        let glyphs = font.fit(l, size, room);
        ops.push_str(&font::SigFont::show(&glyphs));
        ops.push_str(" T*\n");
        used.extend(glyphs);
    }
    ops.push_str("ET\n");
    (ops.into_bytes(), used)
}

/// A PDF with a signature hole, waiting for its CMS.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The whole prepared file.
    pub pdf: Vec<u8>,
    /// `[0, a, b, c]`: the signed bytes are `pdf[0..a]` and `pdf[b..b + c]`; the hole is `pdf[a..b]`.
    pub byte_range: [usize; 4],
    /// The signature field's name.
    pub field: String,
}

impl Prepared {
    /// The digest of the signed byte ranges.
    pub fn digest(&self, h: HashAlg) -> Vec<u8> {
        digest_ranges(&self.pdf, self.byte_range, h)
    }

    /// The digests of the signed byte ranges for each of `algs`, in one pass over the file.
    pub fn digests(&self, algs: &[HashAlg]) -> Vec<Vec<u8>> {
        let [_, a, b, c] = self.byte_range;
        let mut hashers: Vec<Hasher> = algs.iter().map(|h| Hasher::new(*h)).collect();
        for part in [&self.pdf[..a], &self.pdf[b..b + c]] {
            hashers.iter_mut().for_each(|h| h.update(part));
        }
        hashers.into_iter().map(Hasher::finish).collect()
    }

    /// Writes `der` (the CMS, or for a document timestamp the token) into the hole.
    pub fn complete(mut self, der: &[u8]) -> Result<Vec<u8>, CoreError> {
        let [_, a, b, _] = self.byte_range;
        let room = (b - a - 2) / 2;
        if der.len() > room {
            return Err(invalid(format!(
                "the signature ({} bytes) does not fit the {room} bytes reserved for it in the PDF",
                der.len()
            )));
        }
        let hex = hex::encode_upper(der);
        self.pdf[a + 1..a + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.pdf)
    }
}

fn digest_ranges(pdf: &[u8], br: [usize; 4], h: HashAlg) -> Vec<u8> {
    let mut hasher = Hasher::new(h);
    hasher.update(&pdf[br[0]..br[0] + br[1]]);
    hasher.update(&pdf[br[2]..br[2] + br[3]]);
    hasher.finish()
}

/// Reads a PDF with Kalit's limits: at most [`MAX_PDF_LEN`], streams decompressed to at most 64 MiB,
/// not encrypted, and a cross-reference that reads as written (a repaired file has no reliable
/// revisions to append to or to verify).
pub fn load(pdf: &[u8]) -> Result<Document, CoreError> {
    if pdf.len() > MAX_PDF_LEN {
        return Err(invalid(format!("the PDF is larger than {} MiB", MAX_PDF_LEN >> 20)));
    }
    if !pdf.starts_with(b"%PDF-") {
        return Err(invalid("not a PDF (it does not start with %PDF-)"));
    }
    let options = LoadOptions { max_decompressed_size: Some(MAX_DECOMPRESSED), ..LoadOptions::default() };
    let doc = Document::load_mem_with_options(pdf, options).map_err(|e| invalid(format!("unreadable PDF: {e}")))?;
    if doc.is_encrypted() || doc.trailer.has(b"Encrypt") {
        return Err(invalid("the PDF is encrypted: Kalit signs and verifies unencrypted PDFs only"));
    }
    if doc.xref_recovery.is_some() || doc.xref_start == 0 {
        return Err(invalid("the PDF's cross-reference table is damaged (repair the file, e.g. by saving it again)"));
    }
    Ok(doc)
}

fn catalog_id(doc: &Document) -> Result<ObjectId, CoreError> {
    doc.trailer.get(b"Root").and_then(Object::as_reference).map_err(|_| invalid("the PDF has no catalog (/Root)"))
}

/// Follows a reference (or returns the direct object).
fn resolve<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Object> {
    doc.dereference(o).ok().map(|(_, o)| o)
}

fn name_of(o: Option<&Object>) -> Option<&[u8]> {
    o.and_then(|o| o.as_name().ok())
}

fn text_of(doc: &Document, d: &Dictionary, key: &[u8]) -> Option<String> {
    let o = resolve(doc, d.get(key).ok()?)?;
    let bytes = o.as_str().ok()?;
    Some(lopdf::decode_text_string(o).unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned()))
}

/// One signature field: its name, its object id and its value's object id (when signed).
#[derive(Debug, Clone)]
struct SigField {
    name: String,
    /// The field's own object (its widget, when merged), when it is indirect.
    id: Option<ObjectId>,
    value: Option<ObjectId>,
}

/// Every signature field of the document, through the AcroForm's field tree (bounded depth, each node
/// visited once).
fn signature_fields(doc: &Document) -> Vec<SigField> {
    let mut out = Vec::new();
    form_fields(doc, |name, f, d| {
        if name_of(d.get(b"FT").ok()) == Some(b"Sig") {
            let value = d.get(b"V").and_then(Object::as_reference).ok();
            out.push(SigField { name, id: f.as_reference().ok(), value });
        }
    });
    out.reverse();
    out
}

/// The full names of the document's fields of every kind (a new field must not take one: names are
/// unique in a form).
fn field_names(doc: &Document) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    form_fields(doc, |name, _, _| {
        out.insert(name);
    });
    out
}

/// Calls `visit` with the full name, the object and the dictionary of each terminal field of the
/// AcroForm's field tree (bounded depth and count, each node visited once).
fn form_fields<'d>(doc: &'d Document, mut visit: impl FnMut(String, &'d Object, &'d Dictionary)) {
    let mut count = 0usize;
    let Ok(catalog) = doc.catalog() else { return };
    let Some(form) = catalog.get(b"AcroForm").ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_dict().ok()) else {
        return;
    };
    let Some(fields) = form.get(b"Fields").ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_array().ok()) else {
        return;
    };
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(&Object, usize, String)> = fields.iter().map(|f| (f, 0, String::new())).collect();
    while let Some((f, depth, prefix)) = stack.pop() {
        if depth > MAX_FIELD_DEPTH || count > 10_000 {
            break;
        }
        if let Ok(id) = f.as_reference()
            && !seen.insert(id)
        {
            continue;
        }
        let Some(d) = resolve(doc, f).and_then(|o| o.as_dict().ok()) else { continue };
        let part = text_of(doc, d, b"T").unwrap_or_default();
        let name = match (prefix.is_empty(), part.is_empty()) {
            (true, _) => part,
            (false, true) => prefix.clone(),
            (false, false) => format!("{prefix}.{part}"),
        };
        if let Ok(kids) = d.get(b"Kids").and_then(Object::as_array)
            && kids.iter().any(|k| resolve(doc, k).and_then(|o| o.as_dict().ok()).is_some_and(|k| k.has(b"T")))
        {
            stack.extend(kids.iter().map(|k| (k, depth + 1, name.clone())));
            continue;
        }
        count += 1;
        visit(name, f, d);
    }
}

fn pdf_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Refuses a document whose certification signature forbids any change (DocMDP P=1).
fn check_doc_mdp(doc: &Document) -> Result<(), CoreError> {
    let Ok(catalog) = doc.catalog() else { return Ok(()) };
    let Some(perms) = catalog.get(b"Perms").ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_dict().ok()) else {
        return Ok(());
    };
    let Some(sig) = perms.get(b"DocMDP").ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_dict().ok()) else {
        return Ok(());
    };
    let refs = sig.get(b"Reference").ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_array().ok());
    for r in refs.into_iter().flatten() {
        let p = resolve(doc, r)
            .and_then(|o| o.as_dict().ok())
            .and_then(|d| d.get(b"TransformParams").ok())
            .and_then(|o| resolve(doc, o))
            .and_then(|o| o.as_dict().ok())
            .and_then(|d| d.get(b"P").ok())
            .and_then(|o| o.as_i64().ok());
        if p == Some(1) {
            return Err(CoreError::Refused(
                "the PDF is certified with \"no changes allowed\": a new signature would invalidate it".into(),
            ));
        }
    }
    Ok(())
}

/// Appends a revision with an invisible signature field on the first page and a hole of
/// `spec.reserve` bytes, and fills in its `/ByteRange`.
pub fn prepare(input: &[u8], spec: &Spec<'_>) -> Result<Prepared, CoreError> {
    prepare_with(input, spec, |_| Ok(()))
}

/// [`prepare`] for a PDF the caller owns: the new revision is appended to `input` itself, which is never
/// copied (a 100 MiB PDF stays one 100 MiB buffer).
pub fn prepare_owned(mut input: Vec<u8>, spec: &Spec<'_>) -> Result<Prepared, CoreError> {
    let (tail, byte_range, field) = prepare_tail(&input, spec, |_| Ok(()))?;
    input.extend_from_slice(&tail);
    Ok(Prepared { pdf: input, byte_range, field })
}

/// [`prepare_owned`], and the digests of the signed byte ranges for `algs`: the original bytes are hashed
/// on a second thread while this one reads the PDF's structure, so on two cores a large PDF costs about
/// one pass of hashing, not a parse and then a hash.
pub fn prepare_and_digest(
    input: Vec<u8>,
    spec: &Spec<'_>,
    algs: &[HashAlg],
) -> Result<(Prepared, Vec<Vec<u8>>), CoreError> {
    let (hashers, prepared) = std::thread::scope(|s| {
        let hashing = s.spawn(|| {
            algs.iter()
                .map(|h| {
                    let mut hasher = Hasher::new(*h);
                    hasher.update(&input);
                    hasher
                })
                .collect::<Vec<_>>()
        });
        let prepared = prepare_tail(&input, spec, |_| Ok(()));
        (hashing.join(), prepared)
    });
    let hashers = hashers.map_err(|_| CoreError::Internal("the hashing thread failed".into()))?;
    let (tail, byte_range, field) = prepared?;
    let [_, a, b, c] = byte_range;
    let start = input.len();
    let digests = hashers
        .into_iter()
        .map(|mut h| {
            // The rest of the first range (the new revision up to the hole), then the second range.
            h.update(&tail[..a - start]);
            h.update(&tail[b - start..b - start + c]);
            h.finish()
        })
        .collect();
    let mut pdf = input;
    pdf.extend_from_slice(&tail);
    Ok((Prepared { pdf, byte_range, field }, digests))
}

/// [`prepare`], with `extra` changes in the same revision (tests play a lying computer with it).
fn prepare_with(
    input: &[u8],
    spec: &Spec<'_>,
    extra: impl FnOnce(&mut IncrementalDocument) -> Result<(), CoreError>,
) -> Result<Prepared, CoreError> {
    let (tail, byte_range, field) = prepare_tail(input, spec, extra)?;
    Ok(Prepared { pdf: [input, &tail[..]].concat(), byte_range, field })
}

/// An incremental update of `input` (read as `doc`) that lopdf never copies: its writer puts the previous
/// revision's bytes first and looks only at their last byte, so it gets a stand-in of the same length
/// (zeroed memory the system maps lazily, never touched but its last byte), and [`new_revision`] drops
/// what it writes of it.
fn incremental(input: &[u8], doc: Document) -> IncrementalDocument {
    let mut stand_in = vec![0u8; input.len()];
    if let (Some(last), Some(l)) = (stand_in.last_mut(), input.last()) {
        *last = *l;
    }
    IncrementalDocument::create_from(stand_in, doc)
}

/// The bytes `inc` (made by [`incremental`] for an input of `input_len` bytes) appends: its new revision.
fn new_revision(inc: &mut IncrementalDocument, input_len: usize, capacity: usize) -> Result<Vec<u8>, CoreError> {
    let mut tail = Tail { skip: input_len, out: Vec::with_capacity(capacity) };
    inc.save_to(&mut tail).map_err(|e| invalid(format!("cannot write the PDF: {e}")))?;
    Ok(tail.out)
}

/// Everything an incremental save writes past `skip` bytes.
struct Tail {
    skip: usize,
    out: Vec<u8>,
}

impl std::io::Write for Tail {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let skipped = self.skip.min(buf.len());
        self.skip -= skipped;
        self.out.extend_from_slice(&buf[skipped..]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The new revision for `input` (the bytes that follow it), its byte range (over `input` and the new
/// revision) and the field's name.
fn prepare_tail(
    input: &[u8],
    spec: &Spec<'_>,
    extra: impl FnOnce(&mut IncrementalDocument) -> Result<(), CoreError>,
) -> Result<(Vec<u8>, [usize; 4], String), CoreError> {
    if spec.reserve == 0 || spec.reserve > 256 * 1024 {
        return Err(invalid("the signature reserve is 1 byte to 256 KiB"));
    }
    let doc = load(input)?;
    check_doc_mdp(&doc)?;
    let existing = signature_fields(&doc);
    // A field the PDF has (with no signature yet) is filled; any other name makes a new field.
    let fill = match spec.field.and_then(|f| existing.iter().find(|e| e.name == f)) {
        Some(_) if spec.visible.is_some() => {
            return Err(invalid(format!(
                "the PDF has a field named {:?} with its own place on the page: sign into it without a visible box, or give another name",
                spec.field.unwrap_or_default()
            )));
        }
        Some(e) => Some((Fill::of(&doc, e)?, e.name.clone())),
        None => None,
    };
    let taken = field_names(&doc);
    let field = match (spec.field, &fill) {
        (_, Some((_, name))) => name.clone(),
        (Some(f), None) if f.is_empty() || f.contains('.') || f.len() > 100 => {
            return Err(invalid("a field name is 1 to 100 characters without a dot"));
        }
        (Some(f), None) if taken.contains(f) => {
            return Err(invalid(format!(
                "the PDF already has a field named {f:?} that is not a signature field (a text box or a checkbox, say): give the signature another name"
            )));
        }
        (Some(f), None) => f.to_owned(),
        (None, None) => (1..).map(|n| format!("KalitSignature{n}")).find(|n| !taken.contains(n)).unwrap_or_default(),
    };
    let fill = fill.map(|(f, _)| f);
    let root = catalog_id(&doc)?;
    let page_no = spec.visible.map_or(1, |v| v.page);
    let page = *doc
        .get_pages()
        .get(&page_no)
        .ok_or_else(|| invalid(format!("the PDF has no page {page_no} (it has {})", doc.get_pages().len())))?;
    // Where the box goes (width and height as shown, /Rect, /Matrix), read before the document becomes
    // the base of the new revision: the asked box, or the box of the field being filled.
    let placed = match (&fill, spec.visible) {
        (Some(Fill { rect: Some(rect), page: Some(p), .. }), _) => {
            let frame = PageFrame::of(&doc, *p);
            let (w, h) = frame.shown_size(*rect);
            Some((w, h, *rect, frame.turn()))
        }
        (Some(_), _) => None,
        (None, Some(v)) => {
            let (rect, matrix) = PageFrame::of(&doc, page).place(&v)?;
            Some((v.width, v.height, rect, matrix))
        }
        (None, None) => None,
    };
    let mut inc = incremental(input, doc);
    let nd = &mut inc.new_document;

    let mut sig = Dictionary::new();
    let placeholder = || Object::Array(vec![0.into(), PLACEHOLDER.into(), PLACEHOLDER.into(), PLACEHOLDER.into()]);
    match spec.kind {
        Kind::Signature => {
            sig.set("Type", Object::Name(b"Sig".to_vec()));
            sig.set("Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
            sig.set("SubFilter", Object::Name(b"ETSI.CAdES.detached".to_vec()));
            sig.set("M", Object::string_literal(pdf_date(spec.time)));
        }
        Kind::DocTimeStamp => {
            sig.set("Type", Object::Name(b"DocTimeStamp".to_vec()));
            sig.set("Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
            sig.set("SubFilter", Object::Name(b"ETSI.RFC3161".to_vec()));
        }
    }
    sig.set("ByteRange", placeholder());
    sig.set("Contents", Object::String(vec![0; spec.reserve], StringFormat::Hexadecimal));
    if let Some(r) = spec.reason {
        sig.set("Reason", lopdf::text_string(r));
    }
    if let Some(n) = spec.name {
        sig.set("Name", lopdf::text_string(n));
    }
    let sig_id = nd.try_add_object(sig).map_err(|e| invalid(format!("PDF: {e}")))?;

    let r = |f: f32| Object::Real(f);
    // The appearance of a visible signature, in the box asked for or in the filled field's.
    let ap_id = match placed {
        Some((width, height, _, matrix)) => {
            let when = spec.time.to_offset(time::UtcOffset::UTC);
            // The name on a line of its own: it is what a reader looks for, and a long one may be cut.
            use kalit_proto::session::BoxLanguage;
            let (signed_by, date, because) = match spec.lang {
                BoxLanguage::En => ("Digitally signed by", "Date", "Reason"),
                BoxLanguage::Uz => ("Elektron imzo bilan imzolagan:", "Sana", "Sabab"),
                BoxLanguage::Ru => ("Подписано электронной подписью:", "Дата", "Причина"),
            };
            let mut lines = vec![
                signed_by.to_owned(),
                spec.name.unwrap_or("(signer)").to_owned(),
                format!(
                    "{date}: {:04}-{:02}-{:02} {:02}:{:02} UTC",
                    when.year(),
                    when.month() as u8,
                    when.day(),
                    when.hour(),
                    when.minute()
                ),
            ];
            if let Some(reason) = spec.reason {
                lines.push(format!("{because}: {reason}"));
            }
            let font = font::SigFont::load()?;
            let (content, used) = appearance(width, height, &font, &lines);
            let font_id = font.add_to(nd, &used)?;
            let mut ap_dict = dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "BBox" => vec![r(0.0), r(0.0), r(width), r(height)],
                "Resources" => dictionary! {"Font" => dictionary! {"KalitF1" => font_id}},
            };
            if matrix != [1.0, 0.0, 0.0, 1.0, 0.0, 0.0] {
                ap_dict.set("Matrix", matrix.into_iter().map(r).collect::<Vec<_>>());
            }
            Some(nd.try_add_object(lopdf::Stream::new(ap_dict, content)).map_err(|e| invalid(format!("PDF: {e}")))?)
        }
        None => None,
    };
    let pdf_err = |e: lopdf::Error| invalid(format!("PDF: {e}"));
    // The field being filled gains its value and its appearance, and nothing else; a new one is added to
    // its page and to the form.
    let field_id = match &fill {
        Some(f) => {
            inc.opt_clone_object_to_new_document(f.id).map_err(pdf_err)?;
            let d = inc.new_document.get_dictionary_mut(f.id).map_err(|_| invalid("the field is not a dictionary"))?;
            d.set("V", sig_id);
            if let Some(ap) = ap_id {
                d.set("AP", dictionary! {"N" => ap});
            }
            None
        }
        None => {
            let mut widget = Dictionary::new();
            widget.set("Type", Object::Name(b"Annot".to_vec()));
            widget.set("Subtype", Object::Name(b"Widget".to_vec()));
            widget.set("FT", Object::Name(b"Sig".to_vec()));
            widget.set("T", lopdf::text_string(&field));
            widget.set("F", 132);
            widget.set("P", page);
            widget.set("V", sig_id);
            let rect = match placed {
                Some((_, _, rect, _)) => rect.into_iter().map(r).collect(),
                None => vec![0.into(), 0.into(), 0.into(), 0.into()],
            };
            widget.set("Rect", Object::Array(rect));
            if let Some(ap) = ap_id {
                widget.set("AP", dictionary! {"N" => ap});
            }
            let id = nd.try_add_object(widget).map_err(pdf_err)?;
            append_to_array(&mut inc, page, b"Annots", id)?;
            Some(id)
        }
    };
    // The catalog's /AcroForm: direct, indirect, or absent.
    inc.opt_clone_object_to_new_document(root).map_err(pdf_err)?;
    let form_ref = inc.new_document.get_dictionary(root).ok().and_then(|c| c.get(b"AcroForm").ok()).cloned();
    match (form_ref, field_id) {
        (Some(Object::Reference(form_id)), _) => {
            inc.opt_clone_object_to_new_document(form_id).map_err(pdf_err)?;
            if let Some(field_id) = field_id {
                append_to_array(&mut inc, form_id, b"Fields", field_id)?;
            }
            let form = inc
                .new_document
                .get_dictionary_mut(form_id)
                .map_err(|_| invalid("the AcroForm is not a dictionary"))?;
            form.set("SigFlags", 3);
        }
        (Some(Object::Dictionary(_)), Some(field_id)) => {
            append_to_array(&mut inc, root, b"AcroForm.Fields", field_id)?;
        }
        (Some(Object::Dictionary(_)), None) => {}
        (None, None) => return Err(invalid("the PDF has no form, so no field to fill")),
        (Some(_), _) => return Err(invalid("the catalog's /AcroForm is not a dictionary")),
        (None, Some(field_id)) => {
            let mut form = Dictionary::new();
            form.set("Fields", Object::Array(vec![field_id.into()]));
            form.set("SigFlags", 3);
            let c =
                inc.new_document.get_dictionary_mut(root).map_err(|_| invalid("the catalog is not a dictionary"))?;
            c.set("AcroForm", form);
        }
    }

    extra(&mut inc)?;
    let (mut tail, start) = (new_revision(&mut inc, input.len(), 2 * spec.reserve + 4096)?, input.len());
    // The hole and the placeholder, searched for only in the new revision, each exactly once.
    let hole_text = [&b"<"[..], &vec![b'0'; 2 * spec.reserve], b">"].concat();
    let a = find_once(&tail, &hole_text).map(|i| i + start).ok_or_else(|| invalid("PDF: the hole is not unique"))?;
    let b = a + hole_text.len();
    let ph = format!("[0 {PLACEHOLDER} {PLACEHOLDER} {PLACEHOLDER}]");
    let at = find_once(&tail, ph.as_bytes()).ok_or_else(|| invalid("PDF: the byte range is not unique"))?;
    let c = start + tail.len() - b;
    let filled = format!("[0 {a} {b} {c}]");
    let mut patch = filled.into_bytes();
    patch.resize(ph.len(), b' ');
    tail[at..at + ph.len()].copy_from_slice(&patch);
    Ok((tail, [0, a, b, c], field))
}

/// Appends `item` to the array `key` of dictionary `owner` (an array held directly or by reference;
/// created when absent). `AcroForm.Fields` names the Fields array of a direct AcroForm.
fn append_to_array(
    inc: &mut IncrementalDocument,
    owner: ObjectId,
    key: &[u8],
    item: ObjectId,
) -> Result<(), CoreError> {
    let pdf_err = |e: lopdf::Error| invalid(format!("PDF: {e}"));
    inc.opt_clone_object_to_new_document(owner).map_err(pdf_err)?;
    let (outer, key) = match key {
        b"AcroForm.Fields" => (Some(&b"AcroForm"[..]), &b"Fields"[..]),
        k => (None, k),
    };
    let current = {
        let d = inc.new_document.get_dictionary(owner).map_err(|_| invalid("PDF: expected a dictionary"))?;
        let d = match outer {
            Some(o) => d.get(o).and_then(Object::as_dict).map_err(|_| invalid("PDF: expected a dictionary"))?,
            None => d,
        };
        d.get(key).ok().cloned()
    };
    match current {
        Some(Object::Reference(arr_id)) => {
            inc.opt_clone_object_to_new_document(arr_id).map_err(pdf_err)?;
            let arr = inc
                .new_document
                .get_object_mut(arr_id)
                .and_then(Object::as_array_mut)
                .map_err(|_| invalid("PDF: an indirect array is not an array"))?;
            arr.push(item.into());
        }
        other => {
            let mut arr = match other {
                Some(Object::Array(a)) => a,
                None => vec![],
                Some(_) => return Err(invalid("PDF: expected an array")),
            };
            arr.push(item.into());
            let d = inc.new_document.get_dictionary_mut(owner).map_err(|_| invalid("PDF: expected a dictionary"))?;
            let d = match outer {
                Some(o) => {
                    d.get_mut(o).and_then(Object::as_dict_mut).map_err(|_| invalid("PDF: expected a dictionary"))?
                }
                None => d,
            };
            d.set(key.to_vec(), Object::Array(arr));
        }
    }
    Ok(())
}

fn find_once(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut hits = hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i);
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
}

/// A signature read from a PDF, before its CMS is checked.
#[derive(Debug, Clone)]
pub struct PdfSignature {
    /// The field's full name.
    pub field: String,
    /// `/SubFilter`, e.g. `ETSI.CAdES.detached`, `adbe.pkcs7.detached`, `ETSI.RFC3161`.
    pub sub_filter: String,
    /// `/ByteRange`, checked to be `[0, a, b, c]` with the hole exactly the `/Contents` string.
    pub byte_range: [usize; 4],
    /// The DER in the hole, without its zero padding (empty while unsigned).
    pub contents: Vec<u8>,
    /// `/M`, as written.
    pub claimed_time: Option<String>,
    /// `/Reason`.
    pub reason: Option<String>,
    /// `/Name`.
    pub name: Option<String>,
    /// Bytes in the file after the end of this signature's revision (0: it covers the whole file).
    pub bytes_after: usize,
    /// When bytes follow: whether the later revisions change only what signing may change (new
    /// signature fields and their values, document security data, document timestamps); `Err` says
    /// what else they change.
    pub later_changes: Result<(), String>,
}

impl PdfSignature {
    /// The digest of the bytes this signature covers.
    pub fn digest(&self, pdf: &[u8], h: HashAlg) -> Vec<u8> {
        digest_ranges(pdf, self.byte_range, h)
    }

    /// The bytes this signature covers, in one piece (for an external judge).
    pub fn signed_bytes(&self, pdf: &[u8]) -> Vec<u8> {
        let [_, a, b, c] = self.byte_range;
        [&pdf[..a], &pdf[b..b + c]].concat()
    }
}

/// Every signature in `pdf`, in field order.
pub fn signatures(pdf: &[u8]) -> Result<Vec<PdfSignature>, CoreError> {
    signatures_and_validation_data(pdf).map(|(s, _)| s)
}

/// [`signatures`] and the document security store ([`validation_data`]), from one parse of the file.
pub fn signatures_and_validation_data(pdf: &[u8]) -> Result<(Vec<PdfSignature>, ValidationData), CoreError> {
    let doc = load(pdf)?;
    let mut out = Vec::new();
    for f in signature_fields(&doc) {
        let Some(v) = f.value else { continue };
        let sig = doc
            .get_dictionary(v)
            .map_err(|_| invalid(format!("signature {:?}: its value is not a dictionary", f.name)))?;
        out.push(read_signature(pdf, &doc, &f.name, sig)?);
    }
    Ok((out, read_dss(&doc)))
}

fn read_signature(pdf: &[u8], doc: &Document, field: &str, sig: &Dictionary) -> Result<PdfSignature, CoreError> {
    let bad = |m: &str| CoreError::InvalidSignature(format!("signature {field:?}: {m}"));
    let br = sig
        .get(b"ByteRange")
        .ok()
        .and_then(|o| resolve(doc, o))
        .and_then(|o| o.as_array().ok())
        .ok_or_else(|| bad("no /ByteRange"))?;
    let nums: Vec<usize> = br.iter().filter_map(|o| o.as_i64().ok()).filter_map(|n| usize::try_from(n).ok()).collect();
    let [zero, a, b, c] = nums[..] else { return Err(bad("the /ByteRange is not four non-negative numbers")) };
    let end = b.checked_add(c).ok_or_else(|| bad("the /ByteRange overflows"))?;
    if zero != 0 || a == 0 || b <= a + 1 || end > pdf.len() {
        return Err(bad("the /ByteRange does not start at 0, overlaps itself or leaves the file"));
    }
    let hole = &pdf[a..b];
    if hole[0] != b'<' || hole[hole.len() - 1] != b'>' || !(hole.len() - 2).is_multiple_of(2) {
        return Err(bad("the gap in the /ByteRange is not exactly the hex string of the signature"));
    }
    let raw = hex::decode(&hole[1..hole.len() - 1]).map_err(|_| bad("the gap in the /ByteRange is not hex"))?;
    let contents_obj = sig.get(b"Contents").ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_str().ok());
    if contents_obj != Some(&raw[..]) {
        return Err(bad("the /ByteRange gap is not this signature's /Contents (a wrapped signature)"));
    }
    let contents = match crate::der::tlv_len(&raw) {
        Some(n) if raw[n..].iter().all(|b| *b == 0) => raw[..n].to_vec(),
        Some(_) => return Err(bad("bytes other than padding follow the signature in /Contents")),
        None if raw.iter().all(|b| *b == 0) => Vec::new(),
        None => return Err(bad("/Contents is not DER")),
    };
    let sub_filter =
        name_of(sig.get(b"SubFilter").ok()).map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
    let bytes_after = pdf.len() - end;
    let later_changes = if bytes_after == 0 {
        Ok(())
    } else {
        match load_revision(pdf, end) {
            Ok(old) => changes_allowed(&old, doc),
            Err(e) => Err(format!("the revision this signature covers does not read on its own: {e}")),
        }
    };
    Ok(PdfSignature {
        field: field.to_owned(),
        sub_filter,
        byte_range: [0, a, b, c],
        contents,
        claimed_time: text_of(doc, sig, b"M"),
        reason: text_of(doc, sig, b"Reason"),
        name: text_of(doc, sig, b"Name"),
        bytes_after,
        later_changes,
    })
}

fn load_revision(pdf: &[u8], end: usize) -> Result<Document, CoreError> {
    load(&pdf[..end])
}

/// Whether the revisions that turned `old` into `new` change only what adding signatures may change
/// (the whitelist of ETSI EN 319 142-1 and ISO 32000-2 12.8.2.2 for "no changes" and form filling of
/// signature fields): new objects reachable only as signature fields, widgets and their values, the
/// document security store; the catalog's `/AcroForm`, `/DSS`, `/Extensions`, `/Version`; a page's
/// `/Annots` gaining signature widgets; the AcroForm's `/Fields` gaining signature fields and its
/// `/SigFlags`. Anything else (page content, other annotations, changed objects) is reported.
pub fn changes_allowed(old: &Document, new: &Document) -> Result<(), String> {
    let root = catalog_id(new).map_err(|e| e.to_string())?;
    if catalog_id(old).ok() != Some(root) {
        return Err("the catalog was replaced".into());
    }
    let is_sig_widget = |id: &Object| {
        resolve(new, id).and_then(|o| o.as_dict().ok()).is_some_and(|d| {
            name_of(d.get(b"FT").ok()) == Some(b"Sig")
                && (!d.has(b"Subtype") || name_of(d.get(b"Subtype").ok()) == Some(b"Widget"))
        })
    };
    // Objects whose change is judged below, not by equality.
    let mut judged: BTreeSet<ObjectId> = BTreeSet::from([root]);
    // Catalog keys.
    let (oc, nc) =
        (old.get_dictionary(root).map_err(|_| "no old catalog")?, new.get_dictionary(root).map_err(|_| "no catalog")?);
    same_except(oc, nc, &[b"AcroForm", b"DSS", b"Extensions", b"Version", b"Perms"], "the catalog")?;
    if oc.get(b"Perms").ok() != nc.get(b"Perms").ok() && oc.has(b"Perms") {
        return Err("the catalog's /Perms changed".into());
    }
    // AcroForm: /Fields may only gain signature fields.
    let form = |doc: &Document| -> Option<(Option<ObjectId>, Dictionary)> {
        let o = doc.catalog().ok()?.get(b"AcroForm").ok()?;
        let id = o.as_reference().ok();
        Some((id, resolve(doc, o)?.as_dict().ok()?.clone()))
    };
    if let Some((form_id, nf)) = form(new) {
        judged.extend(form_id);
        let of = form(old).map(|(_, d)| d).unwrap_or_default();
        same_except(&of, &nf, &[b"Fields", b"SigFlags"], "the form")?;
        let fields = |d: &Dictionary, doc: &Document| -> (Option<ObjectId>, Vec<Object>) {
            let o = d.get(b"Fields").ok();
            let id = o.and_then(|o| o.as_reference().ok());
            let arr = o.and_then(|o| resolve(doc, o)).and_then(|o| o.as_array().ok()).cloned().unwrap_or_default();
            (id, arr)
        };
        let (fid, nfields) = fields(&nf, new);
        judged.extend(fid);
        let (_, ofields) = fields(&of, old);
        if nfields.len() < ofields.len() || nfields[..ofields.len()] != ofields[..] {
            return Err("form fields were removed or reordered".into());
        }
        if let Some(f) = nfields[ofields.len()..].iter().find(|f| !is_sig_widget(f)) {
            return Err(format!("a form field that is not a signature was added ({f:?})"));
        }
    }
    // Pages: only /Annots may change, by gaining signature widgets.
    let old_pages = old.get_pages();
    let new_pages = new.get_pages();
    if old_pages != new_pages {
        return Err("pages were added, removed or replaced".into());
    }
    for page in new_pages.values() {
        judged.insert(*page);
        let (op, np) = (
            old.get_dictionary(*page).map_err(|_| "a page vanished")?,
            new.get_dictionary(*page).map_err(|_| "a page is not a dictionary")?,
        );
        same_except(op, np, &[b"Annots"], "a page")?;
        let annots = |d: &Dictionary, doc: &Document| -> (Option<ObjectId>, Vec<Object>) {
            let o = d.get(b"Annots").ok();
            let id = o.and_then(|o| o.as_reference().ok());
            let arr = o.and_then(|o| resolve(doc, o)).and_then(|o| o.as_array().ok()).cloned().unwrap_or_default();
            (id, arr)
        };
        let (aid, na) = annots(np, new);
        judged.extend(aid);
        let (_, oa) = annots(op, old);
        if na.len() < oa.len() || na[..oa.len()] != oa[..] {
            return Err("annotations were removed or reordered on a page".into());
        }
        if na[oa.len()..].iter().any(|a| !is_sig_widget(a)) {
            return Err("an annotation that is not a signature was added to a page".into());
        }
    }
    // Every other object that existed must be unchanged, but for one empty signature field that is
    // filled: it may gain its value and its appearance, nothing else.
    let mut filled = 0;
    for (id, o) in old.objects.iter() {
        if judged.contains(id) {
            continue;
        }
        match new.objects.get(id) {
            Some(n) if n == o => {}
            Some(n) if fills_empty_field(o, n) => {
                filled += 1;
                if filled > 1 {
                    return Err("more than one signature field was filled".into());
                }
            }
            Some(_) => return Err(format!("object {} {} changed", id.0, id.1)),
            None => return Err(format!("object {} {} was removed", id.0, id.1)),
        }
    }
    Ok(())
}

/// Whether `new` is the empty signature field `old` (its own widget, no value) given a value (a reference)
/// and an appearance, with every other key as it was.
fn fills_empty_field(old: &Object, new: &Object) -> bool {
    let (Ok(o), Ok(n)) = (old.as_dict(), new.as_dict()) else { return false };
    name_of(o.get(b"FT").ok()) == Some(b"Sig")
        && !o.has(b"V")
        && !o.has(b"Kids")
        && n.get(b"V").is_ok_and(|v| v.as_reference().is_ok())
        && same_except(o, n, &[b"V", b"AP"], "the field").is_ok()
}

/// Validation data a PDF carries for the long term (PAdES-B-LT): its document security store
/// (`/DSS` in the catalog) with certificates and CRLs, DER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationData {
    /// Certificates.
    pub certs: Vec<Vec<u8>>,
    /// CRLs.
    pub crls: Vec<Vec<u8>>,
}

/// Most certificates or CRLs read from one document security store.
const MAX_DSS_ENTRIES: usize = 256;

/// The document security store of `doc`, when it has one (bounded: at most 256 certificates and 256
/// CRLs, each stream decompressed within lopdf's limit).
pub fn validation_data(pdf: &[u8]) -> Result<ValidationData, CoreError> {
    let doc = load(pdf)?;
    Ok(read_dss(&doc))
}

fn read_dss(doc: &Document) -> ValidationData {
    let mut out = ValidationData::default();
    let Some(dss) = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"DSS").ok())
        .and_then(|o| resolve(doc, o))
        .and_then(|o| o.as_dict().ok())
    else {
        return out;
    };
    let streams = |key: &[u8]| -> Vec<Vec<u8>> {
        let Some(arr) = dss.get(key).ok().and_then(|o| resolve(doc, o)).and_then(|o| o.as_array().ok()) else {
            return vec![];
        };
        arr.iter()
            .take(MAX_DSS_ENTRIES)
            .filter_map(|o| resolve(doc, o))
            .filter_map(|o| o.as_stream().ok())
            .filter_map(|st| {
                if st.dict.has(b"Filter") {
                    st.decompressed_content_with_limit(1 << 20).ok()
                } else {
                    Some(st.content.clone())
                }
            })
            .collect()
    };
    out.certs = streams(b"Certs");
    out.crls = streams(b"CRLs");
    out
}

/// Appends a revision with a document security store holding `data` (merged with one the PDF already
/// has): what a verifier needs years later, when the CA's servers may be gone (PAdES-B-LT). Changes
/// nothing a signature covers; `changes_allowed` accepts it.
pub fn add_validation_data(input: &[u8], data: &ValidationData) -> Result<Vec<u8>, CoreError> {
    let doc = load(input)?;
    let root = catalog_id(&doc)?;
    let existing = read_dss(&doc);
    let mut inc = incremental(input, doc);
    let pdf_err = |e: lopdf::Error| invalid(format!("PDF: {e}"));
    let mut add = |items: &[Vec<u8>]| -> Result<Vec<Object>, CoreError> {
        items
            .iter()
            .take(MAX_DSS_ENTRIES)
            .map(|item| {
                let stream = lopdf::Stream::new(Dictionary::new(), item.clone());
                inc.new_document.try_add_object(stream).map(Object::Reference).map_err(pdf_err)
            })
            .collect()
    };
    let mut certs: Vec<Vec<u8>> = vec![];
    for c in existing.certs.iter().chain(&data.certs) {
        if !certs.contains(c) {
            certs.push(c.clone());
        }
    }
    let mut crls: Vec<Vec<u8>> = vec![];
    for c in existing.crls.iter().chain(&data.crls) {
        if !crls.contains(c) {
            crls.push(c.clone());
        }
    }
    let cert_refs = add(&certs)?;
    let crl_refs = add(&crls)?;
    let mut dss = Dictionary::new();
    dss.set("Certs", Object::Array(cert_refs));
    dss.set("CRLs", Object::Array(crl_refs));
    inc.opt_clone_object_to_new_document(root).map_err(pdf_err)?;
    let catalog = inc.new_document.get_dictionary_mut(root).map_err(|_| invalid("the catalog is not a dictionary"))?;
    catalog.set("DSS", Object::Dictionary(dss));
    let tail = new_revision(&mut inc, input.len(), 16 * 1024)?;
    Ok([input, &tail[..]].concat())
}

/// Every entry of `old` and `new` but the `free` ones is present in both and equal: an entry changed,
/// added or removed is reported with `what` it belongs to.
fn same_except(old: &Dictionary, new: &Dictionary, free: &[&[u8]], what: &str) -> Result<(), String> {
    for (k, v) in new.iter() {
        if !free.contains(&k.as_slice()) && old.get(k).ok() != Some(v) {
            return Err(format!("{what}'s /{} changed", String::from_utf8_lossy(k)));
        }
    }
    for (k, _) in old.iter() {
        if !free.contains(&k.as_slice()) && !new.has(k) {
            return Err(format!("{what}'s /{} was removed", String::from_utf8_lossy(k)));
        }
    }
    Ok(())
}

/// What the signer is shown about a prepared PDF, and the digest it signs.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The field being signed.
    pub field: String,
    /// The page (from 1) whose annotations hold the field's widget; `None` when no page shows it.
    pub field_page: Option<usize>,
    /// Pages in the document.
    pub pages: usize,
    /// `/Title` of the document information, when there is one.
    pub title: Option<String>,
    /// The text of the first page (up to 2,000 characters), as lopdf extracts it.
    pub first_page_text: String,
    /// The earlier signatures the document already carries.
    pub earlier_signatures: usize,
    /// SHA-256 over the byte ranges, computed here from the bytes themselves.
    pub sha256: Vec<u8>,
    /// The byte range.
    pub byte_range: [usize; 4],
}

impl Inspection {
    /// The digest of the signed ranges for another hash.
    pub fn digest(&self, pdf: &[u8], h: HashAlg) -> Vec<u8> {
        digest_ranges(pdf, self.byte_range, h)
    }
}

/// The signer's check of a prepared PDF (the computer that prepared it may lie): exactly one unsigned
/// signature field, whose `/ByteRange` covers the whole file but its own hole; the new revision changes
/// nothing but that signature's objects; and the digest, recomputed here.
pub fn inspect_prepared(pdf: &[u8]) -> Result<Inspection, CoreError> {
    let doc = load(pdf)?;
    let fields = signature_fields(&doc);
    let mut unsigned = Vec::new();
    let mut earlier = 0;
    for f in &fields {
        let Some(v) = f.value else { continue };
        let sig = doc.get_dictionary(v).map_err(|_| invalid("a signature value is not a dictionary"))?;
        let s = read_signature(pdf, &doc, &f.name, sig)?;
        if s.contents.is_empty() {
            unsigned.push((s, f.id));
        } else {
            earlier += 1;
        }
    }
    let (s, field_id) = match unsigned.as_slice() {
        [one] => one.clone(),
        [] => return Err(invalid("the PDF has no signature field waiting to be signed")),
        _ => return Err(invalid("the PDF has more than one signature field waiting to be signed")),
    };
    if s.bytes_after != 0 {
        return Err(invalid("the signature being made does not cover the whole PDF"));
    }
    if s.sub_filter != "ETSI.CAdES.detached" {
        return Err(invalid(format!("the signature being made is {:?}, not a PAdES signature", s.sub_filter)));
    }
    // The revision before the one that adds this field: where the previous trailer's file ends.
    let prev_end = previous_revision_end(pdf)?;
    let before = load(&pdf[..prev_end])?;
    changes_allowed(&before, &doc)
        .map_err(|e| CoreError::Refused(format!("the PDF to sign was changed beyond adding a signature field: {e}")))?;
    // One field signed in this revision: added, or an empty one filled.
    let before_fields = signature_fields(&before);
    let filled = before_fields
        .iter()
        .filter(|b| b.value.is_none() && fields.iter().any(|f| f.id.is_some() && f.id == b.id && f.value.is_some()))
        .count();
    if fields.len() < before_fields.len() || fields.len() - before_fields.len() + filled != 1 {
        return Err(CoreError::Refused("the PDF to sign adds or fills more than one signature field".into()));
    }
    let title = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|o| resolve(&doc, o))
        .and_then(|o| o.as_dict().ok())
        .and_then(|d| text_of(&doc, d, b"Title"));
    let mut first_page_text = doc.extract_text_with_limit(&[1], MAX_DECOMPRESSED).unwrap_or_default();
    if let Some((i, _)) = first_page_text.char_indices().nth(2000) {
        first_page_text.truncate(i);
    }
    let pages = doc.get_pages();
    let field_page = field_id.and_then(|id| {
        pages.iter().find_map(|(n, page)| {
            let annots = doc.get_dictionary(*page).ok()?.get(b"Annots").ok().and_then(|o| resolve(&doc, o))?;
            annots.as_array().ok()?.iter().any(|a| a.as_reference().ok() == Some(id)).then_some(*n as usize)
        })
    });
    Ok(Inspection {
        field: s.field.clone(),
        field_page,
        pages: pages.len(),
        title,
        first_page_text,
        earlier_signatures: earlier,
        sha256: s.digest(pdf, HashAlg::Sha256),
        byte_range: s.byte_range,
    })
}

/// The end of the revision before the last one: the `%%EOF` that follows the cross-reference the last
/// trailer's `/Prev` points to. (lopdf merges the trailers it reads, so `/Prev` is read from the last
/// cross-reference section itself: a table's trailer or a cross-reference stream's dictionary.)
fn previous_revision_end(pdf: &[u8]) -> Result<usize, CoreError> {
    let not_incremental = || invalid("the PDF to sign is not an incremental update of another PDF");
    let tail_at = pdf.len().saturating_sub(1024);
    let sx = pdf[tail_at..].windows(9).rposition(|w| w == b"startxref").ok_or_else(not_incremental)? + tail_at;
    let last_xref = leading_number(&pdf[sx + 9..]).filter(|n| *n < sx).ok_or_else(not_incremental)?;
    let section = &pdf[last_xref..sx];
    let at = section.windows(5).position(|w| w == b"/Prev").ok_or_else(not_incremental)?;
    let prev = leading_number(&section[at + 5..]).filter(|n| *n < last_xref).ok_or_else(not_incremental)?;
    let eof = pdf[prev..last_xref]
        .windows(5)
        .position(|w| w == b"%%EOF")
        .ok_or_else(|| invalid("the previous revision has no %%EOF"))?;
    let mut end = prev + eof + 5;
    while end < pdf.len() && matches!(pdf[end], b'\r' | b'\n') {
        end += 1;
    }
    Ok(end)
}

/// The decimal number after optional PDF white space at the start of `b`.
fn leading_number(b: &[u8]) -> Option<usize> {
    let b = &b[b.iter().position(|c| !c.is_ascii_whitespace())?..];
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    std::str::from_utf8(&b[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
