//! The font of visible signatures. Helvetica, the font every PDF reader has, draws no Cyrillic and no
//! Uzbek `oʻ`, so a signer called Гулнора Каримова would read `??????? ????????`. Instead each visible
//! signature embeds DejaVu Sans cut to the letters names and reasons are written in here
//! (`fonts/make-subset`, about 48 KiB) as a Type 0 font: each character is drawn by its glyph
//! (Identity-H, two bytes per glyph), with its width from the font, and a ToUnicode map lets readers
//! copy the text. A character the font lacks (a control or bidi character, a script it does not cover)
//! is drawn as `?`.

use std::collections::BTreeMap;

use lopdf::{Document, Object, ObjectId, Stream, dictionary};

use crate::CoreError;

/// DejaVu Sans 2.37, cut by `fonts/make-subset` (its licence: `fonts/LICENSE-DejaVu`).
const FONT: &[u8] = include_bytes!("../../fonts/kalit-sans.ttf");
/// The font's name in the PDF: a subset's six-letter tag, then the font's PostScript name.
const BASE_FONT: &[u8] = b"KALITA+DejaVuSans";
/// The most characters of one line looked at: longer text is cut anyway (a box is at most a page wide).
const MAX_CHARS: usize = 400;

/// One glyph to draw: its id in the font and the character it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Glyph {
    pub id: u16,
    pub ch: char,
}

/// The embedded font, parsed once per visible signature.
pub(super) struct SigFont {
    face: ttf_parser::Face<'static>,
    /// Font units per 1,000 units of PDF text space.
    units_per_em: f32,
}

impl SigFont {
    pub fn load() -> Result<SigFont, CoreError> {
        let face = ttf_parser::Face::parse(FONT, 0)
            .map_err(|e| CoreError::Internal(format!("the visible signature's font: {e}")))?;
        let units_per_em = f32::from(face.units_per_em());
        Ok(SigFont { face, units_per_em })
    }

    fn glyph(&self, ch: char) -> Glyph {
        match self.face.glyph_index(ch) {
            Some(g) if g.0 != 0 && !ch.is_control() => Glyph { id: g.0, ch },
            _ => Glyph { id: self.face.glyph_index('?').map_or(0, |g| g.0), ch: '?' },
        }
    }

    /// A glyph's advance in thousandths of the font size (the unit of a PDF font's `/W`).
    fn width(&self, g: Glyph) -> f32 {
        let adv = self.face.glyph_hor_advance(ttf_parser::GlyphId(g.id)).unwrap_or(0);
        (f32::from(adv) * 1000.0 / self.units_per_em).round()
    }

    /// `text` as glyphs that fit in `max_width` points at `size`: the whole text, or as much as fits followed
    /// by `…` to say it was cut. Whitespace of any kind is one space.
    pub fn fit(&self, text: &str, size: f32, max_width: f32) -> Vec<Glyph> {
        let glyphs = self.glyphs(text);
        let cut = text.chars().nth(MAX_CHARS).is_some();
        let points = |gs: &[Glyph]| gs.iter().map(|g| self.width(*g)).sum::<f32>() * size / 1000.0;
        // A hundredth of a point of slack: a size computed to fit the widest line exactly must not cut it.
        if !cut && points(&glyphs) <= max_width + 0.01 {
            return glyphs;
        }
        let ellipsis = self.glyph('…');
        let room = max_width - points(&[ellipsis]);
        let mut used = 0.0;
        let mut out = Vec::new();
        for g in glyphs {
            used += self.width(g) * size / 1000.0;
            if used > room {
                break;
            }
            out.push(g);
        }
        while out.last().is_some_and(|g| g.ch == ' ') {
            out.pop();
        }
        out.push(ellipsis);
        out
    }

    /// The glyphs that draw `text` (its first `MAX_CHARS` characters).
    fn glyphs(&self, text: &str) -> Vec<Glyph> {
        text.chars().take(MAX_CHARS).map(|c| self.glyph(if c.is_whitespace() { ' ' } else { c })).collect()
    }

