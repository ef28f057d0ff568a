//! What the phone shows is what it signs: one set of display rules for every string that reaches the
//! person's screen from a party that may lie (the computer, the relay, the RA). The command-line phone
//! follows them, and the phone app follows the same rules (the same cases are its test vectors).
//!
//! - Control, format and bidirectional characters (C0, DEL, C1, U+200B-U+200F, U+202A-U+202E,
//!   U+2066-U+2069, U+061C, U+FEFF, line and paragraph separators, tag characters...) are shown escaped
//!   as `\u{202e}`, and a backslash as `\\`, so nothing can move the cursor, recolour the screen, reorder
//!   text or hide a clause. Newlines in single-line fields are escaped too.
//! - Every truncation says what was left out.
//! - A text preview wraps long lines instead of cutting them, shows long runs of spaces as a marker, and
//!   ends with how many lines were not shown.
//! - A media type must be a `type/subtype` token and an origin must parse as an origin.
//! - The content is sniffed, and a claim that does not fit it is said out loud.

use crate::CoreError;

/// True for characters that must never reach a screen as themselves.
pub fn is_hidden_or_control(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || matches!(u,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x205F..=0x206F | 0x3164 | 0xFE00..=0xFE0F
            | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x08E2 | 0x110BD | 0x110CD)
        // Private use and noncharacters.
        || (0xE000..=0xF8FF).contains(&u)
        || (0xF0000..=0x10FFFF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE
        || (0xFDD0..=0xFDEF).contains(&u)
}

fn push_escaped(out: &mut String, c: char) {
    if c == '\\' {
        out.push_str("\\\\");
    } else if is_hidden_or_control(c) {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// Escapes every control, format and bidi character (and the backslash) of a one-line field.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// A one-line field: escaped, and cut after `max` characters with a marker saying how many were left
/// out.
pub fn field(s: &str, max: usize) -> String {
    let escaped = escape(s);
    let total = escaped.chars().count();
    if total <= max {
        return escaped;
    }
    let kept: String = escaped.chars().take(max).collect();
    format!("{kept}… [{} more characters not shown]", total - max)
}

/// Text for a terminal from any party (error messages): control, format and bidi characters escaped as
/// in [`escape`], but line feeds stay line feeds and a backslash stays itself (a message may already
/// hold escaped text; nothing here can drive the terminal either way).
pub fn terminal_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\n' || c == '\\' {
            out.push(c);
        } else {
            push_escaped(&mut out, c);
        }
    }
    out
}

/// Checks a media type: `type/subtype` with RFC 6838 restricted names (letters, digits and
/// `!#$&-^_.+`, starting with a letter or digit, at most 127 characters each), no parameters.
/// Returns it lower-cased.
pub fn media_type(s: &str) -> Result<String, CoreError> {
    let bad = || CoreError::InvalidInput(format!("the media type \"{}\" is not a type/subtype token", field(s, 80)));
    let (t, sub) = s.split_once('/').ok_or_else(bad)?;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 127
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    if !name_ok(t) || !name_ok(sub) {
        return Err(bad());
    }
    Ok(s.to_ascii_lowercase())
}

/// Checks a web origin: `http` or `https`, `://`, a host (lowercase letters, digits, `-` and `.`, or a
/// bracketed IPv6 address) and an optional port; nothing else. Returns it as given when it is already in
/// that canonical form.
pub fn origin(s: &str) -> Result<String, CoreError> {
    let bad = || CoreError::InvalidInput(format!("\"{}\" is not a web origin", field(s, 80)));
    if s.len() > 255 {
        return Err(bad());
    }
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).ok_or_else(bad)?;
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        (&rest[..addr.len() + 2], after.strip_prefix(':'))
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if !host.starts_with('[') {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if host.is_empty() || !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    if let Some(p) = port {
        let ok = !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()) && !p.starts_with('0');
        if !ok || p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535) {
            return Err(bad());
        }
    } else if rest.len() != host.len() {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// What the content looks like, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// `%PDF-`.
    Pdf,
    /// PNG signature.
    Png,
    /// JPEG SOI marker.
    Jpeg,
    /// `GIF8`.
    Gif,
    /// A ZIP archive (also DOCX, XLSX, ODT).
    Zip,
    /// gzip.
    Gzip,
    /// Printable UTF-8 text.
    Text,
    /// Anything else.
    Binary,
}

