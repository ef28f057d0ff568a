// Reading the certificates an RA sends back (enrolment) and building the CSR that asks for one. The
// phone checks what it can without a full path validator: the certificate is for its own key, each
// certificate is signed by the next one (WebCrypto), all are within their validity, and the chain ends
// in a self-signed root whose fingerprint the person compares and the app pins. The full RFC 5280
// validation is the Rust core's (rustls-webpki), which the relay and the agent run on this chain.

import { sha256 } from "@noble/hashes/sha2.js";

import { b64, concat, equal, fromUtf8, toHex } from "./bytes.js";
import { type Tlv, childrenOf, element, oidText, readTlv } from "./der.js";
import { field } from "./display.js";
import { Failure } from "./errors.js";
import type { SigningKey } from "./keys.js";

export interface Certificate {
  der: Uint8Array;
  tbs: Uint8Array;
  signatureAlgorithm: string;
  signature: Uint8Array;
  serial: string;
  /** The serial number's whole INTEGER (tag, length, value). */
  serialDer: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: number;
  notAfter: number;
  spki: Uint8Array;
}

const bad = (what: string) => new Failure("invalid_input", `${what} is not a readable X.509 certificate`);

function time(d: Uint8Array, t: Tlv): number {
  const s = fromUtf8(d.subarray(t.start, t.end)) ?? "";
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw bad("a validity time");
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900;
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000;
}

export function parseCertificate(der: Uint8Array): Certificate {
  const top = readTlv(der, 0, der.length, "a certificate");
  if (top.tag !== 0x30 || top.end !== der.length) throw bad("this");
  const [tbs, sigAlg, sig] = childrenOf(der, top, "a certificate");
  if (!tbs || tbs.tag !== 0x30 || !sigAlg || !sig || sig.tag !== 0x03) throw bad("this");
  const f = childrenOf(der, tbs, "a certificate");
  const off = f[0]?.tag === 0xa0 ? 1 : 0;
  const [serial, , issuer, validity, subject, spki] = f.slice(off);
  if (!serial || !issuer || !validity || !subject || !spki) throw bad("this");
  const [nb, na] = childrenOf(der, validity, "a certificate");
  const [algOid] = childrenOf(der, sigAlg, "a certificate");
  if (!nb || !na || !algOid || algOid.tag !== 0x06 || der[sig.start] !== 0) throw bad("this");
  const whole = (t: Tlv) => der.slice(t.headerStart, t.end);
  return {
    der,
    tbs: whole(tbs),
    signatureAlgorithm: oidText(der.subarray(algOid.start, algOid.end)),
    signature: der.slice(sig.start + 1, sig.end),
    serial: toHex(der.subarray(serial.start, serial.end)),
    serialDer: whole(serial),
    issuer: whole(issuer),
    subject: whole(subject),
    notBefore: time(der, nb),
    notAfter: time(der, na),
    spki: whole(spki),
  };
}

const ATTR: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.5": "SERIALNUMBER",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.4": "SN",
  "2.5.4.42": "GN",
  "1.2.840.113549.1.9.1": "emailAddress",
};

/** A Name as text (`CN=..., C=UZ`), every value escaped for display. */
export function nameText(name: Uint8Array): string {
  const top = readTlv(name, 0, name.length, "a name");
  const parts: string[] = [];
  for (const rdn of childrenOf(name, top, "a name")) {
    for (const atv of childrenOf(name, rdn, "a name")) {
      const [oid, value] = childrenOf(name, atv, "a name");
      if (!oid || !value) continue;
      const key = ATTR[oidText(name.subarray(oid.start, oid.end))] ?? oidText(name.subarray(oid.start, oid.end));
      const raw = name.subarray(value.start, value.end);
      const text = value.tag === 0x1e ? bmp(raw) : (fromUtf8(raw) ?? toHex(raw));
      parts.push(`${key}=${field(text, 200)}`);
    }
  }
  return parts.join(", ");
}

function bmp(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i]! << 8) | b[i + 1]!);
  return s;
}

type Verify = { key: RsaHashedImportParams | EcKeyImportParams | Algorithm; sig: Algorithm | EcdsaParams; der?: boolean };

/** The algorithm OID of a SubjectPublicKeyInfo, and its named curve for an EC key. */
export function spkiAlgorithm(spki: Uint8Array): { oid: string; curve?: string } {
  const top = readTlv(spki, 0, spki.length, "a public key");
  const [alg] = childrenOf(spki, top, "a public key");
  if (!alg) throw bad("a public key");
  const [oid, param] = childrenOf(spki, alg, "a public key");
  if (!oid) throw bad("a public key");
  return {
    oid: oidText(spki.subarray(oid.start, oid.end)),
    ...(param?.tag === 0x06 ? { curve: oidText(spki.subarray(param.start, param.end)) } : {}),
  };
}

function verifier(sigAlg: string, issuerSpki: Uint8Array): Verify {
  const k = spkiAlgorithm(issuerSpki);
  const rsaHash: Record<string, string> = {
    "1.2.840.113549.1.1.11": "SHA-256",
    "1.2.840.113549.1.1.12": "SHA-384",
    "1.2.840.113549.1.1.13": "SHA-512",
  };
  const ecHash: Record<string, string> = { "1.2.840.10045.4.3.2": "SHA-256", "1.2.840.10045.4.3.3": "SHA-384" };
  const curves: Record<string, string> = { "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384" };
  if (rsaHash[sigAlg] && k.oid === "1.2.840.113549.1.1.1") {
    return { key: { name: "RSASSA-PKCS1-v1_5", hash: rsaHash[sigAlg]! }, sig: { name: "RSASSA-PKCS1-v1_5" } };
  }
  if (ecHash[sigAlg] && k.oid === "1.2.840.10045.2.1" && k.curve && curves[k.curve]) {
    return { key: { name: "ECDSA", namedCurve: curves[k.curve]! }, sig: { name: "ECDSA", hash: ecHash[sigAlg]! }, der: true };
  }
  if (sigAlg === "1.3.101.112" && k.oid === "1.3.101.112") return { key: { name: "Ed25519" }, sig: { name: "Ed25519" } };
  throw new Failure("untrusted_certificate", `a certificate signed with an algorithm this phone does not accept (${sigAlg})`);
}

