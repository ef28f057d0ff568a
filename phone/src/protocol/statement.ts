// Signed statements (kalit_core::statement): a namespace, a zero byte, then each field as a 32-bit
// big-endian length and its bytes. The phone verifies the relay's attestations (Ed25519) and builds
// the device requests its device key signs.

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { b64, concat, toHex, utf8 } from "./bytes.js";
import { Failure } from "./errors.js";
import type { Attestation, EndorsedRelayKey, OriginAttestation, RelayKey, SignedAttestation, SignedOriginAttestation } from "./wire.js";

export const NS = {
  REGISTER: "kalit/v1/register",
  DEVICE_REMOVAL: "kalit/v1/device-removal",
  DEVICE_REQUEST: "kalit/v1/device-request",
  ATTESTATION: "kalit/v2/attestation",
  ORIGIN: "kalit/v1/origin",
  RELAY_KEY: "kalit/v1/relay-key",
} as const;

export const ACTION = { TUNNEL_JOIN: "tunnel-join", ATTACH: "attach", DETACH: "detach", CANCEL_DETACH: "cancel-detach" } as const;

export interface Statement {
  namespace: string;
  bytes: Uint8Array;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
}

function i64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(n), false);
  return b;
}

function statement(namespace: string, fields: (string | Uint8Array)[]): Statement {
  const parts: Uint8Array[] = [utf8(namespace), Uint8Array.of(0)];
  for (const f of fields) {
    const b = typeof f === "string" ? utf8(f) : f;
    parts.push(u32(b.length), b);
  }
  return { namespace, bytes: concat(...parts) };
}

export const statements = {
  register: (relayId: string, nonce: Uint8Array, login: string, deviceKey: Uint8Array, certFingerprint: string) =>
    statement(NS.REGISTER, [relayId, nonce, login, deviceKey, certFingerprint]),
  deviceRemoval: (relayId: string, nonce: Uint8Array, login: string, requester: string, target: string) =>
    statement(NS.DEVICE_REMOVAL, [relayId, nonce, login, requester, target]),
  deviceRequest: (relayId: string, nonce: Uint8Array, login: string, deviceId: string, action: string, target: string) =>
    statement(NS.DEVICE_REQUEST, [relayId, nonce, login, deviceId, action, target]),
  attestation: (a: Attestation) =>
    statement(NS.ATTESTATION, [
      a.relay_id,
      a.login,
      a.cert_fingerprint,
      a.device_id,
      a.device_key,
      i64(a.issued_at),
      i64(a.expires_at),
    ]),
  origin: (a: OriginAttestation) =>
    statement(NS.ORIGIN, [a.relay_id, a.tunnel, a.origin, i64(a.issued_at), i64(a.expires_at)]),
  relayKey: (k: RelayKey) =>
    statement(NS.RELAY_KEY, [k.relay_id, b64Field("relay signing key", k.public_key, 32), i64(k.not_before), i64(k.not_after)]),
};

/** Decodes a base64 byte field of at most `max` bytes (kalit_core::statement::b64). */
export function b64Field(field: string, s: string, max: number): Uint8Array {
  if (s.length > Math.ceil(max / 3) * 4 + 4) throw new Failure("invalid_input", `${field} is too long`);
  const v = b64.decode(s);
  if (!v) throw new Failure("invalid_input", `${field} is not base64`);
  if (v.length > max) throw new Failure("invalid_input", `${field} is too long`);
  return v;
}

export function verifyEd25519(publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array): void {
  if (publicKey.length !== 32) throw new Failure("invalid_input", "an Ed25519 public key is 32 bytes");
  let ok = false;
  try {
    ok = sig.length === 64 && ed25519.verify(sig, msg, publicKey, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) throw new Failure("invalid_signature", "the Ed25519 signature does not verify");
}

/** The first 16 bytes of SHA-256 of a raw public key, hex: device ids and relay ids (kalit_core::statement::key_id). */
export function keyId(publicKey: Uint8Array): string {
  return toHex(sha256(publicKey).subarray(0, 16));
}

/**
 * The key that may have signed a relay statement from `issuedAt` to `expiresAt`
 * (kalit_core::statement::relay_signing_key): the pinned root key when there is no endorsement; else
 * the endorsed key, once the root key's signature over its `kalit/v1/relay-key` statement verifies,
 * it names the root key's relay, and the statement lies wholly within its validity.
 */
export function relaySigningKey(relayPublicKey: Uint8Array, endorsement: EndorsedRelayKey | undefined, issuedAt: number, expiresAt: number): Uint8Array {
  if (!endorsement) return relayPublicKey;
  const bad = (why: string) => new Failure("invalid_signature", `the relay's signing key ${why}`);
  const k = endorsement.key;
  if (k.relay_id !== keyId(relayPublicKey)) throw bad("is endorsed for another relay");
  const sig = b64Field("relay key endorsement", endorsement.signature, 64);
  try {
    verifyEd25519(relayPublicKey, statements.relayKey(k).bytes, sig);
  } catch {
    throw bad("is not endorsed by the relay's key");
  }
  const key = b64Field("relay signing key", k.public_key, 32);
  if (key.length !== 32) throw bad("is not an Ed25519 key");
  if (issuedAt < k.not_before || expiresAt > k.not_after || expiresAt < issuedAt) throw bad("was not valid for this statement's time");
  return key;
}

/** Checks the relay's signature on an attestation: by the pinned (root) key, or a key it endorsed. */
export function verifyAttestation(relayPublicKey: Uint8Array, signed: SignedAttestation): void {
  const a = signed.attestation;
  const key = relaySigningKey(relayPublicKey, signed.relay_key, a.issued_at, a.expires_at);
  const sig = b64Field("attestation signature", signed.signature, 64);
  verifyEd25519(key, statements.attestation(a).bytes, sig);
}

/** Checks the relay's signature on its statement of a page's origin, as verifyAttestation does. */
export function verifyOriginAttestation(relayPublicKey: Uint8Array, signed: SignedOriginAttestation): void {
  const a = signed.attestation;
  const key = relaySigningKey(relayPublicKey, signed.relay_key, a.issued_at, a.expires_at);
  const sig = b64Field("origin statement signature", signed.signature, 64);
  verifyEd25519(key, statements.origin(a).bytes, sig);
}
