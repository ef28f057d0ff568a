// The computer's own check of a phone's answer before it reaches the page (kalit_core::flow::agent::
// check_signature), for kalit.js direct mode: the signature must verify with the paired certificate over
// the document *this page sent*, with the padding it asked for; a CMS must be a detached SignedData with
// one signer, that very certificate, whose messageDigest is the document's. WebCrypto verifies.

import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { equal } from "./bytes.js";
import { type Tlv, childrenOf, oidText, readTlv } from "./der.js";
import { Failure } from "./errors.js";
import { type Certificate, ecdsaDerToRaw, parseCertificate, spkiAlgorithm } from "./x509.js";

const OID = {
  signedData: "1.2.840.113549.1.7.2",
  data: "1.2.840.113549.1.7.1",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha512: "2.16.840.1.101.3.4.2.3",
  rsa: "1.2.840.113549.1.1.1",
  rsaSha256: "1.2.840.113549.1.1.11",
  rsaPss: "1.2.840.113549.1.1.10",
  ec: "1.2.840.10045.2.1",
  p256: "1.2.840.10045.3.1.7",
  ecdsaSha256: "1.2.840.10045.4.3.2",
  ed25519: "1.3.101.112",
};

export type Scheme = "rsa-pkcs1-sha256" | "rsa-pss-sha256" | "ecdsa-p256-sha256" | "ed25519";

const bad = (why: string) =>
  new Failure("invalid_signature", `the phone's answer does not verify over the document this page sent (${why}); it was not returned`);

function keyKind(c: Certificate): "rsa" | "p-256" | "ed25519" {
  const k = spkiAlgorithm(c.spki);
  if (k.oid === OID.rsa) return "rsa";
  if (k.oid === OID.ec && k.curve === OID.p256) return "p-256";
  if (k.oid === OID.ed25519) return "ed25519";
  throw bad("the certificate's key is of a kind Kalit does not sign with");
}

const buf = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;

