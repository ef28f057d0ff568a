// What the phone shows of strings that come from the wire (kalit_core::display): control, format and
// bidi characters escaped as \u{..}, marked truncation, media types that must be type/subtype tokens,
// origins that must parse, content sniffed against the claimed type, and previews of text. The app
// renders the results as text, never as markup.

import { fromUtf8, startsWith, utf8 } from "./bytes.js";
import { Failure } from "./errors.js";
import { isControl, isDisplayableText } from "./purpose.js";

export function isHiddenOrControl(u: number): boolean {
  const inr = (a: number, b: number) => u >= a && u <= b;
  return (
    isControl(u) ||
    [0x00ad, 0x034f, 0x061c, 0x115f, 0x1160, 0x17b4, 0x17b5, 0x3164, 0xfeff, 0xffa0, 0x06dd, 0x070f, 0x08e2, 0x110bd, 0x110cd].includes(u) ||
    inr(0x180b, 0x180f) ||
    inr(0x200b, 0x200f) ||
    inr(0x2028, 0x202e) ||
    inr(0x205f, 0x206f) ||
    inr(0xfe00, 0xfe0f) ||
    inr(0xfff0, 0xfffb) ||
    inr(0x1bca0, 0x1bca3) ||
    inr(0x1d173, 0x1d17a) ||
    inr(0xe0000, 0xe0fff) ||
    inr(0x0600, 0x0605) ||
    inr(0xe000, 0xf8ff) ||
    inr(0xf0000, 0x10ffff) ||
    (u & 0xfffe) === 0xfffe ||
    inr(0xfdd0, 0xfdef)
  );
}

/** Code points of a string; a lone surrogate (which Rust strings cannot hold) counts as hidden. */
function* codePoints(s: string): Generator<number> {
  for (const ch of s) yield ch.codePointAt(0)!;
}

function escapedChar(u: number): string {
  if (u === 0x5c) return "\\\\";
  if (isHiddenOrControl(u) || (u >= 0xd800 && u <= 0xdfff)) return `\\u{${u.toString(16)}}`;
  return String.fromCodePoint(u);
}

export function escape(s: string): string {
  let out = "";
  for (const u of codePoints(s)) out += escapedChar(u);
  return out;
}

/** Escaped, and cut after `max` characters with a note saying how many more there were. */
export function field(s: string, max: number): string {
  const chars = Array.from(escape(s));
  if (chars.length <= max) return chars.join("");
  return `${chars.slice(0, max).join("")}… [${chars.length - max} more characters not shown]`;
}

const TOKEN_CHARS = "!#$&-^_.+";
const isAsciiAlnum = (c: string) => /^[A-Za-z0-9]$/.test(c);

export function mediaType(s: string): string {
  const bad = () => new Failure("invalid_input", `the media type "${field(s, 80)}" is not a type/subtype token`);
  const slash = s.indexOf("/");
  if (slash < 0) throw bad();
  const t = s.slice(0, slash);
  const sub = s.slice(slash + 1);
  const nameOk = (n: string) =>
    n.length > 0 && n.length <= 127 && isAsciiAlnum(n[0]!) && Array.from(n).every((c) => isAsciiAlnum(c) || TOKEN_CHARS.includes(c));
  if (!nameOk(t) || !nameOk(sub)) throw bad();
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function isIpv6(addr: string): boolean {
  // The grammar of RFC 4291 section 2.2 (what Rust's Ipv6Addr parses), with an IPv4 tail allowed.
  if (!/^[0-9A-Fa-f:.]+$/.test(addr)) return false;
  let head = addr;
  let want = 8;
  const last = addr.slice(addr.lastIndexOf(":") + 1);
  if (last.includes(".")) {
    const parts = last.split(".");
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return false;
    head = addr.slice(0, addr.length - last.length);
    want = 6;
    if (!head.endsWith("::")) {
      if (!head.endsWith(":")) return false;
      head = head.slice(0, -1);
    }
  }
  const hex = (g: string) => /^[0-9A-Fa-f]{1,4}$/.test(g);
  const halves = head.split("::");
  if (halves.length > 2) return false;
  if (halves.length === 2) {
    const left = halves[0] === "" ? [] : halves[0]!.split(":");
    const right = halves[1] === "" ? [] : halves[1]!.split(":");
    return left.every(hex) && right.every(hex) && left.length + right.length < want;
  }
  const all = head.split(":");
  return all.length === want && all.every(hex);
}

/** A web origin as the agent sends it: http(s), a lower-case host name or bracketed IPv6, an optional port. */
export function origin(s: string): string {
  const bad = () => new Failure("invalid_input", `"${field(s, 80)}" is not a web origin`);
  if (utf8(s).length > 255) throw bad();
  let rest: string;
  if (s.startsWith("https://")) rest = s.slice(8);
  else if (s.startsWith("http://")) rest = s.slice(7);
  else throw bad();
  let host: string;
  let port: string | null;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw bad();
    const addr = rest.slice(1, close);
    if (!isIpv6(addr)) throw bad();
    host = rest.slice(0, close + 1);
    const after = rest.slice(close + 1);
    port = after.startsWith(":") ? after.slice(1) : null;
  } else {
    const colon = rest.indexOf(":");
    host = colon < 0 ? rest : rest.slice(0, colon);
    port = colon < 0 ? null : rest.slice(colon + 1);
  }
  if (!host.startsWith("[")) {
    const labelOk = (l: string) => l.length > 0 && l.length <= 63 && !l.startsWith("-") && !l.endsWith("-") && /^[a-z0-9-]+$/.test(l);
    if (host === "" || !host.split(".").every(labelOk)) throw bad();
  }
  if (port !== null) {
    const ok = port.length > 0 && port.length <= 5 && /^[0-9]+$/.test(port) && !port.startsWith("0");
    if (!ok || Number(port) === 0 || Number(port) > 65535) throw bad();
  } else if (rest.length !== host.length) {
    throw bad();
  }
  return s;
}

