// Detached CMS SignedData (RFC 5652) as the Rust core builds it (kalit_core::cms::PreparedCms): signed
// attributes contentType (id-data), signingTime (not in the PAdES profile: the PDF's /M says the claimed
// time), messageDigest and signingCertificateV2 (ESSCertIDv2 with
// the SHA-256 of the signer's certificate and its issuer and serial), sorted as DER requires; the
// signature over the DER SET in the key's document scheme (RSA PKCS#1 or PSS with SHA-256, ECDSA P-256
// with SHA-256, Ed25519 with SHA-512 as the message digest, RFC 8419); every certificate of the chain.

import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { concat } from "./bytes.js";
import { element } from "./der.js";
import { Failure } from "./errors.js";
import type { SigningKey } from "./keys.js";
import { parseCertificate } from "./x509.js";

/** An OBJECT IDENTIFIER from its dotted text. */
export function oid(text: string): Uint8Array {
  const parts = text.split(".").map(Number);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const bytes = [p & 0x7f];
    let v = Math.floor(p / 128);
    while (v > 0) {
      bytes.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...bytes);
  }
  return element(0x06, Uint8Array.from(out));
}

const O = {
  data: oid("1.2.840.113549.1.7.1"),
  signedData: oid("1.2.840.113549.1.7.2"),
  contentType: oid("1.2.840.113549.1.9.3"),
  messageDigest: oid("1.2.840.113549.1.9.4"),
  signingTime: oid("1.2.840.113549.1.9.5"),
  signingCertV2: oid("1.2.840.113549.1.9.16.2.47"),
  sha256: oid("2.16.840.1.101.3.4.2.1"),
  sha512: oid("2.16.840.1.101.3.4.2.3"),
  rsa: oid("1.2.840.113549.1.1.1"),
  rsaPss: oid("1.2.840.113549.1.1.10"),
  mgf1: oid("1.2.840.113549.1.1.8"),
  ecdsaSha256: oid("1.2.840.10045.4.3.2"),
  ed25519: oid("1.3.101.112"),
};

const seq = (...items: Uint8Array[]) => element(0x30, concat(...items));
const ctx = (n: number, content: Uint8Array) => element(0xa0 | n, content);
const octets = (b: Uint8Array) => element(0x04, b);
const int = (v: number) => element(0x02, Uint8Array.of(v));
const NULL = Uint8Array.of(0x05, 0x00);

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The content of a DER SET OF: the encodings sorted. */
function setOfContent(items: Uint8Array[]): Uint8Array {
  return concat(...[...items].sort(compare));
}
const setOf = (items: Uint8Array[]) => element(0x31, setOfContent(items));

function timeDer(d: Date): Uint8Array {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const enc = new TextEncoder();
  return y >= 1950 && y < 2050 ? element(0x17, enc.encode(`${p(y % 100)}${rest}`)) : element(0x18, enc.encode(`${p(y, 4)}${rest}`));
}

const attribute = (type: Uint8Array, value: Uint8Array) => seq(type, setOf([value]));

function signatureAlgorithm(scheme: string): Uint8Array {
  switch (scheme) {
    case "rsa-pkcs1-sha256":
      return seq(O.rsa, NULL);
    case "rsa-pss-sha256": {
      const sha = seq(O.sha256);
      return seq(O.rsaPss, seq(ctx(0, sha), ctx(1, seq(O.mgf1, sha)), ctx(2, int(32))));
    }
    case "ecdsa-p256-sha256":
      return seq(O.ecdsaSha256);
    case "ed25519":
      return seq(O.ed25519);
  }
  throw new Failure("internal", `no CMS algorithm for ${scheme}`);
}

/** A detached CMS signature (DER ContentInfo) of `data` by `key`, whose certificate is `chain[0]`. */
export async function signCmsDetached(key: SigningKey, chain: Uint8Array[], data: Uint8Array, pss: boolean, signingTime: Date): Promise<Uint8Array> {
  const ed = key.algorithm === "ed25519";
  return signCmsDigest(key, chain, ed ? sha512(data) : sha256(data), pss, signingTime);
}

/**
 * The same, for a document the phone does not hold whole or a PDF's byte ranges: `digest` is its SHA-512
 * for an Ed25519 key (RFC 8419), its SHA-256 otherwise. `signingTime` null: the PAdES profile
 * (kalit_core::cms::Profile::Pades), without that attribute.
 */
export async function signCmsDigest(key: SigningKey, chain: Uint8Array[], digest: Uint8Array, pss: boolean, signingTime: Date | null): Promise<Uint8Array> {
  const leaf = chain[0];
  if (!leaf) throw new Failure("invalid_input", "CMS needs the signer's certificate");
  const c = parseCertificate(leaf);
  const ed = key.algorithm === "ed25519";
  if (digest.length !== (ed ? 64 : 32)) throw new Failure("invalid_input", "the document's digest has the wrong length");
  const sid = seq(c.issuer, c.serialDer);
  const essCertId = seq(octets(sha256(leaf)), seq(seq(ctx(4, c.issuer)), c.serialDer));
  const attrs = setOfContent([
    attribute(O.contentType, O.data),
    ...(signingTime ? [attribute(O.signingTime, timeDer(signingTime))] : []),
    attribute(O.messageDigest, octets(digest)),
    attribute(O.signingCertV2, seq(seq(essCertId))),
  ]);
  const { scheme, signature } = await key.signDocument(element(0x31, attrs), pss);
  const digestAlg = seq(ed ? O.sha512 : O.sha256);
  const signerInfo = seq(int(1), sid, digestAlg, ctx(0, attrs), signatureAlgorithm(scheme), octets(signature));
  const signedData = seq(int(1), setOf([digestAlg]), seq(O.data), ctx(0, concat(...chain)), setOf([signerInfo]));
  return seq(O.signedData, ctx(0, signedData));
}