/** DER ECDSA-Sig-Value -> r||s of `n` bytes each (WebCrypto's form). */
export function ecdsaDerToRaw(der: Uint8Array, n: number): Uint8Array {
  const top = readTlv(der, 0, der.length, "a signature");
  const parts = top.tag === 0x30 && top.end === der.length ? childrenOf(der, top, "a signature") : [];
  const [r, s] = parts;
  if (parts.length !== 2 || !r || !s || r.tag !== 0x02 || s.tag !== 0x02) throw bad("a signature");
  const fix = (v: Uint8Array) => {
    let x = v;
    while (x.length > n && x[0] === 0) x = x.subarray(1);
    if (x.length > n) throw bad("a signature");
    const out = new Uint8Array(n);
    out.set(x, n - x.length);
    return out;
  };
  return concat(fix(der.subarray(r.start, r.end)), fix(der.subarray(s.start, s.end)));
}

export async function isSignedBy(cert: Certificate, issuer: Certificate): Promise<boolean> {
  if (!equal(cert.issuer, issuer.subject)) return false;
  const v = verifier(cert.signatureAlgorithm, issuer.spki);
  const key = await crypto.subtle.importKey("spki", issuer.spki as Uint8Array<ArrayBuffer>, v.key, false, ["verify"]);
  let sig = cert.signature;
  if (v.der) sig = ecdsaDerToRaw(sig, (v.key as EcKeyImportParams).namedCurve === "P-384" ? 48 : 32);
  try {
    return await crypto.subtle.verify(v.sig, key, sig as Uint8Array<ArrayBuffer>, cert.tbs as Uint8Array<ArrayBuffer>);
  } catch {
    return false;
  }
}

export function certFingerprint(der: Uint8Array): string {
  return toHex(sha256(der));
}

/**
 * The RA's answer to an enrolment: the certificate is for `keySpki`, each certificate is signed by the
 * next, all are valid at `nowSecs`, the last is a self-signed root. Returns the root's fingerprint
 * (compare it with the one the RA gave the person; pin it).
 */
export async function checkEnrolledChain(chain: Uint8Array[], keySpki: Uint8Array, nowSecs: number): Promise<{ root: string; leaf: Certificate }> {
  if (chain.length < 2 || chain.length > 8) throw new Failure("untrusted_certificate", "the RA sent no CA chain with the certificate");
  const certs = chain.map(parseCertificate);
  const leaf = certs[0]!;
  if (!equal(leaf.spki, keySpki)) {
    throw new Failure("key_mismatch", "the RA answered with a certificate for another key; nothing was installed");
  }
  for (const [i, c] of certs.entries()) {
    if (nowSecs < c.notBefore || nowSecs > c.notAfter) {
      throw new Failure("untrusted_certificate", `certificate ${i + 1} of the chain is not valid now (check the phone's clock)`);
    }
    const issuer = certs[i + 1] ?? c;
    if (!(await isSignedBy(c, issuer))) {
      throw new Failure("untrusted_certificate", `certificate ${i + 1} of the chain is not signed by the next one`);
    }
  }
  return { root: certFingerprint(chain[chain.length - 1]!), leaf };
}

/** DER as PEM text with `label` (`CERTIFICATE`, ...), 64 characters a line. */
export function pem(label: string, der: Uint8Array): string {
  const body = b64.encode(der).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** Splits PEM text into DER certificates. */
export function pemCertificates(pem: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;
  for (const m of pem.matchAll(re)) {
    const der = Uint8Array.from(atob(m[1]!.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
    out.push(der);
  }
  return out;
}

const OID_DER = {
  cn: Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03),
  ecdsaSha256: Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02),
  rsaSha256: Uint8Array.of(0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00),
  ed25519: Uint8Array.of(0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70),
};

/**
 * A PKCS#10 request for `key` (its SubjectPublicKeyInfo `spki`) with the subject `CN=cn`: the RA takes
 * the real subject from its own record of the enrolment code, so this one is a placeholder. PEM.
 */
export async function buildCsr(key: SigningKey, spki: Uint8Array, cn: string): Promise<string> {
  const enc = new TextEncoder();
  const rdn = element(0x31, element(0x30, concat(OID_DER.cn, element(0x0c, enc.encode(cn.slice(0, 64))))));
  const name = element(0x30, rdn);
  const info = element(0x30, concat(Uint8Array.of(0x02, 0x01, 0x00), name, spki, Uint8Array.of(0xa0, 0x00)));
  const { signature } = await key.signDocument(info, false);
  const alg = key.algorithm === "rsa" ? OID_DER.rsaSha256 : key.algorithm === "p-256" ? OID_DER.ecdsaSha256 : OID_DER.ed25519;
  const csr = element(0x30, concat(info, alg, element(0x03, concat(Uint8Array.of(0), signature))));
  return pem("CERTIFICATE REQUEST", csr);
}
