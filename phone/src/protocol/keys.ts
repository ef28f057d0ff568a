// A signing key from its PKCS#8 (as the vault keeps it, sealed): what algorithm it is, document
// signatures in the schemes the Rust vault uses, and statement signatures in the statement scheme
// (PROTOCOL.md, "One key, many purposes"): RSA PKCS#1 v1.5 SHA-384, ECDSA P-256 over SHA-384, Ed25519ph
// with the context "kalit/v1/statement". WebCrypto does every operation except Ed25519ph, which it does
// not offer; that one is @noble's, from the seed.

import { ed25519ph } from "@noble/curves/ed25519.js";

import { utf8 } from "./bytes.js";
import { childrenOf, ecdsaRawToDer, oidText, readTlv } from "./der.js";
import { Failure } from "./errors.js";

export type KeyAlgorithm = "rsa" | "p-256" | "ed25519";

export const STATEMENT_CONTEXT = "kalit/v1/statement";

const OID = {
  rsaEncryption: "1.2.840.113549.1.1.1",
  ecPublicKey: "1.2.840.10045.2.1",
  p256: "1.2.840.10045.3.1.7",
  ed25519: "1.3.101.112",
} as const;

interface Described {
  alg: KeyAlgorithm;
  /** Ed25519 only: the 32-byte seed inside the PKCS#8. */
  seed?: Uint8Array;
}

/** What a PKCS#8 PrivateKeyInfo holds (RSA, P-256 or Ed25519; anything else is refused). */
export function describePkcs8(pkcs8: Uint8Array): Described {
  const top = readTlv(pkcs8, 0, pkcs8.length, "a PKCS#8 key");
  if (top.tag !== 0x30 || top.end !== pkcs8.length) throw new Failure("invalid_input", "not a PKCS#8 key");
  const [version, algId, key] = childrenOf(pkcs8, top, "a PKCS#8 key");
  if (!version || version.tag !== 0x02 || !algId || algId.tag !== 0x30 || !key || key.tag !== 0x04) {
    throw new Failure("invalid_input", "not a PKCS#8 key");
  }
  const [oid, param] = childrenOf(pkcs8, algId, "a PKCS#8 key");
  if (!oid || oid.tag !== 0x06) throw new Failure("invalid_input", "not a PKCS#8 key");
  const alg = oidText(pkcs8.subarray(oid.start, oid.end));
  if (alg === OID.rsaEncryption) return { alg: "rsa" };
  if (alg === OID.ecPublicKey) {
    if (param?.tag === 0x06 && oidText(pkcs8.subarray(param.start, param.end)) === OID.p256) return { alg: "p-256" };
    throw new Failure("invalid_input", "only P-256 EC keys are supported");
  }
  if (alg === OID.ed25519) {
    const inner = readTlv(pkcs8, key.start, key.end, "an Ed25519 key");
    if (inner.tag !== 0x04 || inner.end - inner.start !== 32) throw new Failure("invalid_input", "a damaged Ed25519 key");
    return { alg: "ed25519", seed: pkcs8.slice(inner.start, inner.end) };
  }
  throw new Failure("invalid_input", `a key of algorithm ${alg} (RSA, P-256 and Ed25519 are supported)`);
}

type Usage = { name: string; hash?: string; namedCurve?: string };

const buf = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;

/** A private key for signing. The PKCS#8 is imported non-extractable and its copy here is wiped. */
export class SigningKey {
  private constructor(
    readonly algorithm: KeyAlgorithm,
    private readonly pkcs8: Uint8Array,
    private readonly seed: Uint8Array | undefined,
  ) {}

  static fromPkcs8(pkcs8: Uint8Array): SigningKey {
    const d = describePkcs8(pkcs8);
    return new SigningKey(d.alg, pkcs8.slice(), d.seed);
  }

  private async imported(usage: Usage): Promise<CryptoKey> {
    return crypto.subtle.importKey("pkcs8", buf(this.pkcs8), usage, false, ["sign"]);
  }

