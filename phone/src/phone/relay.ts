// The phone's requests to its relay: identity, nonces, registration, the tunnel join.

import { b64 } from "../protocol/bytes.js";
import {
  type DeviceRequest,
  deviceRequest,
  type PendingRegistration,
  type RelayIdentity,
  type Registration,
  checkNonce,
  checkRelayIdentity,
  finishRegistration,
  startRegistration,
} from "../protocol/ceremony.js";
import { Failure } from "../protocol/errors.js";
import type { DeviceKey } from "../protocol/keys.js";
import { readAttestation, type SignedAttestation } from "../protocol/wire.js";
import { type Fetch, JsonClient } from "./http.js";

export const WELL_KNOWN_PATH = "/.well-known/kalit-relay";

/** What the phone keeps of one registration (the device key itself stays in the browser's key store). */
export interface RegistrationRecord {
  relayUrl: string;
  relayId: string;
  /** The relay's Ed25519 key, base64: pinned at registration. */
  relayPublicKey: string;
  relayName: string;
  login: string;
  deviceId: string;
  attestation: SignedAttestation;
}

export class Relay {
  readonly client: JsonClient;

  constructor(url: string, fetchImpl?: Fetch) {
    this.client = new JsonClient(url, "relay", fetchImpl);
  }

  async identity(): Promise<{ identity: RelayIdentity; publicKey: Uint8Array }> {
    const identity = await this.client.get<RelayIdentity>(WELL_KNOWN_PATH);
    if (typeof identity?.relay_id !== "string" || typeof identity.public_key !== "string") {
      throw new Failure("unavailable", "the relay's identity is malformed");
    }
    return { identity, publicKey: checkRelayIdentity(identity) };
  }

  async nonce(): Promise<Uint8Array> {
    const n = await this.client.post<{ nonce?: unknown }>("/v1/nonce");
    if (typeof n?.nonce !== "string") throw new Failure("unavailable", "the relay sent a malformed nonce");
    return checkNonce(n.nonce);
  }

  /** Registers `device` under `login` with the certificate key's proof; the answer is checked before it is kept. */
  async register(
    p: Omit<Registration, "relay" | "relayPublicKey" | "nonce"> & {
      /** The relay's key pinned earlier (a second registration must find the same relay). */
      pinned?: { relayId: string; publicKey: string };
    },
  ): Promise<RegistrationRecord> {
    const { identity, publicKey } = await this.identity();
    if (p.pinned && (p.pinned.relayId !== identity.relay_id || p.pinned.publicKey !== b64.encode(publicKey))) {
      throw new Failure("untrusted_certificate", "this relay's key is not the one pinned at the first registration");
    }
    const nonce = await this.nonce();
    const { pinned: _, ...rest } = p;
    const { request, pending } = await startRegistration({ ...rest, relay: identity, relayPublicKey: publicKey, nonce });
    const resp = await this.client.post<{ attestation?: unknown }>("/v1/register", request);
    return record(this.client.base, identity, publicKey, pending, resp);
  }
}

function record(
  relayUrl: string,
  identity: RelayIdentity,
  publicKey: Uint8Array,
  pending: PendingRegistration,
  resp: { attestation?: unknown },
): RegistrationRecord {
  let attestation: SignedAttestation;
  try {
    attestation = readAttestation(resp.attestation as Record<string, unknown>);
  } catch {
    throw new Failure("unavailable", "the relay's answer to the registration is malformed; nothing was saved");
  }
  finishRegistration(pending, attestation);
  return {
    relayUrl,
    relayId: identity.relay_id,
    relayPublicKey: b64.encode(publicKey),
    relayName: identity.name,
    login: pending.login,
    deviceId: pending.deviceId,
    attestation,
  };
}

export interface DeviceInfo {
  device_id: string;
  name: string;
  cert_fingerprint: string;
  cert_subject: string;
  registered_at: number;
}

export interface DeviceList {
  login: string;
  devices: DeviceInfo[];
}

/** The devices of a registration's login (a request signed by this phone's device key). */
export async function listDevices(relay: Relay, reg: RegistrationRecord, device: DeviceKey): Promise<DeviceList> {
  const nonce = await relay.nonce();
  const req = await deviceRequest(reg.relayId, nonce, reg.login, reg.deviceId, "list", "", device);
  const list = await relay.client.post<DeviceList>("/v1/devices", req);
  if (!Array.isArray(list?.devices)) throw new Failure("unavailable", "the relay's device list is malformed");
  return list;
}

/** Removes a device of the same certificate from the login (a lost phone, or this one). */
export async function removeDevice(relay: Relay, reg: RegistrationRecord, device: DeviceKey, target: string): Promise<void> {
  if (!/^[0-9a-f]{32}$/.test(target)) throw new Failure("invalid_input", "a device id is 32 hex characters");
  const nonce = await relay.nonce();
  const req = await deviceRequest(reg.relayId, nonce, reg.login, reg.deviceId, "remove", target, device);
  await relay.client.post<unknown>("/v1/devices/remove", req);
}

export type { DeviceRequest };
