// What a phone never signs as a document (kalit_core::purpose): Kalit's own statements in any format,
// and, as a raw signature, any complete ASN.1 SEQUENCE or SET (a CSR body, a certificate body, CMS
// signed attributes...), whose signature means something other than "I sign this document".

import { fromUtf8, startsWith, utf8 } from "./bytes.js";
import { Failure } from "./errors.js";

const KALIT_PREFIX = utf8("kalit/");

export function checkDocument(data: Uint8Array, raw: boolean): void {
  if (startsWith(data, KALIT_PREFIX)) {
    throw new Failure(
      "refused_by_policy",
      'this document begins with "kalit/", the prefix of Kalit\'s own protocol statements: a phone never signs such bytes as a document',
    );
  }
  const what = raw ? derStructure(data) : null;
  if (what) {
    throw new Failure(
      "refused_by_policy",
      `this document is ${what}, an ASN.1 structure whose signature means something other than "I sign this document"; Kalit never makes a raw signature over such bytes (ask for a CMS signature of the file instead)`,
    );
  }
}

/** A raw signature over bytes that are not text needs the person's separate confirmation. */
export function needsBlindConfirmation(data: Uint8Array): boolean {
  return !isDisplayableText(data);
}

/** Rust's `char::is_control`: the C0 and C1 control characters. */
export function isControl(cp: number): boolean {
  return cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);
}

export function isDisplayableText(data: Uint8Array): boolean {
  const s = fromUtf8(data);
  if (s === null) return false;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (isControl(cp) && cp !== 0x09 && cp !== 0x0a && cp !== 0x0d && cp !== 0x0c) return false;
  }
  return true;
}

/** [length or null for indefinite, offset after it], or null when unreadable. */
function readLen(d: Uint8Array, at: number): [number | null, number] | null {
  if (at >= d.length) return null;
  const first = d[at]!;
  if (first < 0x80) return [first, at + 1];
  if (first === 0x80) return [null, at + 1];
  const n = first & 0x7f;
  if (n > 8 || d.length - (at + 1) < n) return null;
  let len = 0;
  for (let i = 0; i < n; i++) {
    len = len * 256 + d[at + 1 + i]!;
    if (len > Number.MAX_SAFE_INTEGER / 256) return null;
  }
  return [len, at + 1 + n];
}

/** The children of a constructed value: [tag, start, end]; null when they do not parse. */
function children(d: Uint8Array, start: number, end: number): [number, number, number][] | null {
  const out: [number, number, number][] = [];
  let at = start;
  while (at < end) {
    const tag = d[at]!;
    if ((tag & 0x1f) === 0x1f) return null;
    const l = readLen(d.subarray(0, end), at + 1);
    if (!l || l[0] === null) return null;
    const [len, body] = l;
    if (end - body < len) return null;
    out.push([tag, body, body + len]);
    at = body + len;
    if (out.length > 64) break;
  }
  return out;
}

const startsWithTags = (tags: number[], prefix: number[]) => prefix.every((t, i) => tags[i] === t);
const sameTags = (tags: number[], want: number[]) => tags.length === want.length && startsWithTags(tags, want);

function derStructure(data: Uint8Array): string | null {
  if (data.length === 0) return null;
  const tag = data[0]!;
  if (tag !== 0x30 && tag !== 0x31) return null;
  const l = readLen(data, 1);
  if (!l) return null;
  const [len, body] = l;
  if (len === null) return "an ASN.1 BER structure";
  if (len !== data.length - body) return null;
  const kids = children(data, body, data.length) ?? [];
  const tags = kids.map((k) => k[0]);
  if (tag === 0x31) return tags.every((t) => t === 0x30) ? "a set of CMS signed attributes" : "an ASN.1 SET";
  if (startsWithTags(tags, [0x02, 0x30, 0x30, 0xa0]) || sameTags(tags, [0x02, 0x30, 0x30])) {
    return "a certificate request body (CertificationRequestInfo)";
  }
  if (startsWithTags(tags, [0xa0, 0x02, 0x30, 0x30, 0x30, 0x30, 0x30]) || startsWithTags(tags, [0x02, 0x30, 0x30, 0x30, 0x30, 0x30])) {
    return "a certificate body (TBSCertificate)";
  }
  if (
    startsWithTags(tags, [0x02, 0x30, 0x30, 0x17]) ||
    startsWithTags(tags, [0x02, 0x30, 0x30, 0x18]) ||
    startsWithTags(tags, [0x30, 0x30, 0x17])
  ) {
    return "a certificate revocation list body (TBSCertList)";
  }
  const first = kids[0];
  if (tags[0] === 0x30 && tags.length <= 2 && first && (children(data, first[1], first[2]) ?? []).some((c) => c[0] === 0x30)) {
    return "an OCSP request, a timestamp request or a similar signed structure";
  }
  return "an ASN.1 DER structure";
}
