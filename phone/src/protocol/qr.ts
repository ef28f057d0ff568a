// The QR a computer shows (kalit_core::session::Qr): `kalit:` + base64url(JSON), read with the same
// limits and checks as the Rust phone; the tunnel id and the PSK come from its secret by HKDF-SHA256.

import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { b64url, fromUtf8, toHex, utf8 } from "./bytes.js";
import { Failure } from "./errors.js";

export const QR_SCHEME = "kalit:";
export const SESSION_VERSION = 2;
export const QR_TTL_MAX_SECS = 300;
export const QR_MAX_LEN = 1024;
export const CLOCK_SKEW_SECS = 10;

export const NS = {
  TUNNEL: "kalit/v1/tunnel",
  PSK: "kalit/v1/psk",
  SAS: "kalit/v1/sas",
} as const;

/** HKDF-SHA256 with an empty salt and a Kalit label (kalit_core::session::hkdf32). */
export function hkdf32(ikm: Uint8Array, info: string): Uint8Array {
  return hkdf(sha256, ikm, new Uint8Array(0), utf8(info), 32);
}

export function tunnelId(secret: Uint8Array): string {
  return toHex(hkdf32(secret, NS.TUNNEL));
}

export function pskOf(secret: Uint8Array): Uint8Array {
  return hkdf32(secret, NS.PSK);
}

/** The six digits both screens show, from the handshake hash: `123 456`. */
export function sasOf(handshakeHash: Uint8Array): string {
  const k = hkdf32(handshakeHash, NS.SAS);
  const n = (((k[0]! << 24) >>> 0) + (k[1]! << 16) + (k[2]! << 8) + k[3]!) % 1_000_000;
  const hi = Math.floor(n / 1000);
  const lo = n % 1000;
  return `${String(hi).padStart(3, "0")} ${String(lo).padStart(3, "0")}`;
}

/** A computer's name for the phone's list of computers: the first 10 bytes of SHA-256 of its key. */
export function computerId(publicKey: Uint8Array): string {
  return toHex(sha256(publicKey).subarray(0, 10));
}

export interface QrPayload {
  v: number;
  pk: string;
  s: string;
  relay: string;
  relay_id: string;
  origin: string;
  iat: number;
  ttl: number;
  op: string;
  /** `direct`: a web page made this QR itself, with no agent; the relay must vouch for its origin. */
  mode?: "direct";
}

const FIELDS: readonly (keyof QrPayload)[] = ["v", "pk", "s", "relay", "relay_id", "origin", "iat", "ttl", "op"];
const OPTIONAL: readonly (keyof QrPayload)[] = ["mode"];

const invalid = (m: string) => new Failure("invalid_input", m);
const isUint = (x: unknown, max: number): x is number =>
  typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= max;

export class Qr {
  private constructor(
    readonly payload: QrPayload,
    /** The exact text (the Noise prologue: any altered character breaks the handshake). */
    readonly text: string,
    readonly agentPublic: Uint8Array,
    private readonly secret: Uint8Array,
  ) {}

