// The signer's check of a prepared PDF (kalit_core::pdf::inspect_prepared), for the phone app: the
// computer that prepared it may lie. Exactly one unsigned PAdES signature field, whose /ByteRange covers
// the whole file but the hole that is its own /Contents; the last revision changes nothing but what adding
// that field may change (the catalog's /AcroForm, the form's /Fields and /SigFlags, a page's /Annots
// gaining the widget); the digest, computed here from the bytes. Held to the committed vectors
// crates/kalit-core/vectors/pdf-v1.json, which the Rust check generates.
//
// A small reader of PDF objects, bounded everywhere (nesting, counts, decompressed sizes, loops): enough
// to read cross-reference tables and streams, object streams and dictionaries. Pages are shown by pdf.js
// (app/pdf-view.ts); nothing here renders or interprets content.

import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { equal, fromHex } from "./bytes.js";
import { signCmsDigest } from "./cms.js";
import { readTlv } from "./der.js";
import { Failure } from "./errors.js";
import type { SigningKey } from "./keys.js";

/** The largest PDF the phone reads (kalit_core::pdf::MAX_PDF_LEN). */
export const MAX_PDF_LEN = 256 * 1024 * 1024;
const MAX_DECOMPRESSED = 64 * 1024 * 1024;
const MAX_DEPTH = 100;
const MAX_FIELD_DEPTH = 16;
const MAX_PAGES = 100_000;
const MAX_XREF_SECTIONS = 1_000;

/** What the signer is shown about a prepared PDF, and the digest it signs. */
export interface PdfInspection {
  /** The field being signed. */
  field: string;
  /** The page (from 1) whose annotations hold the field's widget; null when no page shows it. */
  fieldPage: number | null;
  pages: number;
  title: string | null;
  earlierSignatures: number;
  /** SHA-256 over the byte ranges, computed here. */
  sha256: Uint8Array;
  byteRange: [number, number, number, number];
}

// ---- objects ----

export class Name {
  constructor(readonly v: string) {}
}
export class Str {
  constructor(readonly bytes: Uint8Array) {}
}
export class Ref {
  constructor(
    readonly num: number,
    readonly gen: number,
  ) {}
}
export class Num {
  constructor(
    readonly v: number,
    readonly real: boolean,
  ) {}
}
export class Dict {
  constructor(readonly map: Map<string, Obj>) {}
  get(k: string): Obj | undefined {
    return this.map.get(k);
  }
  has(k: string): boolean {
    return this.map.has(k);
  }
}
export class Stream {
  constructor(
    readonly dict: Dict,
    readonly raw: Uint8Array,
  ) {}
}
export type Obj = null | boolean | Num | Name | Str | Ref | Dict | Stream | Obj[];

const invalid = (m: string) => new Failure("invalid_input", m);
const refused = (m: string) => new Failure("refused_by_policy", m);

/** Structural equality (lopdf's), with reals compared at its single precision. */
export function same(a: Obj | undefined, b: Obj | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined || typeof a !== "object" || typeof b !== "object") return false;
  if (a instanceof Num && b instanceof Num) return a.real === b.real && Math.fround(a.v) === Math.fround(b.v);
  if (a instanceof Name && b instanceof Name) return a.v === b.v;
  if (a instanceof Str && b instanceof Str) return equal(a.bytes, b.bytes);
  if (a instanceof Ref && b instanceof Ref) return a.num === b.num && a.gen === b.gen;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a instanceof Dict && b instanceof Dict) {
    if (a.map.size !== b.map.size) return false;
    for (const [k, v] of a.map) if (!b.map.has(k) || !same(v, b.map.get(k))) return false;
    return true;
  }
  if (a instanceof Stream && b instanceof Stream) return same(a.dict, b.dict) && equal(a.raw, b.raw);
  return false;
}


// ---- lexer and parser ----

const isSpace = (c: number) => c === 0 || c === 9 || c === 10 || c === 12 || c === 13 || c === 32;
const isDelim = (c: number) => c === 0x28 || c === 0x29 || c === 0x3c || c === 0x3e || c === 0x5b || c === 0x5d || c === 0x7b || c === 0x7d || c === 0x2f || c === 0x25;
const hexValue = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);
function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

class Parser {
  constructor(
    readonly b: Uint8Array,
    public pos: number,
    readonly end = b.length,
  ) {}

  skipSpace(): void {
    const { b } = this;
    while (this.pos < this.end) {
      const c = b[this.pos]!;
      if (isSpace(c)) this.pos++;
      else if (c === 0x25) while (this.pos < this.end && b[this.pos] !== 10 && b[this.pos] !== 13) this.pos++;
      else break;
    }
  }

