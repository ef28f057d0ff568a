// What both PFX readers (pkijs, and node-forge for -legacy files) share.

import { Failure } from "./errors.js";
import { describePkcs8 } from "./keys.js";

export interface PfxContents {
  /** PKCS#8 PrivateKeyInfo, DER. */
  pkcs8: Uint8Array;
  /** DER certificates; the key's own first when the file says which one it is. */
  certificates: Uint8Array[];
}

/** One key (the file must hold exactly one), its certificate first. */
export function pick(keys: { pkcs8: Uint8Array; id: string | null }[], certs: { der: Uint8Array; id: string | null }[]): PfxContents {
  if (keys.length === 0) throw new Failure("invalid_input", "the PFX holds no private key");
  if (keys.length > 1) throw new Failure("invalid_input", "the PFX holds several keys; Kalit imports one at a time");
  const key = keys[0]!;
  describePkcs8(key.pkcs8); // RSA, P-256 or Ed25519 only
  const own = certs.findIndex((c) => c.id !== null && c.id === key.id);
  const ordered = own >= 0 ? [certs[own]!, ...certs.filter((_, i) => i !== own)] : certs;
  return { pkcs8: key.pkcs8, certificates: ordered.map((c) => c.der) };
}