    /// How wide `text` is drawn at a size of 1 point, in points.
    pub fn measure(&self, text: &str) -> f32 {
        self.glyphs(text).iter().map(|g| self.width(*g)).sum::<f32>() / 1000.0
    }

    /// The text-showing operator for `glyphs`: their ids as a hex string, two bytes each.
    pub fn show(glyphs: &[Glyph]) -> String {
        let hex: String = glyphs.iter().map(|g| format!("{:04X}", g.id)).collect();
        format!("<{hex}> Tj")
    }

    /// Adds the font to `doc` (the program, its descriptor, the CIDFont with the widths of the glyphs
    /// `used`, and the ToUnicode map) and returns the Type 0 font to name in a resource dictionary.
    pub fn add_to(&self, doc: &mut Document, used: &[Glyph]) -> Result<ObjectId, CoreError> {
        let pdf = |e: lopdf::Error| CoreError::InvalidInput(format!("PDF: {e}"));
        // One character per glyph for the ToUnicode map (the first seen), widths by glyph id.
        let glyphs: BTreeMap<u16, char> = used.iter().rev().map(|g| (g.id, g.ch)).collect();
        let scale = |v: i16| Object::Integer((f32::from(v) * 1000.0 / self.units_per_em).round() as i64);
        let mut program = Stream::new(dictionary! {"Length1" => Object::Integer(FONT.len() as i64)}, FONT.to_vec());
        program.compress().map_err(pdf)?;
        let program = doc.try_add_object(program).map_err(pdf)?;
        let b = self.face.global_bounding_box();
        let descriptor = doc
            .try_add_object(dictionary! {
                "Type" => "FontDescriptor",
                "FontName" => Object::Name(BASE_FONT.to_vec()),
                // Non-symbolic: the Latin character set.
                "Flags" => 32,
                "FontBBox" => vec![scale(b.x_min), scale(b.y_min), scale(b.x_max), scale(b.y_max)],
                "ItalicAngle" => 0,
                "Ascent" => scale(self.face.ascender()),
                "Descent" => scale(self.face.descender()),
                "CapHeight" => scale(self.face.capital_height().unwrap_or(self.face.ascender())),
                "StemV" => 80,
                "FontFile2" => program,
            })
            .map_err(pdf)?;
        let mut widths = Vec::new();
        for (&id, &ch) in &glyphs {
            widths.push(Object::Integer(i64::from(id)));
            widths.push(Object::Array(vec![Object::Integer(self.width(Glyph { id, ch }) as i64)]));
        }
        let cid_font = dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType2",
            "BaseFont" => Object::Name(BASE_FONT.to_vec()),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "FontDescriptor" => descriptor,
            "DW" => 1000,
            "W" => widths,
            "CIDToGIDMap" => "Identity",
        };
        let mut to_unicode = Stream::new(dictionary! {}, to_unicode(&glyphs).into_bytes());
        to_unicode.compress().map_err(pdf)?;
        let to_unicode = doc.try_add_object(to_unicode).map_err(pdf)?;
        doc.try_add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type0",
            "BaseFont" => Object::Name(BASE_FONT.to_vec()),
            "Encoding" => "Identity-H",
            "DescendantFonts" => vec![Object::Dictionary(cid_font)],
            "ToUnicode" => to_unicode,
        })
        .map_err(pdf)
    }
}