export type Sniffed = "pdf" | "png" | "jpeg" | "gif" | "zip" | "gzip" | "text" | "binary";

export const SNIFFED_DESCRIPTION: Record<Sniffed, string> = {
  pdf: "a PDF file",
  png: "a PNG image",
  jpeg: "a JPEG image",
  gif: "a GIF image",
  zip: "a ZIP archive (or an office document)",
  gzip: "gzip-compressed data",
  text: "text",
  binary: "binary data",
};

export function sniff(data: Uint8Array): Sniffed {
  if (startsWith(data, utf8("%PDF-"))) return "pdf";
  if (startsWith(data, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(data, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(data, utf8("GIF8"))) return "gif";
  if (startsWith(data, [0x50, 0x4b, 0x03, 0x04]) || startsWith(data, [0x50, 0x4b, 0x05, 0x06])) return "zip";
  if (startsWith(data, [0x1f, 0x8b])) return "gzip";
  if (isDisplayableText(data)) return "text";
  return "binary";
}

export function isTextType(t: string): boolean {
  return t.startsWith("text/") || t === "application/json" || t === "application/xml" || t.endsWith("+json") || t.endsWith("+xml");
}

/** A warning when the content does not look like what the computer calls it; `null` when it does. */
export function typeMismatch(mediaType: string, data: Uint8Array): string | null {
  const got = sniff(data);
  let expected: Sniffed[] | null = null;
  if (isTextType(mediaType)) expected = ["text"];
  else if (mediaType === "application/pdf") expected = ["pdf"];
  else if (mediaType === "image/png") expected = ["png"];
  else if (mediaType === "image/jpeg") expected = ["jpeg"];
  else if (mediaType === "image/gif") expected = ["gif"];
  else if (mediaType === "application/zip") expected = ["zip"];
  else if (mediaType.startsWith("application/vnd.openxmlformats") || mediaType.startsWith("application/vnd.oasis")) expected = ["zip"];
  else if (mediaType === "application/gzip") expected = ["gzip"];
  if (expected && !expected.includes(got)) {
    return `the computer calls this ${escape(mediaType)}, but it looks like ${SNIFFED_DESCRIPTION[got]}`;
  }
  if (!expected && got !== "binary" && got !== "text") {
    return `the computer calls this ${escape(mediaType)}, and it looks like ${SNIFFED_DESCRIPTION[got]}`;
  }
  return null;
}

function collapseBlanks(line: string): string {
  let out = "";
  let run: string[] = [];
  const flush = () => {
    if (run.length > 8) out += `[${run.length} spaces]`;
    else for (const c of run) out += c === "\t" ? "    " : c;
    run = [];
  };
  for (const u of codePoints(line)) {
    if (u === 0x20 || u === 0x09) {
      run.push(String.fromCodePoint(u));
    } else {
      flush();
      out += escapedChar(u);
    }
  }
  flush();
  return out;
}

/** Lines of a text document as the phone shows them; `null` when it is not UTF-8. */
export function preview(data: Uint8Array, width: number, maxLines: number): string[] | null {
  const text = fromUtf8(data);
  if (text === null) return null;
  const w = Math.max(width, 16);
  let out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const chars = Array.from(collapseBlanks(line));
    if (chars.length === 0) {
      out.push("");
      continue;
    }
    for (let i = 0; i < chars.length; i += w) {
      const s = chars.slice(i, i + w).join("");
      out.push(i === 0 ? s : `↪ ${s}`);
    }
  }
  if (text.endsWith("\n")) out.pop();
  if (out.length > maxLines) {
    const hidden = out.length - maxLines;
    out = out.slice(0, maxLines);
    out.push(`[… ${hidden} more lines not shown; the whole document is what you sign]`);
  }
  return out;
}