  /** A regular token (keyword or number) at the position, without moving when there is none. */
  peekWord(): string {
    this.skipSpace();
    let i = this.pos;
    while (i < this.end && !isSpace(this.b[i]!) && !isDelim(this.b[i]!)) i++;
    return latin1(this.b.subarray(this.pos, Math.min(i, this.pos + 64)));
  }

  word(): string {
    const w = this.peekWord();
    this.pos += w.length;
    return w;
  }

  /** A non-negative integer token, or an error naming `what`. */
  uint(what: string): number {
    const w = this.word();
    if (!/^\d{1,15}$/.test(w)) throw invalid(`unreadable PDF: ${what} is damaged near byte ${this.pos}`);
    return Number(w);
  }

  expect(w: string): void {
    if (this.word() !== w) throw invalid(`unreadable PDF: expected "${w}" at byte ${this.pos}`);
  }

  object(depth = 0): Obj {
    if (depth > MAX_DEPTH) throw invalid("unreadable PDF: objects nested too deep");
    this.skipSpace();
    if (this.pos >= this.end) throw invalid("unreadable PDF: it ends inside an object");
    const { b } = this;
    const c = b[this.pos]!;
    if (c === 0x2f) return this.name();
    if (c === 0x28) return this.literal();
    if (c === 0x3c && b[this.pos + 1] === 0x3c) {
      this.pos += 2;
      const map = new Map<string, Obj>();
      for (;;) {
        this.skipSpace();
        if (b[this.pos] === 0x3e && b[this.pos + 1] === 0x3e) {
          this.pos += 2;
          return new Dict(map);
        }
        if (b[this.pos] !== 0x2f) throw invalid(`unreadable PDF: a dictionary key is not a name at byte ${this.pos}`);
        const k = this.name().v;
        map.set(k, this.object(depth + 1));
      }
    }
    if (c === 0x3c) return this.hex();
    if (c === 0x5b) {
      this.pos++;
      const out: Obj[] = [];
      for (;;) {
        this.skipSpace();
        if (b[this.pos] === 0x5d) {
          this.pos++;
          return out;
        }
        if (out.length > 1_000_000) throw invalid("unreadable PDF: an array is too long");
        out.push(this.object(depth + 1));
      }
    }
    const w = this.word();
    if (w === "true") return true;
    if (w === "false") return false;
    if (w === "null") return null;
    if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(w)) throw invalid(`unreadable PDF: unexpected ${JSON.stringify(w.slice(0, 20))} at byte ${this.pos}`);
    const real = w.includes(".");
    if (!real && /^\d+$/.test(w)) {
      // "n g R" is a reference.
      const save = this.pos;
      const g = this.word();
      if (/^\d+$/.test(g) && this.word() === "R") return new Ref(Number(w), Number(g));
      this.pos = save;
    }
    return new Num(Number(w), real);
  }

  name(): Name {
    this.pos++;
    const out: number[] = [];
    while (this.pos < this.end) {
      const c = this.b[this.pos]!;
      if (isSpace(c) || isDelim(c)) break;
      if (c === 0x23 && hexValue(this.b[this.pos + 1] ?? 0) >= 0 && hexValue(this.b[this.pos + 2] ?? 0) >= 0) {
        out.push(hexValue(this.b[this.pos + 1]!) * 16 + hexValue(this.b[this.pos + 2]!));
        this.pos += 3;
      } else {
        out.push(c);
        this.pos++;
      }
    }
    return new Name(latin1(Uint8Array.from(out)));
  }

  literal(): Str {
    const { b } = this;
    this.pos++;
    const out: number[] = [];
    let depth = 1;
    while (this.pos < this.end) {
      const c = b[this.pos++]!;
      if (c === 0x5c) {
        const e = b[this.pos++] ?? 0;
        const simple: Record<number, number> = { 0x6e: 10, 0x72: 13, 0x74: 9, 0x62: 8, 0x66: 12, 0x28: 0x28, 0x29: 0x29, 0x5c: 0x5c };
        if (simple[e] !== undefined) out.push(simple[e]!);
        else if (e >= 0x30 && e <= 0x37) {
          let v = e - 0x30;
          for (let k = 0; k < 2 && (b[this.pos] ?? 0) >= 0x30 && (b[this.pos] ?? 0) <= 0x37; k++) v = v * 8 + (b[this.pos++]! - 0x30);
          out.push(v & 0xff);
        } else if (e === 13) {
          if (b[this.pos] === 10) this.pos++;
        } else if (e !== 10) out.push(e);
      } else if (c === 0x28) {
        depth++;
        out.push(c);
      } else if (c === 0x29) {
        if (--depth === 0) return new Str(Uint8Array.from(out));
        out.push(c);
      } else out.push(c);
    }
    throw invalid("unreadable PDF: a string does not end");
  }

  hex(): Str {
    const { b } = this;
    this.pos++;
    const out: number[] = [];
    let hi = -1;
    while (this.pos < this.end) {
      const c = b[this.pos++]!;
      if (c === 0x3e) {
        if (hi >= 0) out.push(hi * 16);
        return new Str(Uint8Array.from(out));
      }
      if (isSpace(c)) continue;
      const v = hexValue(c);
      if (v < 0) throw invalid("unreadable PDF: a hex string holds a non-hex character");
      if (hi < 0) hi = v;
      else {
        out.push(hi * 16 + v);
        hi = -1;
      }
    }
    throw invalid("unreadable PDF: a hex string does not end");
  }
}