impl Sniffed {
    /// A short description for the screen.
    pub fn describe(self) -> &'static str {
        match self {
            Sniffed::Pdf => "a PDF file",
            Sniffed::Png => "a PNG image",
            Sniffed::Jpeg => "a JPEG image",
            Sniffed::Gif => "a GIF image",
            Sniffed::Zip => "a ZIP archive (or an office document)",
            Sniffed::Gzip => "gzip-compressed data",
            Sniffed::Text => "text",
            Sniffed::Binary => "binary data",
        }
    }
}

/// Sniffs the content.
pub fn sniff(data: &[u8]) -> Sniffed {
    if data.starts_with(b"%PDF-") {
        Sniffed::Pdf
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Sniffed::Png
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Sniffed::Jpeg
    } else if data.starts_with(b"GIF8") {
        Sniffed::Gif
    } else if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        Sniffed::Zip
    } else if data.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Gzip
    } else if crate::purpose::is_displayable_text(data) {
        Sniffed::Text
    } else {
        Sniffed::Binary
    }
}

/// True when the media type names something text-like that the phone previews.
pub fn is_text_type(media_type: &str) -> bool {
    media_type.starts_with("text/")
        || matches!(media_type, "application/json" | "application/xml")
        || media_type.ends_with("+json")
        || media_type.ends_with("+xml")
}

/// A warning when the claimed media type does not fit the content, else `None`.
pub fn type_mismatch(media_type: &str, data: &[u8]) -> Option<String> {
    let got = sniff(data);
    let expected: Option<&[Sniffed]> = match media_type {
        t if is_text_type(t) => Some(&[Sniffed::Text]),
        "application/pdf" => Some(&[Sniffed::Pdf]),
        "image/png" => Some(&[Sniffed::Png]),
        "image/jpeg" => Some(&[Sniffed::Jpeg]),
        "image/gif" => Some(&[Sniffed::Gif]),
        "application/zip" => Some(&[Sniffed::Zip]),
        t if t.starts_with("application/vnd.openxmlformats") || t.starts_with("application/vnd.oasis") => {
            Some(&[Sniffed::Zip])
        }
        "application/gzip" => Some(&[Sniffed::Gzip]),
        // A generic type claims nothing; a known format under it is still worth saying.
        _ => None,
    };
    match expected {
        Some(ok) if !ok.contains(&got) => {
            Some(format!("the computer calls this {}, but it looks like {}", escape(media_type), got.describe()))
        }
        None if !matches!(got, Sniffed::Binary | Sniffed::Text) => {
            Some(format!("the computer calls this {}, and it looks like {}", escape(media_type), got.describe()))
        }
        _ => None,
    }
}

/// A text preview: each line escaped and wrapped at `width` characters (continuations start with `↪ `),
/// runs of more than 8 spaces or tabs shown as `[N spaces]`, at most `max_lines` lines, then a line
/// saying how many lines (of the wrapped text) were not shown. `None` when the data is not text.
pub fn preview(data: &[u8], width: usize, max_lines: usize) -> Option<Vec<String>> {
    let text = std::str::from_utf8(data).ok()?;
    let width = width.max(16);
    let mut out: Vec<String> = vec![];
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let shown = collapse_blanks(line);
        let chars: Vec<char> = shown.chars().collect();
        if chars.is_empty() {
            out.push(String::new());
            continue;
        }
        for (i, chunk) in chars.chunks(width).enumerate() {
            let s: String = chunk.iter().collect();
            out.push(if i == 0 { s } else { format!("↪ {s}") });
        }
    }
    if text.ends_with('\n') {
        out.pop();
    }
    if out.len() > max_lines {
        let hidden = out.len() - max_lines;
        out.truncate(max_lines);
        out.push(format!("[… {hidden} more lines not shown; the whole document is what you sign]"));
    }
    Some(out)
}