/** Verifies `sig` over `data` with the certificate's key in `scheme`. */
async function verifyWith(c: Certificate, scheme: Scheme, sig: Uint8Array, data: Uint8Array): Promise<boolean> {
  const kind = keyKind(c);
  let key: CryptoKey;
  let alg: AlgorithmIdentifier | RsaPssParams | EcdsaParams;
  let s = sig;
  if (kind === "rsa" && scheme === "rsa-pkcs1-sha256") {
    key = await crypto.subtle.importKey("spki", buf(c.spki), { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
    alg = { name: "RSASSA-PKCS1-v1_5" };
  } else if (kind === "rsa" && scheme === "rsa-pss-sha256") {
    key = await crypto.subtle.importKey("spki", buf(c.spki), { name: "RSA-PSS", hash: "SHA-256" }, false, ["verify"]);
    alg = { name: "RSA-PSS", saltLength: 32 };
  } else if (kind === "p-256" && scheme === "ecdsa-p256-sha256") {
    key = await crypto.subtle.importKey("spki", buf(c.spki), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    alg = { name: "ECDSA", hash: "SHA-256" };
    try {
      s = ecdsaDerToRaw(sig, 32);
    } catch {
      return false;
    }
  } else if (kind === "ed25519" && scheme === "ed25519") {
    key = await crypto.subtle.importKey("spki", buf(c.spki), { name: "Ed25519" }, false, ["verify"]);
    alg = { name: "Ed25519" };
  } else {
    throw bad(`a ${scheme} signature from a ${kind} key`);
  }
  try {
    return await crypto.subtle.verify(alg, key, buf(s), buf(data));
  } catch {
    return false;
  }
}

/** A raw signature: the certificate's key over the document, with the padding asked for. */
export async function checkRaw(data: Uint8Array, sig: Uint8Array, leafDer: Uint8Array, pss: boolean): Promise<Scheme> {
  const c = parseCertificate(leafDer);
  const kind = keyKind(c);
  const schemes: Scheme[] = kind === "rsa" ? [pss ? "rsa-pss-sha256" : "rsa-pkcs1-sha256"] : kind === "p-256" ? ["ecdsa-p256-sha256"] : ["ed25519"];
  if (pss && kind !== "rsa") throw bad("PSS was asked of a key that is not RSA");
  for (const scheme of schemes) if (await verifyWith(c, scheme, sig, data)) return scheme;
  throw bad("the signature does not verify with the phone's certificate");
}

function tlvs(d: Uint8Array, t: Tlv): Tlv[] {
  return childrenOf(d, t, "a CMS signature");
}

function oidOf(d: Uint8Array, t: Tlv | undefined): string {
  if (!t || t.tag !== 0x06) throw bad("a malformed CMS signature");
  return oidText(d.subarray(t.start, t.end));
}

/**
 * A detached CMS: one signer, identified by the paired certificate's issuer and serial; contentType
 * id-data and no content inside; messageDigest of the document; the signature over the signed
 * attributes with that certificate's key.
 */
export async function checkCms(data: Uint8Array, cms: Uint8Array, leafDer: Uint8Array): Promise<Scheme> {
  let scheme: Scheme;
  let signed: Uint8Array;
  let signature: Uint8Array;
  const c = parseCertificate(leafDer);
  try {
    const top = readTlv(cms, 0, cms.length, "a CMS signature");
    if (top.tag !== 0x30 || top.end !== cms.length) throw bad("not a CMS signature");
    const [type, wrapped] = tlvs(cms, top);
    if (oidOf(cms, type) !== OID.signedData || !wrapped || wrapped.tag !== 0xa0) throw bad("not a CMS SignedData");
    const [sd] = tlvs(cms, wrapped);
    if (!sd || sd.tag !== 0x30) throw bad("not a CMS SignedData");
    const parts = tlvs(cms, sd);
    const encap = parts[2];
    const infos = parts[parts.length - 1];
    if (!encap || !infos || infos.tag !== 0x31) throw bad("a malformed CMS signature");
    const encapParts = tlvs(cms, encap);
    if (oidOf(cms, encapParts[0]) !== OID.data || encapParts.length !== 1) throw bad("not a detached signature over data");
    const signers = tlvs(cms, infos);
    if (signers.length !== 1) throw bad(`${signers.length} signers instead of one`);
    const si = tlvs(cms, signers[0]!);
    const [, sid, digestAlg, attrs, sigAlg, sigValue] = si;
    if (!sid || !digestAlg || !attrs || attrs.tag !== 0xa0 || !sigAlg || !sigValue || sigValue.tag !== 0x04) {
      throw bad("a signer without signed attributes");
    }
    // The signer is the paired certificate, by issuer and serial.
    const [issuer, serial] = tlvs(cms, sid);
    const whole = (t: Tlv) => cms.subarray(t.headerStart, t.end);
    if (!issuer || !serial || !equal(whole(issuer), c.issuer) || !equal(whole(serial), c.serialDer)) {
      throw bad("signed with another certificate");
    }
    const digestOid = oidOf(cms, tlvs(cms, digestAlg)[0]);
    const digest = digestOid === OID.sha256 ? sha256(data) : digestOid === OID.sha512 ? sha512(data) : null;
    if (!digest) throw bad(`a digest algorithm Kalit does not use (${digestOid})`);
    let messageDigest: Uint8Array | null = null;
    let contentType: string | null = null;
    for (const a of tlvs(cms, attrs)) {
      const [t, values] = tlvs(cms, a);
      const o = oidOf(cms, t);
      const [v] = values ? tlvs(cms, values) : [];
      if (!v) throw bad("an empty signed attribute");
      if (o === OID.messageDigest) {
        if (messageDigest || v.tag !== 0x04) throw bad("a malformed messageDigest");
        messageDigest = cms.subarray(v.start, v.end);
      }
      if (o === OID.contentType) contentType = oidOf(cms, v);
    }
    if (contentType !== OID.data) throw bad("the signed content type is not data");
    if (!messageDigest || !equal(messageDigest, digest)) throw bad("the signed digest is not this document's");
    const sigOid = oidOf(cms, tlvs(cms, sigAlg)[0]);
    const k = keyKind(c);
    if (sigOid === OID.rsa || sigOid === OID.rsaSha256) scheme = "rsa-pkcs1-sha256";
    else if (sigOid === OID.rsaPss) scheme = "rsa-pss-sha256";
    else if (sigOid === OID.ecdsaSha256) scheme = "ecdsa-p256-sha256";
    else if (sigOid === OID.ed25519) scheme = "ed25519";
    else throw bad(`a signature algorithm Kalit does not use (${sigOid})`);
    if ((k === "ed25519") !== (digestOid === OID.sha512)) throw bad("a digest that does not fit the key");
    // The signature covers the attributes as a SET (tag 0x31), not as the [0] they travel in.
    signed = cms.slice(attrs.headerStart, attrs.end);
    signed[0] = 0x31;
    signature = cms.subarray(sigValue.start, sigValue.end);
  } catch (e) {
    if (e instanceof Failure && e.code === "invalid_signature") throw e;
    throw bad("a malformed CMS signature");
  }
  if (!(await verifyWith(c, scheme, signature, signed))) throw bad("the signature does not verify with the phone's certificate");
  return scheme;
}