// ---- streams ----

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const ds = new DecompressionStream("deflate");
  const writer = ds.writable.getWriter();
  writer.write(data as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  const reader = ds.readable.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_DECOMPRESSED) {
        await reader.cancel();
        throw invalid(`unreadable PDF: a stream decompresses to more than ${MAX_DECOMPRESSED >> 20} MiB`);
      }
      parts.push(value);
    }
  } catch (e) {
    if (e instanceof Failure) throw e;
    throw invalid("unreadable PDF: a compressed stream is damaged");
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** PNG predictors (10 to 15) over rows of `columns` bytes. */
function unpredict(data: Uint8Array, columns: number): Uint8Array {
  const row = columns + 1;
  if (columns < 1 || data.length % row !== 0) throw invalid("unreadable PDF: a predicted stream has a wrong length");
  const rows = data.length / row;
  const out = new Uint8Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    const type = data[r * row]!;
    for (let i = 0; i < columns; i++) {
      const x = data[r * row + 1 + i]!;
      const left = i > 0 ? out[r * columns + i - 1]! : 0;
      const up = r > 0 ? out[(r - 1) * columns + i]! : 0;
      const ul = r > 0 && i > 0 ? out[(r - 1) * columns + i - 1]! : 0;
      let v: number;
      switch (type) {
        case 0: v = x; break;
        case 1: v = x + left; break;
        case 2: v = x + up; break;
        case 3: v = x + ((left + up) >> 1); break;
        case 4: {
          const p = left + up - ul;
          const pa = Math.abs(p - left), pb = Math.abs(p - up), pc = Math.abs(p - ul);
          v = x + (pa <= pb && pa <= pc ? left : pb <= pc ? up : ul);
          break;
        }
        default: throw invalid("unreadable PDF: an unknown PNG predictor");
      }
      out[r * columns + i] = v & 0xff;
    }
  }
  return out;
}

// ---- the document ----

interface Entry {
  type: 0 | 1 | 2;
  a: number;
  b: number;
}

const int = (o: Obj | undefined): number | null => (o instanceof Num && !o.real && Number.isSafeInteger(o.v) ? o.v : null);
const nameOf = (o: Obj | undefined): string | null => (o instanceof Name ? o.v : null);

/** One cross-reference section: its entries and its trailer (a table's, or the stream's dictionary). */
interface Section {
  entries: Map<number, Entry>;
  trailer: Dict;
}

export class PdfDocument {
  private cache = new Map<number, Obj>();
  private objStreams = new Map<number, { data: Uint8Array; offsets: Map<number, number> }>();

  private constructor(
    readonly bytes: Uint8Array,
    readonly entries: Map<number, Entry>,
    readonly trailer: Dict,
    /** The newest section's entries: what its revision wrote. */
    readonly last: Map<number, Entry>,
  ) {}

  /** Reads the document whose newest cross-reference section starts at `start`, following /Prev. */
  static async at(bytes: Uint8Array, start: number): Promise<PdfDocument> {
    const entries = new Map<number, Entry>();
    let trailer: Dict | null = null;
    let last: Map<number, Entry> | null = null;
    const seen = new Set<number>();
    let at: number | null = start;
    while (at !== null) {
      if (seen.has(at) || seen.size >= MAX_XREF_SECTIONS) throw invalid("the PDF's cross-references loop");
      seen.add(at);
      const s = await readSection(bytes, at);
      trailer ??= s.trailer;
      last ??= s.entries;
      for (const [n, e] of s.entries) if (!entries.has(n)) entries.set(n, e);
      const prev = s.trailer.get("Prev");
      at = prev === undefined ? null : int(prev);
      if (prev !== undefined && (at === null || at < 0 || at >= bytes.length)) throw invalid("the PDF's /Prev points outside the file");
    }
    return new PdfDocument(bytes, entries, trailer!, last!);
  }

  /** Reads the document from the `startxref` at its end. */
  static async open(bytes: Uint8Array): Promise<PdfDocument> {
    return PdfDocument.at(bytes, startXref(bytes));
  }