  static parse(input: string): Qr {
    const text = input.trim();
    if (text.length > QR_MAX_LEN) throw invalid(`the QR text is longer than ${QR_MAX_LEN} characters`);
    if (!text.startsWith(QR_SCHEME)) {
      throw invalid("this QR is not a Kalit signing request (it must start with kalit:)");
    }
    const raw = b64url.decode(text.slice(QR_SCHEME.length));
    if (!raw) throw invalid("the QR text is damaged (not base64url)");
    const json = fromUtf8(raw);
    let value: unknown;
    try {
      value = json === null ? undefined : JSON.parse(json);
    } catch {
      value = undefined;
    }
    const obj = typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
    if (obj && isUint(obj.v, 0xffffffff) && obj.v !== SESSION_VERSION) {
      throw new Failure(
        "invalid_input",
        `QR version ${obj.v} (this Kalit understands version ${SESSION_VERSION}); update Kalit`,
      );
    }
    if (!obj) throw invalid("the QR payload is malformed: not a JSON object");
    for (const k of Object.keys(obj)) {
      if (!([...FIELDS, ...OPTIONAL] as readonly string[]).includes(k)) throw invalid(`the QR payload is malformed: unknown field \`${k}\``);
    }
    for (const k of FIELDS) if (!(k in obj)) throw invalid(`the QR payload is malformed: missing field \`${k}\``);
    const { v, pk, s, relay, relay_id, origin, iat, ttl, op, mode } = obj;
    if (mode !== undefined && mode !== "direct") throw invalid("the QR payload is malformed: unknown mode");
    if (
      !isUint(v, 0xffffffff) ||
      typeof pk !== "string" ||
      typeof s !== "string" ||
      typeof relay !== "string" ||
      typeof relay_id !== "string" ||
      typeof origin !== "string" ||
      !isUint(iat, Number.MAX_SAFE_INTEGER) ||
      !isUint(ttl, 0xffffffff) ||
      typeof op !== "string"
    ) {
      throw invalid("the QR payload is malformed: a field has the wrong type");
    }
    const agentPublic = b64url.decode(pk);
    if (!agentPublic) throw invalid("QR: bad agent key");
    if (agentPublic.length !== 32) throw invalid("QR: the agent key must be 32 bytes");
    const secret = b64url.decode(s);
    if (!secret) throw invalid("QR: bad session secret");
    if (secret.length !== 16) throw invalid("QR: the session secret must be 16 bytes");
    if (op !== "sign") throw new Failure("invalid_input", `QR operation ${JSON.stringify(op)}`);
    if (ttl === 0 || ttl > QR_TTL_MAX_SECS) throw invalid(`QR lifetime ${ttl} s (at most ${QR_TTL_MAX_SECS})`);
    if (origin === "" || relay_id === "" || relay === "") throw invalid("QR: empty origin or relay");
    const payload: QrPayload = { v, pk, s, relay, relay_id, origin, iat, ttl, op };
    if (mode === "direct") payload.mode = mode;
    return new Qr(payload, text, agentPublic, secret);
  }

  /**
   * The QR a web page makes for itself (direct mode): `publicKey` is its X25519 key for this session and
   * `secret` 16 fresh random bytes, both from the caller. Written as the Rust side writes a QR (serde's
   * field order, base64url without padding).
   */
  static forPage(p: {
    publicKey: Uint8Array;
    secret: Uint8Array;
    relay: string;
    relayId: string;
    origin: string;
    ttl: number;
    nowSecs: number;
  }): Qr {
    const payload = {
      v: SESSION_VERSION,
      pk: b64url.encode(p.publicKey),
      s: b64url.encode(p.secret),
      relay: p.relay.replace(/\/+$/, ""),
      relay_id: p.relayId,
      origin: p.origin,
      iat: p.nowSecs,
      ttl: Math.min(Math.max(1, p.ttl), QR_TTL_MAX_SECS),
      op: "sign",
      mode: "direct",
    };
    const text = QR_SCHEME + b64url.encode(utf8(JSON.stringify(payload)));
    if (text.length > QR_MAX_LEN) throw invalid("the relay URL or origin is too long for a QR");
    return Qr.parse(text);
  }

  computerId(): string {
    return computerId(this.agentPublic);
  }

  tunnelId(): string {
    return tunnelId(this.secret);
  }

  psk(): Uint8Array {
    return pskOf(this.secret);
  }

  /** Refuses a QR from the future or past its lifetime (with the clock skew both sides allow). */
  checkFresh(nowSecs: number): void {
    const p = this.payload;
    if (p.iat > nowSecs + CLOCK_SKEW_SECS) {
      throw invalid("this QR was issued in the future: check the clocks of phone and computer");
    }
    if (nowSecs > p.iat + p.ttl + CLOCK_SKEW_SECS) {
      throw new Failure(
        "expired",
        `this QR expired ${nowSecs - p.iat - p.ttl} s ago: start a new signing session on the computer`,
      );
    }
  }
}
