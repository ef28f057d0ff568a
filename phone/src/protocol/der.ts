// The little DER this code reads and writes itself: walking a PKCS#8 or certificate to the fields it
// needs, and ECDSA signatures (WebCrypto gives r||s; X.509, CMS and Kalit's statements want DER).

import { Failure } from "./errors.js";

export interface Tlv {
  tag: number;
  /** Offset of the value in the input. */
  start: number;
  end: number;
  /** Offset of the tag (the whole element is input[headerStart..end]). */
  headerStart: number;
}

const corrupt = (what: string) => new Failure("invalid_input", `${what}: not valid DER`);

/** One DER element at `at`, within `limit`. */
export function readTlv(d: Uint8Array, at: number, limit: number = d.length, what = "a key"): Tlv {
  if (at + 2 > limit) throw corrupt(what);
  const tag = d[at]!;
  if ((tag & 0x1f) === 0x1f) throw corrupt(what);
  let len = d[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw corrupt(what);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + d[p + i]!;
    p += n;
    if (len < 0x80 || (n > 1 && d[at + 2] === 0)) throw corrupt(what); // not the shortest form
  }
  if (p + len > limit) throw corrupt(what);
  return { tag, start: p, end: p + len, headerStart: at };
}

/** The children of a constructed element. */
export function childrenOf(d: Uint8Array, parent: Tlv, what = "a key"): Tlv[] {
  const out: Tlv[] = [];
  let at = parent.start;
  while (at < parent.end) {
    const t = readTlv(d, at, parent.end, what);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** Dotted text of an OBJECT IDENTIFIER's value. */
export function oidText(v: Uint8Array): string {
  if (v.length === 0) return "";
  const parts: number[] = [];
  let n = 0;
  for (const b of v) {
    n = n * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(n);
      n = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const a = first < 80 ? Math.floor(first / 40) : 2;
  return [a, first - a * 40, ...parts].join(".");
}

function lenBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  while (n > 0) {
    out.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return [0x80 | out.length, ...out];
}

export function element(tag: number, value: Uint8Array): Uint8Array {
  const head = [tag, ...lenBytes(value.length)];
  const out = new Uint8Array(head.length + value.length);
  out.set(head, 0);
  out.set(value, head.length);
  return out;
}

/** WebCrypto's IEEE P1363 r||s as a DER ECDSA-Sig-Value. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Failure("internal", "an ECDSA signature of odd length");
  const n = raw.length / 2;
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    const pad = v[0]! & 0x80 ? Uint8Array.of(0) : new Uint8Array(0);
    const body = new Uint8Array(pad.length + v.length);
    body.set(pad, 0);
    body.set(v, pad.length);
    return element(0x02, body);
  };
  const r = int(raw.subarray(0, n));
  const s = int(raw.subarray(n));
  const seq = new Uint8Array(r.length + s.length);
  seq.set(r, 0);
  seq.set(s, r.length);
  return element(0x30, seq);
}