/// The CMap that turns each drawn glyph id back into its character (UTF-16BE), for copying and search.
fn to_unicode(glyphs: &BTreeMap<u16, char>) -> String {
    let mut s = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &char)> = glyphs.iter().collect();
    // At most 100 entries per block (the CMap format's limit).
    for block in entries.chunks(100) {
        s.push_str(&format!("{} beginbfchar\n", block.len()));
        for (id, ch) in block {
            let mut units = [0u16; 2];
            let utf16: String = ch.encode_utf16(&mut units).iter().map(|u| format!("{u:04X}")).collect();
            s.push_str(&format!("<{id:04X}> <{utf16}>\n"));
        }
        s.push_str("endbfchar\n");
    }
    s.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: &[Glyph]) -> String {
        f.iter().map(|g| g.ch).collect()
    }

    #[test]
    fn every_letter_of_uzbek_and_russian_has_its_own_glyph() {
        let font = SigFont::load().unwrap();
        let alphabets = [
            // Uzbek, Latin script (oʻ and gʻ with U+02BB, the tutuq belgisi U+02BC).
            "ABDEFGHIJKLMNOPQRSTUVXYZabdefghijklmnopqrstuvxyz Oʻ oʻ Gʻ gʻ Sh sh Ch ch Ng ng ʼ",
            // Uzbek, Cyrillic script.
            "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЪЭЮЯЎҚҒҲабвгдеёжзийклмнопрстуфхцчшъэюяўқғҳ",
            // Russian besides, and what a reason or a date is written with.
            "ЩЫЬщыь 0123456789 .,:;!?()-–—«»„“”‘’№…/@",
        ];
        let question = font.glyph('?').id;
        for a in alphabets {
            for c in a.chars() {
                let g = font.glyph(c);
                assert_eq!(g.ch, c, "{c:?} (U+{:04X}) has no glyph", u32::from(c));
                assert!(c == '?' || g.id != question, "{c:?} is drawn as ?");
                assert!(font.width(g) > 0.0 || c == ' ', "{c:?} has no width");
            }
        }
    }

    #[test]
    fn what_the_font_lacks_is_drawn_as_a_question_mark() {
        let font = SigFont::load().unwrap();
        // A control character, a bidi override, a CJK letter, an emoji.
        for c in ['\u{7}', '\u{202e}', '中', '😀'] {
            assert_eq!(font.glyph(c).ch, '?', "{c:?}");
        }
        // Newlines and tabs are spaces: a name cannot start a second line of its own.
        assert_eq!(text(&font.fit("Ali\nValiyev\t", 10.0, 500.0)), "Ali Valiyev ");
    }

    #[test]
    fn a_line_is_cut_to_its_box_with_an_ellipsis_and_never_overflows() {
        let font = SigFont::load().unwrap();
        let name = "Gulnora Karimova Abdulla qizi";
        let whole = font.fit(name, 10.0, 1000.0);
        assert_eq!(text(&whole), name);
        let wide = whole.iter().map(|g| font.width(*g)).sum::<f32>() * 10.0 / 1000.0;
        for max in [wide, wide - 0.5, 60.0, 20.0, 5.0, 0.0] {
            let cut = font.fit(name, 10.0, max);
            let used = cut.iter().map(|g| font.width(*g)).sum::<f32>() * 10.0 / 1000.0;
            if max >= wide {
                assert_eq!(text(&cut), name);
            } else {
                assert_eq!(cut.last().map(|g| g.ch), Some('…'), "{max}");
                assert!(name.starts_with(text(&cut).trim_end_matches('…')), "{max}");
                assert!(!text(&cut).contains(" …"), "no space before the ellipsis");
                assert!(used <= max || cut.len() == 1, "{used} > {max}");
            }
        }
        // Text longer than any box is cut before it is measured.
        let long = "Ж".repeat(100_000);
        assert!(font.fit(&long, 10.0, 100_000.0).len() <= MAX_CHARS + 1);
    }

    #[test]
    fn the_unicode_map_gives_back_each_character_in_blocks_of_at_most_100() {
        let font = SigFont::load().unwrap();
        let glyphs: BTreeMap<u16, char> =
            "Гулнора oʻqidim".chars().map(|c| font.glyph(c)).map(|g| (g.id, g.ch)).collect();
        let map = to_unicode(&glyphs);
        assert!(map.contains(&format!("<{:04X}> <0413>", font.glyph('Г').id)), "{map}");
        assert!(map.contains(&format!("<{:04X}> <02BB>", font.glyph('ʻ').id)), "{map}");
        let many: BTreeMap<u16, char> = ('А'..='я').map(|c| font.glyph(c)).map(|g| (g.id, g.ch)).collect();
        let map = to_unicode(&many);
        assert_eq!(map.matches("beginbfchar").count(), many.len().div_ceil(100));
        assert!(
            map.lines()
                .all(|l| !l.ends_with("beginbfchar") || l.split(' ').next().unwrap().parse::<usize>().unwrap() <= 100)
        );
    }
}