/// Escapes a line and replaces runs of more than 8 blanks by a marker.
fn collapse_blanks(line: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if run.chars().count() > 8 {
            out.push_str(&format!("[{} spaces]", run.chars().count()));
        } else {
            for c in run.chars() {
                if c == '\t' {
                    out.push_str("    ");
                } else {
                    out.push(c);
                }
            }
        }
        run.clear();
    };
    for c in line.chars() {
        if c == ' ' || c == '\t' {
            run.push(c);
        } else {
            flush(&mut out, &mut run);
            push_escaped(&mut out, c);
        }
    }
    flush(&mut out, &mut run);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_bidi_and_ansi() {
        assert_eq!(escape("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("\x1b]0;title\x07"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(escape("two\nlines"), "two\\u{a}lines");
        assert_eq!(escape("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(escape("c:\\u{41}"), "c:\\\\u{41}", "a literal escape cannot pass for an escaped character");
        assert_eq!(escape("Toshkent — Тошкент"), "Toshkent — Тошкент");
        assert_eq!(terminal_text("line 1\n\x1b[31mline 2 \\u{1b}"), "line 1\n\\u{1b}[31mline 2 \\u{1b}");
    }

    #[test]
    fn truncation_is_marked() {
        assert_eq!(field("short", 10), "short");
        assert_eq!(field(&"a".repeat(15), 10), format!("{}… [5 more characters not shown]", "a".repeat(10)));
    }

    #[test]
    fn media_types_and_origins() {
        assert_eq!(media_type("Text/Plain").unwrap(), "text/plain");
        assert!(media_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document").is_ok());
        for bad in
            ["text", "text/plain\nX: y", "text/plain; charset=utf-8", "/x", "text/", "te xt/plain", "text/\x1b[2J"]
        {
            assert!(media_type(bad).is_err(), "{bad:?}");
        }
        for good in ["https://my.gov.uz", "http://127.0.0.1:8080", "https://[::1]:443", "https://a-b.example"] {
            assert_eq!(origin(good).unwrap(), good);
        }
        for bad in [
            "my.gov.uz",
            "https://my.gov.uz/",
            "https://my.gov.uz/path",
            "https://user@my.gov.uz",
            "https://MY.gov.uz",
            "https://my.gov.uz\n",
            "https://my.gov.uz:0",
            "https://my.gov.uz:99999",
            "https://my.gov.uz:",
            "https://-x.uz",
            "https://my..uz",
            "javascript://x",
            "https://my.gov.uz\u{202e}",
            "https://[::1",
        ] {
            assert!(origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn previews_wrap_mark_and_never_hide_a_clause() {
        let hidden = format!("I agree to pay 100 som.{}and also to sell my house.", " ".repeat(70));
        let p = preview(hidden.as_bytes(), 40, 12).unwrap().join("\n");
        assert!(p.contains("sell my house"), "{p}");
        assert!(p.contains("[70 spaces]"), "{p}");
        let long = "x".repeat(100);
        let p = preview(long.as_bytes(), 40, 12).unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[1].starts_with("↪ "));
        let many = (0..30).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
        let p = preview(many.as_bytes(), 40, 12).unwrap();
        assert_eq!(p.len(), 13);
        assert!(p[12].contains("18 more lines not shown"), "{:?}", p[12]);
        assert!(preview(b"\xff\xfe", 40, 12).is_none());
        let p = preview("ok\x1b[2J\u{202e}".as_bytes(), 40, 12).unwrap();
        assert_eq!(p, vec!["ok\\u{1b}[2J\\u{202e}"]);
    }

    #[test]
    fn sniffing() {
        assert_eq!(type_mismatch("text/plain", b"hello"), None);
        assert!(type_mismatch("text/plain", b"%PDF-1.7\n").unwrap().contains("PDF"));
        assert!(type_mismatch("application/pdf", b"just text").unwrap().contains("text"));
        assert_eq!(type_mismatch("application/pdf", b"%PDF-1.4"), None);
        assert!(type_mismatch("application/octet-stream", b"%PDF-1.4").is_some());
        assert_eq!(type_mismatch("application/octet-stream", b"\x00\x01"), None);
    }
}