  /** The object `num`, null when it is free or absent. */
  async get(num: number): Promise<Obj> {
    if (this.cache.has(num)) return this.cache.get(num)!;
    const e = this.entries.get(num);
    let o: Obj = null;
    if (e?.type === 1) o = await this.readAt(num, e.a);
    else if (e?.type === 2) o = await this.readCompressed(num, e.a);
    this.cache.set(num, o);
    return o;
  }

  /** Follows a reference (one step; a PDF's references point at objects, never at references). */
  async resolve(o: Obj | undefined): Promise<Obj | undefined> {
    return o instanceof Ref ? this.get(o.num) : o;
  }

  async dict(o: Obj | undefined): Promise<Dict | null> {
    const r = await this.resolve(o);
    return r instanceof Dict ? r : r instanceof Stream ? r.dict : null;
  }

  async array(o: Obj | undefined): Promise<Obj[] | null> {
    const r = await this.resolve(o);
    return Array.isArray(r) ? r : null;
  }

  async text(d: Dict, key: string): Promise<string | null> {
    const o = await this.resolve(d.get(key));
    return o instanceof Str ? textString(o.bytes) : null;
  }

  private async readAt(num: number, offset: number): Promise<Obj> {
    if (offset < 0 || offset >= this.bytes.length) throw invalid(`the PDF's object ${num} is outside the file`);
    const p = new Parser(this.bytes, offset);
    const what = `the object ${num}`;
    if (p.uint(what) !== num) throw invalid(`the PDF's cross-reference for object ${num} points elsewhere`);
    p.uint(what);
    p.expect("obj");
    return readBody(p, (n) => this.lengthOf(n, num));
  }

  private async lengthOf(o: Obj | undefined, of: number): Promise<number | null> {
    if (o instanceof Ref) {
      if (o.num === of) return null;
      return int(await this.get(o.num));
    }
    return int(o);
  }

  private async readCompressed(num: number, container: number): Promise<Obj> {
    let s = this.objStreams.get(container);
    if (!s) {
      const e = this.entries.get(container);
      if (e?.type !== 1) throw invalid(`the PDF's object stream ${container} is missing`);
      const o = await this.readAt(container, e.a);
      if (!(o instanceof Stream) || nameOf(o.dict.get("Type")) !== "ObjStm") throw invalid(`the PDF's object ${container} is not an object stream`);
      const data = await decode(o);
      const n = int(o.dict.get("N"));
      const first = int(o.dict.get("First"));
      if (n === null || first === null || n < 0 || n > 1_000_000 || first > data.length) throw invalid("the PDF has a damaged object stream");
      const head = new Parser(data, 0, first);
      const offsets = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const id = head.uint("an object stream");
        const off = head.uint("an object stream");
        if (first + off > data.length) throw invalid("the PDF has a damaged object stream");
        if (!offsets.has(id)) offsets.set(id, first + off);
      }
      s = { data, offsets };
      this.objStreams.set(container, s);
    }
    const at = s.offsets.get(num);
    if (at === undefined) return null;
    return new Parser(s.data, at).object();
  }
}

/** The body of an indirect object after "n g obj": an object, and its stream's bytes when it has one. */
async function readBody(p: Parser, length: (o: Obj | undefined) => Promise<number | null>): Promise<Obj> {
  const o = p.object();
  if (!(o instanceof Dict) || p.peekWord() !== "stream") return o;
  p.word();
  const { b } = p;
  if (b[p.pos] === 13) p.pos++;
  if (b[p.pos] === 10) p.pos++;
  const start = p.pos;
  const n = await length(o.get("Length"));
  const endsAt = (at: number) => {
    const q = new Parser(b, at);
    return q.peekWord() === "endstream";
  };
  if (n !== null && n >= 0 && start + n <= b.length && endsAt(start + n)) return new Stream(o, b.subarray(start, start + n));
  // A wrong /Length: the data ends before the next "endstream".
  const at = indexOf(b, ENDSTREAM, start);
  if (at < 0) throw invalid("unreadable PDF: a stream does not end");
  let end = at;
  if (b[end - 1] === 10) end--;
  if (b[end - 1] === 13) end--;
  return new Stream(o, b.subarray(start, end));
}

