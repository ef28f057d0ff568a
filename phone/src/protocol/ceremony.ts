// Registration at a relay and device requests as ceremonies (kalit_core::ceremony): `startRegistration`
// gives the request and what to check the answer against; `finishRegistration` checks the relay's
// attestation before anything is kept.

import { sha256 } from "@noble/hashes/sha2.js";

import { b64, toHex } from "./bytes.js";
import { Failure } from "./errors.js";
import type { DeviceKey, SigningKey } from "./keys.js";
import { ACTION, b64Field, keyId, statements, verifyAttestation } from "./statement.js";

export { keyId };
import type { SignedAttestation } from "./wire.js";

export const MAX_LOGIN_LEN = 64;

export interface RelayIdentity {
  version: number;
  relay_id: string;
  public_key: string;
  name: string;
}

export function certFingerprint(certDer: Uint8Array): string {
  return toHex(sha256(certDer));
}

/** The relay's key, checked against its id (the id is what a QR and a registration name). */
export function checkRelayIdentity(ident: RelayIdentity): Uint8Array {
  const pk = b64Field("relay public key", ident.public_key, 32);
  if (pk.length !== 32 || keyId(pk) !== ident.relay_id) {
    throw new Failure("unavailable", "the relay's identity is inconsistent (key and id differ)");
  }
  return pk;
}

export function checkNonce(nonceB64: string): Uint8Array {
  const v = b64Field("nonce", nonceB64, 32);
  if (v.length !== 32) throw new Failure("unavailable", "the relay sent a malformed nonce");
  return v;
}

export function normalizeLogin(login: string): string {
  const l = login.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (l.length < 3 || l.length > MAX_LOGIN_LEN || !/^[a-z0-9][a-z0-9._@-]*$/.test(l)) {
    throw new Failure(
      "invalid_input",
      `a login is 3 to ${MAX_LOGIN_LEN} characters of a-z, 0-9, '.', '_', '-', '@', starting with a letter or digit`,
    );
  }
  return l;
}

export interface RegisterRequest {
  login: string;
  device_key: string;
  device_name: string;
  nonce: string;
  relay_id: string;
  proof: { chain: string[]; signature: string };
  approval?: { device_id: string; signature: string };
}

export interface PendingRegistration {
  relayId: string;
  relayPublicKey: Uint8Array;
  login: string;
  deviceId: string;
  certFingerprint: string;
}

export interface Registration {
  relay: RelayIdentity;
  relayPublicKey: Uint8Array;
  nonce: Uint8Array;
  login: string;
  device: DeviceKey;
  deviceName: string;
  /** The certificate key's chain, its own certificate first (DER). */
  chain: Uint8Array[];
  certificateKey: SigningKey;
  /** For a certificate joining a login that exists: a device already registered approves. */
  approver?: { deviceId: string; device: DeviceKey };
}

export async function startRegistration(r: Registration): Promise<{ request: RegisterRequest; pending: PendingRegistration }> {
  const login = normalizeLogin(r.login);
  const leaf = r.chain[0];
  if (!leaf) throw new Failure("refused_by_policy", "this key has no certificate: enrol it first or install one");
  const fp = certFingerprint(leaf);
  const deviceId = keyId(r.device.publicKey);
  const st = statements.register(r.relay.relay_id, r.nonce, login, r.device.publicKey, fp);
  const signature = await r.certificateKey.signStatement(st.bytes);
  const request: RegisterRequest = {
    login,
    device_key: b64.encode(r.device.publicKey),
    device_name: r.deviceName,
    nonce: b64.encode(r.nonce),
    relay_id: r.relay.relay_id,
    proof: { chain: r.chain.map((c) => b64.encode(c)), signature: b64.encode(signature) },
  };
  if (r.approver) {
    const target = `${fp}/${deviceId}`;
    const ast = statements.deviceRequest(r.relay.relay_id, r.nonce, login, r.approver.deviceId, ACTION.ATTACH, target);
    request.approval = { device_id: r.approver.deviceId, signature: b64.encode(await r.approver.device.sign(ast.bytes)) };
  }
  return {
    request,
    pending: { relayId: r.relay.relay_id, relayPublicKey: r.relayPublicKey, login, deviceId, certFingerprint: fp },
  };
}

/** Checks the relay's answer: its attestation verifies with the pinned key and says what was asked. */
export function finishRegistration(p: PendingRegistration, attestation: SignedAttestation): SignedAttestation {
  try {
    verifyAttestation(p.relayPublicKey, attestation);
  } catch {
    throw new Failure("invalid_signature", "the relay's attestation does not verify; nothing was saved");
  }
  const a = attestation.attestation;
  if (a.login !== p.login || a.device_id !== p.deviceId || a.cert_fingerprint !== p.certFingerprint || a.relay_id !== p.relayId) {
    throw new Failure("invalid_signature", "the relay attested something else than was asked; nothing was saved");
  }
  return attestation;
}

export interface DeviceRequest {
  login: string;
  device_id: string;
  nonce: string;
  relay_id: string;
  target: string;
  signature: string;
}

/** A request signed by a registered device (list devices, join a tunnel, detach...). */
export async function deviceRequest(
  relayId: string,
  nonce: Uint8Array,
  login: string,
  deviceId: string,
  action: string,
  target: string,
  device: DeviceKey,
): Promise<DeviceRequest> {
  const st = statements.deviceRequest(relayId, nonce, login, deviceId, action, target);
  return { login, device_id: deviceId, nonce: b64.encode(nonce), relay_id: relayId, target, signature: b64.encode(await device.sign(st.bytes)) };
}
