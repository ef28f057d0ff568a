// `-legacy` PFX files (pbeWithSHA1And3-KeyTripleDES-CBC keys, RC2-40 certificates, SHA-1 MAC), which
// pkijs cannot read: node-forge reads them. Loaded only for such a file. forge models RSA only; for EC and
// Ed25519 its bags keep the decrypted ASN.1, whose DER is the PKCS#8 or the certificate.

import forge from "node-forge";

import { Failure } from "./errors.js";
import { type PfxContents, pick } from "./pfx-common.js";

const binary = (b: Uint8Array) => {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return s;
};
const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

export function viaForge(der: Uint8Array, password: string): PfxContents {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(binary(der)), true, password);
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    if (/MAC|password|Invalid/i.test(text)) throw new Failure("wrong_password", "wrong PFX password, or the file was damaged");
    throw new Failure("invalid_input", `not a readable PFX file (${text.slice(0, 120)})`);
  }
  type Bag = forge.pkcs12.Bag & { asn1?: forge.asn1.Asn1 };
  const id = (b: Bag) => {
    const v = b.attributes?.localKeyId?.[0];
    return typeof v === "string" ? btoa(v) : null;
  };
  const keys: { pkcs8: Uint8Array; id: string | null }[] = [];
  const certs: { der: Uint8Array; id: string | null }[] = [];
  const keyBags = (p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!] ?? []) as Bag[];
  const plainKeys = (p12.getBags({ bagType: forge.pki.oids.keyBag! })[forge.pki.oids.keyBag!] ?? []) as Bag[];
  for (const b of [...keyBags, ...plainKeys]) {
    const asn1 = b.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(b.key)) : b.asn1;
    if (asn1) keys.push({ pkcs8: bytes(forge.asn1.toDer(asn1).getBytes()), id: id(b) });
  }
  const certBags = (p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? []) as Bag[];
  for (const b of certBags) {
    const asn1 = b.cert ? forge.pki.certificateToAsn1(b.cert) : b.asn1;
    if (asn1) certs.push({ der: bytes(forge.asn1.toDer(asn1).getBytes()), id: id(b) });
  }
  return pick(keys, certs);
}