  /** A raw document signature, in the scheme the Rust vault uses for the format "raw". */
  async signDocument(data: Uint8Array, pss: boolean): Promise<{ scheme: string; signature: Uint8Array }> {
    switch (this.algorithm) {
      case "rsa": {
        if (pss) {
          const k = await this.imported({ name: "RSA-PSS", hash: "SHA-256" });
          const sig = await crypto.subtle.sign({ name: "RSA-PSS", saltLength: 32 }, k, buf(data));
          return { scheme: "rsa-pss-sha256", signature: new Uint8Array(sig) };
        }
        const k = await this.imported({ name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" });
        return { scheme: "rsa-pkcs1-sha256", signature: new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", k, buf(data))) };
      }
      case "p-256": {
        if (pss) throw new Failure("invalid_input", "PSS is an RSA scheme; this key is P-256");
        const k = await this.imported({ name: "ECDSA", namedCurve: "P-256" });
        const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, k, buf(data)));
        return { scheme: "ecdsa-p256-sha256", signature: ecdsaRawToDer(raw) };
      }
      case "ed25519": {
        if (pss) throw new Failure("invalid_input", "PSS is an RSA scheme; this key is Ed25519");
        const k = await this.imported({ name: "Ed25519" });
        return { scheme: "ed25519", signature: new Uint8Array(await crypto.subtle.sign("Ed25519", k, buf(data))) };
      }
    }
  }

  /** A signature over a certificate-key statement (never usable as a document signature). */
  async signStatement(bytes: Uint8Array): Promise<Uint8Array> {
    if (!(startsWithText(bytes, "kalit/v1/register\0") || startsWithText(bytes, "kalit/v1/device-removal\0"))) {
      throw new Failure("refused_by_policy", "only Kalit's certificate statements are signed in the statement scheme");
    }
    switch (this.algorithm) {
      case "rsa": {
        const k = await this.imported({ name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" });
        return new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", k, buf(bytes)));
      }
      case "p-256": {
        // ECDSA keeps the leftmost 256 bits of the SHA-384 hash (FIPS 186-5 6.4.1), as the Rust side does.
        const k = await this.imported({ name: "ECDSA", namedCurve: "P-256" });
        return ecdsaRawToDer(new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-384" }, k, buf(bytes))));
      }
      case "ed25519":
        return ed25519ph.sign(bytes, this.seed!, { context: utf8(STATEMENT_CONTEXT) });
    }
  }

  /** Forgets the key bytes held here. */
  wipe(): void {
    this.pkcs8.fill(0);
    this.seed?.fill(0);
  }
}

function startsWithText(b: Uint8Array, s: string): boolean {
  const p = utf8(s);
  return b.length >= p.length && p.every((x, i) => b[i] === x);
}

/** A device key: Ed25519, made by WebCrypto non-extractable, so that it never leaves this browser. */
export interface DeviceKey {
  /** The raw 32-byte public key (what the relay records). */
  publicKey: Uint8Array;
  /** Plain Ed25519 over a device statement. */
  sign(bytes: Uint8Array): Promise<Uint8Array>;
}

export function deviceKeyOf(priv: CryptoKey, publicRaw: Uint8Array): DeviceKey {
  return {
    publicKey: publicRaw,
    async sign(bytes: Uint8Array): Promise<Uint8Array> {
      if (startsWithText(bytes, "kalit/v1/register\0") || startsWithText(bytes, "kalit/v1/device-removal\0")) {
        throw new Failure("refused_by_policy", "a device key never signs a certificate statement");
      }
      return new Uint8Array(await crypto.subtle.sign("Ed25519", priv, buf(bytes)));
    },
  };
}

/** A new device key; `pair.privateKey` can be stored (IndexedDB keeps a non-extractable key as it is). */
export async function generateDeviceKey(): Promise<{ pair: CryptoKeyPair; device: DeviceKey }> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { pair, device: deviceKeyOf(pair.privateKey, publicRaw) };
}