const ENDSTREAM = new TextEncoder().encode("endstream");

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0, to = hay.length): number {
  outer: for (let i = from; i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function lastIndexOf(hay: Uint8Array, needle: Uint8Array, from: number, to: number): number {
  outer: for (let i = to - needle.length; i >= from; i--) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A stream's data, FlateDecode (with PNG predictors) or as stored. */
async function decode(s: Stream): Promise<Uint8Array> {
  const f = s.dict.get("Filter");
  const filters = Array.isArray(f) ? f.map(nameOf) : f === undefined ? [] : [nameOf(f)];
  if (filters.length === 0) return s.raw;
  if (filters.length !== 1 || filters[0] !== "FlateDecode") throw invalid(`the PDF uses a stream filter this phone does not read (${filters.join(", ")})`);
  let data = await inflate(s.raw);
  const dp = s.dict.get("DecodeParms");
  const parms = Array.isArray(dp) ? dp[0] : dp;
  if (parms instanceof Dict) {
    const predictor = int(parms.get("Predictor")) ?? 1;
    if (predictor >= 10) data = unpredict(data, (int(parms.get("Columns")) ?? 1) * (int(parms.get("Colors")) ?? 1) * ((int(parms.get("BitsPerComponent")) ?? 8) / 8));
    else if (predictor !== 1) throw invalid("the PDF uses a TIFF predictor this phone does not read");
  }
  return data;
}

function startXref(b: Uint8Array): number {
  const from = Math.max(0, b.length - 1024);
  const at = lastIndexOf(b, new TextEncoder().encode("startxref"), from, b.length);
  if (at < 0) throw invalid("the PDF has no startxref at its end");
  const n = new Parser(b, at + 9).uint("startxref");
  if (n <= 0 || n >= at) throw invalid("the PDF's startxref points outside the file");
  return n;
}

async function readSection(b: Uint8Array, at: number): Promise<Section> {
  const p = new Parser(b, at);
  const entries = new Map<number, Entry>();
  if (p.peekWord() === "xref") {
    p.word();
    for (;;) {
      if (p.peekWord() === "trailer") {
        p.word();
        break;
      }
      const what = "the cross-reference table";
      const first = p.uint(what);
      const count = p.uint(what);
      if (count > 10_000_000) throw invalid("the PDF's cross-reference table is damaged");
      for (let i = 0; i < count; i++) {
        const off = p.uint(what);
        const gen = p.uint(what);
        const kind = p.word();
        if (kind !== "n" && kind !== "f") throw invalid("the PDF's cross-reference table is damaged");
        if (!entries.has(first + i)) entries.set(first + i, kind === "n" ? { type: 1, a: off, b: gen } : { type: 0, a: 0, b: gen });
      }
    }
    const trailer = p.object();
    if (!(trailer instanceof Dict)) throw invalid("the PDF's trailer is not a dictionary");
    // A hybrid file: the stream's entries for what the table leaves free or out.
    const xs = int(trailer.get("XRefStm"));
    if (xs !== null) {
      const more = await readSection(b, xs);
      for (const [n, e] of more.entries) if (entries.get(n)?.type !== 1) entries.set(n, e);
    }
    return { entries, trailer };
  }
  const what = "the cross-reference stream";
  p.uint(what);
  p.uint(what);
  p.expect("obj");
  const s = await readBody(p, async (o) => int(o));
  if (!(s instanceof Stream) || nameOf(s.dict.get("Type")) !== "XRef") throw invalid("the PDF's startxref points at no cross-reference");
  const data = await decode(s);
  const w = s.dict.get("W");
  const widths = Array.isArray(w) ? w.map(int) : [];
  if (widths.length !== 3 || widths.some((x) => x === null || x < 0 || x > 8)) throw invalid("the PDF's cross-reference stream has a bad /W");
  const [w0, w1, w2] = widths as [number, number, number];
  const size = int(s.dict.get("Size")) ?? 0;
  const idx = s.dict.get("Index");
  const index = Array.isArray(idx) ? idx.map(int) : [0, size];
  const rowLen = w0 + w1 + w2;
  if (rowLen === 0 || index.length % 2 !== 0 || index.some((x) => x === null || x < 0)) throw invalid("the PDF's cross-reference stream has a bad /Index");
  let row = 0;
  const field = (at: number, width: number, dflt: number) => {
    if (width === 0) return dflt;
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + data[at + i]!;
    return v;
  };
  for (let i = 0; i < index.length; i += 2) {
    const [first, count] = [index[i]!, index[i + 1]!];
    for (let k = 0; k < count; k++, row++) {
      const off = row * rowLen;
      if (off + rowLen > data.length) throw invalid("the PDF's cross-reference stream is shorter than its /Index");
      const type = field(off, w0, 1);
      const e: Entry = { type: type === 0 ? 0 : type === 2 ? 2 : 1, a: field(off + w0, w1, 0), b: field(off + w0 + w1, w2, 0) };
      if (type > 2) continue;
      if (!entries.has(first + k)) entries.set(first + k, e);
    }
  }
  return { entries, trailer: s.dict };
}

/** A PDF text string: UTF-16BE or UTF-8 with their byte order marks, else PDFDocEncoding (as Latin-1). */
export function textString(b: Uint8Array): string {
  if (b[0] === 0xfe && b[1] === 0xff) {
    let s = "";
    for (let i = 2; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i]! << 8) | b[i + 1]!);
    return s;
  }
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return new TextDecoder().decode(b.subarray(3));
  return latin1(b);
}

// ---- signatures ----

interface SigField {
  name: string;
  id: number | null;
  value: Ref | null;
}

/** Every signature field, through the AcroForm's field tree (bounded depth, each node visited once). */
async function signatureFields(doc: PdfDocument): Promise<SigField[]> {
  const out: SigField[] = [];
  const catalog = await doc.dict(doc.trailer.get("Root"));
  const form = catalog && (await doc.dict(catalog.get("AcroForm")));
  const fields = form && (await doc.array(form.get("Fields")));
  if (!fields) return out;
  const seen = new Set<number>();
  const stack: [Obj, number, string][] = fields.map((f) => [f, 0, ""]);
  while (stack.length > 0) {
    const [f, depth, prefix] = stack.pop()!;
    if (depth > MAX_FIELD_DEPTH || out.length > 10_000) break;
    if (f instanceof Ref) {
      if (seen.has(f.num)) continue;
      seen.add(f.num);
    }
    const d = await doc.dict(f);
    if (!d) continue;
    const part = (await doc.text(d, "T")) ?? "";
    const name = prefix === "" ? part : part === "" ? prefix : `${prefix}.${part}`;
    const kids = d.get("Kids");
    if (Array.isArray(kids)) {
      let named = false;
      for (const k of kids) if ((await doc.dict(k))?.has("T")) named = true;
      if (named) {
        for (const k of kids) stack.push([k, depth + 1, name]);
        continue;
      }
    }
    if (nameOf(d.get("FT")) === "Sig") {
      const v = d.get("V");
      out.push({ name, id: f instanceof Ref ? f.num : null, value: v instanceof Ref ? v : null });
    }
  }
  return out.reverse();
}

interface Signature {
  subFilter: string;
  byteRange: [number, number, number, number];
  unsigned: boolean;
  bytesAfter: number;
}

function readSignature(pdf: Uint8Array, field: string, sig: Dict): Signature {
  const bad = (m: string) => new Failure("invalid_signature", `signature ${JSON.stringify(field)}: ${m}`);
  const br = sig.get("ByteRange");
  const nums = Array.isArray(br) ? br.map(int) : [];
  if (nums.length !== 4 || nums.some((n) => n === null || n < 0)) throw bad("the /ByteRange is not four non-negative numbers");
  const [zero, a, b, c] = nums as [number, number, number, number];
  const end = b + c;
  if (zero !== 0 || a === 0 || b <= a + 1 || end > pdf.length) throw bad("the /ByteRange does not start at 0, overlaps itself or leaves the file");
  const hole = pdf.subarray(a, b);
  if (hole[0] !== 0x3c || hole[hole.length - 1] !== 0x3e || (hole.length - 2) % 2 !== 0) throw bad("the gap in the /ByteRange is not exactly the hex string of the signature");
  const raw = fromHex(latin1(hole.subarray(1, hole.length - 1)));
  if (!raw) throw bad("the gap in the /ByteRange is not hex");
  const contents = sig.get("Contents");
  if (!(contents instanceof Str) || !equal(contents.bytes, raw)) throw bad("the /ByteRange gap is not this signature's /Contents (a wrapped signature)");
  const len = derLength(raw);
  let unsigned: boolean;
  if (len !== null && raw.subarray(len).every((x) => x === 0)) unsigned = false;
  else if (len !== null) throw bad("bytes other than padding follow the signature in /Contents");
  else if (raw.every((x) => x === 0)) unsigned = true;
  else throw bad("/Contents is not DER");
  return { subFilter: nameOf(sig.get("SubFilter")) ?? "", byteRange: [0, a, b, c], unsigned, bytesAfter: pdf.length - end };
}

/** The length of the DER element at the start of `b` (a zero byte is padding, never a tag), or null. */
function derLength(b: Uint8Array): number | null {
  if (b[0] === undefined || b[0] === 0) return null;
  try {
    return readTlv(b, 0, b.length, "a signature").end;
  } catch {
    return null;
  }
}

/** SHA-256 (or SHA-512) over the signed ranges: everything but the hole. */
export function digestRanges(pdf: Uint8Array, br: [number, number, number, number], alg: "sha256" | "sha512" = "sha256"): Uint8Array {
  const h = alg === "sha512" ? sha512.create() : sha256.create();
  h.update(pdf.subarray(0, br[1]));
  h.update(pdf.subarray(br[2], br[2] + br[3]));
  return h.digest();
}

/** The pages, in order, by object number (bounded depth and count, each node once). */
async function pageIds(doc: PdfDocument): Promise<number[]> {
  const catalog = await doc.dict(doc.trailer.get("Root"));
  const out: number[] = [];
  const seen = new Set<number>();
  const walk = async (o: Obj | undefined, depth: number): Promise<void> => {
    if (!(o instanceof Ref) || seen.has(o.num) || depth > 64 || out.length > MAX_PAGES) return;
    seen.add(o.num);
    const d = await doc.dict(o);
    if (!d) return;
    const kids = nameOf(d.get("Type")) === "Page" ? null : await doc.array(d.get("Kids"));
    if (kids) for (const k of kids) await walk(k, depth + 1);
    else if (nameOf(d.get("Type")) === "Page") out.push(o.num);
  };
  await walk(catalog?.get("Pages"), 0);
  return out;
}

function sameExcept(a: Dict, b: Dict, free: string[], what: string): void {
  for (const [k, v] of b.map) {
    if (free.includes(k)) continue;
    if (!a.has(k)) throw refused(`${what} gained /${k}`);
    if (!same(a.get(k), v)) throw refused(`${what}'s /${k} changed`);
  }
  for (const k of a.map.keys()) if (!free.includes(k) && !b.has(k)) throw refused(`${what}'s /${k} was removed`);
}

/**
 * Whether the newest revision (`now`, over `before`) changes only what adding a signature field may
 * change; kalit_core::pdf::changes_allowed, judged on the objects that revision wrote (every other
 * object reads the same in both by construction: `now` is `before` with that section on top).
 */
async function changesAllowed(before: PdfDocument, now: PdfDocument): Promise<void> {
  const root = now.trailer.get("Root");
  if (!(root instanceof Ref)) throw invalid("the PDF has no catalog (/Root)");
  if (!same(before.trailer.get("Root"), root)) throw refused("the catalog was replaced");
  const isSigWidget = async (o: Obj) => {
    const d = await now.dict(o);
    if (!d || nameOf(d.get("FT")) !== "Sig") return false;
    return !d.has("Subtype") || nameOf(d.get("Subtype")) === "Widget";
  };
  const judged = new Set<number>([root.num]);
  const oc = await before.dict(root);
  const nc = await now.dict(root);
  if (!oc || !nc) throw invalid("the PDF's catalog is not a dictionary");
  sameExcept(oc, nc, ["AcroForm", "DSS", "Extensions", "Version", "Perms"], "the catalog");
  if (oc.has("Perms") && !same(oc.get("Perms"), nc.get("Perms"))) throw refused("the catalog's /Perms changed");
  const grows = async (key: string, od: Dict | null, nd: Dict, bad: string, notSig: string) => {
    const o = nd.get(key);
    if (o instanceof Ref) judged.add(o.num);
    const next = (await now.array(o)) ?? [];
    const prev = (od && (await before.array(od.get(key)))) ?? [];
    if (next.length < prev.length || !prev.every((x, i) => same(x, next[i]))) throw refused(bad);
    for (const x of next.slice(prev.length)) if (!(await isSigWidget(x))) throw refused(notSig);
  };
  const formRef = nc.get("AcroForm");
  const nf = await now.dict(formRef);
  if (nf) {
    if (formRef instanceof Ref) judged.add(formRef.num);
    const of = (await before.dict(oc.get("AcroForm"))) ?? new Dict(new Map());
    sameExcept(of, nf, ["Fields", "SigFlags"], "the form");
    await grows("Fields", of, nf, "form fields were removed or reordered", "a form field that is not a signature was added");
  }
  const oldPages = await pageIds(before);
  const newPages = await pageIds(now);
  if (oldPages.length !== newPages.length || oldPages.some((p, i) => p !== newPages[i])) throw refused("pages were added, removed or replaced");
  for (const page of newPages) {
    judged.add(page);
    const op = await before.dict(new Ref(page, 0));
    const np = await now.dict(new Ref(page, 0));
    if (!op || !np) throw refused("a page vanished");
    sameExcept(op, np, ["Annots"], "a page");
    await grows("Annots", op, np, "annotations were removed or reordered on a page", "an annotation that is not a signature was added to a page");
  }
  // Every other object the revision rewrote must read as before, but for one empty signature field that
  // is filled: it may gain its value and its appearance, nothing else.
  let filled = 0;
  for (const [num, e] of now.last) {
    if (judged.has(num)) continue;
    const was = before.entries.get(num);
    if (!was || was.type === 0) continue;
    if (e.type === 0) throw refused(`object ${num} was removed`);
    const [o, n] = [await before.get(num), await now.get(num)];
    if (same(o, n)) continue;
    if (!fillsEmptyField(o, n)) throw refused(`object ${num} changed`);
    if (++filled > 1) throw refused("more than one signature field was filled");
  }
}

/**
 * Whether `now` is the empty signature field `was` (its own widget, no value) given a value (a reference)
 * and an appearance, with every other key as it was (kalit_core::pdf::fills_empty_field).
 */
function fillsEmptyField(was: Obj, now: Obj): boolean {
  if (!(was instanceof Dict) || !(now instanceof Dict)) return false;
  if (nameOf(was.get("FT")) !== "Sig" || was.has("V") || was.has("Kids") || !(now.get("V") instanceof Ref)) return false;
  try {
    sameExcept(was, now, ["V", "AP"], "the field");
    return true;
  } catch {
    return false;
  }
}

/** The signer's check of a prepared PDF: what it shows, and the digest it signs (or why not). */
export async function inspectPrepared(pdf: Uint8Array): Promise<PdfInspection> {
  if (pdf.length > MAX_PDF_LEN) throw invalid(`the PDF is larger than ${MAX_PDF_LEN >> 20} MiB`);
  if (latin1(pdf.subarray(0, 5)) !== "%PDF-") throw invalid("not a PDF (it does not start with %PDF-)");
  const now = await PdfDocument.open(pdf);
  if (now.trailer.has("Encrypt")) throw invalid("the PDF is encrypted: Kalit signs and verifies unencrypted PDFs only");
  const fields = await signatureFields(now);
  const unsigned: [Signature, SigField][] = [];
  let earlier = 0;
  for (const f of fields) {
    if (!f.value) continue;
    const sig = await now.dict(f.value);
    if (!sig) throw invalid("a signature value is not a dictionary");
    const s = readSignature(pdf, f.name, sig);
    if (s.unsigned) unsigned.push([s, f]);
    else earlier++;
  }
  if (unsigned.length === 0) throw invalid("the PDF has no signature field waiting to be signed");
  if (unsigned.length > 1) throw invalid("the PDF has more than one signature field waiting to be signed");
  const [s, field] = unsigned[0]!;
  if (s.bytesAfter !== 0) throw invalid("the signature being made does not cover the whole PDF");
  if (s.subFilter !== "ETSI.CAdES.detached") throw invalid(`the signature being made is ${JSON.stringify(s.subFilter)}, not a PAdES signature`);
  const prev = int(now.trailer.get("Prev"));
  if (prev === null || prev <= 0 || prev >= pdf.length) throw invalid("the PDF to sign is not an incremental update of another PDF");
  const before = await PdfDocument.at(pdf, prev);
  await changesAllowed(before, now).catch((e: unknown) => {
    throw e instanceof Failure && e.code === "refused_by_policy" ? refused(`the PDF to sign was changed beyond adding a signature field: ${e.message}`) : e;
  });
  // One field signed in this revision: added, or an empty one filled.
  const beforeFields = await signatureFields(before);
  const filled = beforeFields.filter((b) => b.value === null && b.id !== null && fields.some((f) => f.id === b.id && f.value !== null)).length;
  if (fields.length < beforeFields.length || fields.length - beforeFields.length + filled !== 1) {
    throw refused("the PDF to sign adds or fills more than one signature field");
  }
  const info = await now.dict(now.trailer.get("Info"));
  const pages = await pageIds(now);
  let fieldPage: number | null = null;
  if (field.id !== null) {
    for (let i = 0; i < pages.length && fieldPage === null; i++) {
      const annots = await now.array((await now.dict(new Ref(pages[i]!, 0)))?.get("Annots"));
      if (annots?.some((a) => a instanceof Ref && a.num === field.id)) fieldPage = i + 1;
    }
  }
  return {
    field: field.name,
    fieldPage,
    pages: pages.length,
    title: info ? await now.text(info, "Title") : null,
    earlierSignatures: earlier,
    sha256: digestRanges(pdf, s.byteRange),
    byteRange: s.byteRange,
  };
}

/**
 * The CMS (PAdES profile: no signingTime, the PDF's /M says the claimed time) that fills a prepared PDF's
 * hole: the check above first, then the digest of the byte ranges computed here (SHA-512 for an Ed25519
 * key, RFC 8419), signed by `key`, whose certificate is `chain[0]`.
 */
export async function signPrepared(key: SigningKey, chain: Uint8Array[], pdf: Uint8Array, pss: boolean): Promise<Uint8Array> {
  const seen = await inspectPrepared(pdf);
  const digest = key.algorithm === "ed25519" ? digestRanges(pdf, seen.byteRange, "sha512") : seen.sha256;
  return signCmsDigest(key, chain, digest, pss, null);
}
