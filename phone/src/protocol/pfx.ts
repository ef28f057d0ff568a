// PKCS#12 (PFX) files, the way people carry their keys today: read with pkijs (OpenSSL 3's default:
// PBES2, PBKDF2-SHA256, AES-256-CBC, SHA-256 MAC), and with node-forge, loaded only then, for `-legacy`
// files (3DES and RC2-40, SHA-1 MAC) that pkijs cannot read; written with pkijs as OpenSSL 3 writes them,
// which `openssl pkcs12` reads. The MAC is checked before anything is decrypted.

import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

import { b64 } from "./bytes.js";
import { Failure } from "./errors.js";
import { type PfxContents, pick } from "./pfx-common.js";

/** PBKDF2 iterations of exported files, the command-line vault's (OpenSSL 3 itself writes 2048). */
export const EXPORT_ITERATIONS = 100_000;
/** The largest PFX read. */
export const MAX_PFX = 1 << 20;

export type { PfxContents };

const OID = {
  keyBag: "1.2.840.113549.1.12.10.1.1",
  shroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  localKeyId: "1.2.840.113549.1.9.21",
  friendlyName: "1.2.840.113549.1.9.20",
  x509Certificate: "1.2.840.113549.1.9.22.1",
};

const buf = (b: Uint8Array): ArrayBuffer => b.slice().buffer as ArrayBuffer;

function wrongPassword(): Failure {
  return new Failure("wrong_password", "wrong PFX password, or the file was damaged");
}

/** The PFX's key and certificates, whichever way it was sealed. */
export async function importPfx(der: Uint8Array, password: string): Promise<PfxContents> {
  if (der.length === 0 || der.length > MAX_PFX) throw new Failure("invalid_input", "not a PFX file (empty or too large)");
  try {
    return await viaPkijs(der, password);
  } catch (e) {
    if (e instanceof Failure) throw e;
    const text = e instanceof Error ? e.message : String(e);
    if (/Unknown|Unsupported|not supported/i.test(text)) {
      const { viaForge } = await import("./pfx-legacy.js");
      return viaForge(der, password);
    }
    if (/Integrity|MAC|password/i.test(text)) throw wrongPassword();
    throw new Failure("invalid_input", `not a readable PFX file (${text.slice(0, 120)})`);
  }
}

async function viaPkijs(der: Uint8Array, password: string): Promise<PfxContents> {
  const pw = buf(new TextEncoder().encode(password));
  let pfx: pkijs.PFX;
  try {
    pfx = pkijs.PFX.fromBER(buf(der));
  } catch {
    throw new Failure("invalid_input", "not a PFX file");
  }
  await pfx.parseInternalValues({ password: pw, checkIntegrity: true });
  const safe = pfx.parsedValue?.authenticatedSafe;
  if (!safe) throw new Failure("invalid_input", "a PFX without contents");
  await safe.parseInternalValues({ safeContents: safe.safeContents.map(() => ({ password: pw })) });
  const keys: { pkcs8: Uint8Array; id: string | null }[] = [];
  const certs: { der: Uint8Array; id: string | null }[] = [];
  for (const contents of safe.parsedValue?.safeContents ?? []) {
    for (const bag of contents.value.safeBags) {
      const id = localKeyId(bag);
      if (bag.bagId === OID.shroudedKeyBag) {
        const shrouded = bag.bagValue as pkijs.PKCS8ShroudedKeyBag;
        await (shrouded as unknown as { parseInternalValues(p: { password: ArrayBuffer }): Promise<void> }).parseInternalValues({ password: pw });
        const info = shrouded.parsedValue;
        if (!info) throw new Failure("invalid_input", "an unreadable key in the PFX");
        keys.push({ pkcs8: new Uint8Array(info.toSchema().toBER(false)), id });
      } else if (bag.bagId === OID.keyBag) {
        keys.push({ pkcs8: new Uint8Array((bag.bagValue as pkijs.PrivateKeyInfo).toSchema().toBER(false)), id });
      } else if (bag.bagId === OID.certBag) {
        const cb = bag.bagValue as pkijs.CertBag;
        if (cb.certId === OID.x509Certificate && cb.parsedValue instanceof pkijs.Certificate) {
          certs.push({ der: new Uint8Array(cb.parsedValue.toSchema().toBER(false)), id });
        }
      }
    }
  }
  return pick(keys, certs);
}

function localKeyId(bag: pkijs.SafeBag): string | null {
  for (const a of bag.bagAttributes ?? []) {
    if (a.type === OID.localKeyId) {
      const v = a.values[0] as asn1js.OctetString | undefined;
      if (v) return b64.encode(new Uint8Array(v.valueBlock.valueHexView));
    }
  }
  return null;
}

/** A PFX as OpenSSL 3 writes it (PBES2 AES-256-CBC, PBKDF2 and MAC with SHA-256), which it reads back. */
export async function exportPfx(pkcs8: Uint8Array, certificates: Uint8Array[], password: string, name: string): Promise<Uint8Array> {
  if (Array.from(password).length < 8) throw new Failure("weak_secret", "the PFX password must have at least 8 characters");
  const pw = buf(new TextEncoder().encode(password));
  const keyId = new asn1js.OctetString({ valueHex: buf(crypto.getRandomValues(new Uint8Array(20))) });
  const attrs = (withName: boolean) => [
    new pkijs.Attribute({ type: OID.localKeyId, values: [keyId] }),
    ...(withName ? [new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: name })] })] : []),
  ];
  const keyInfo = pkijs.PrivateKeyInfo.fromBER(buf(pkcs8));
  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: keyInfo });
  const enc = {
    password: pw,
    contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 } as unknown as AesKeyAlgorithm,
    hmacHashAlgorithm: "SHA-256",
    iterationCount: EXPORT_ITERATIONS,
  };
  await (keyBag as unknown as { makeInternalValues(p: typeof enc): Promise<void> }).makeInternalValues(enc);
  const certBags = certificates.map(
    (c, i) =>
      new pkijs.SafeBag({
        bagId: OID.certBag,
        bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(buf(c)) }),
        ...(i === 0 ? { bagAttributes: attrs(false) } : {}),
      }),
  );
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0,
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: [new pkijs.SafeBag({ bagId: OID.shroudedKeyBag, bagValue: keyBag, bagAttributes: attrs(true) })] }) },
            { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: certBags }) },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({ safeContents: [{}, enc] });
  await pfx.makeInternalValues({ password: pw, iterations: EXPORT_ITERATIONS, pbkdf2HashAlgorithm: "SHA-256", hmacHashAlgorithm: "SHA-256" });
  return new Uint8Array(pfx.toSchema().toBER(false));
}
