// Noise_NKpsk0_25519_ChaChaPoly_SHA256 (the Noise Protocol Framework, revision 34), the phone's side
// (initiator) and, for tests and for a page that plays the agent's part, the responder. No npm package
// implements this pattern with SHA-256; this follows the specification on audited primitives (@noble),
// and replays snow's cacophony vector and Kalit's session vectors byte for byte.
//
//   NKpsk0:  <- s   ...   -> psk, e, es   <- e, ee

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { concat, utf8 } from "./bytes.js";

export const NOISE_PARAMS = "Noise_NKpsk0_25519_ChaChaPoly_SHA256";
const TAG_LEN = 16;
const DH_LEN = 32;
/** The longest Noise message (the transport's frames are never longer). */
export const MAX_NOISE_MESSAGE = 65535;
const EMPTY = new Uint8Array(0);

export class NoiseError extends Error {
  override name = "NoiseError";
}

/** Noise's HKDF: HMAC-SHA256 with the chaining key as the key. */
function hkdf(ck: Uint8Array, ikm: Uint8Array, n: 2 | 3): Uint8Array[] {
  const t = hmac(sha256, ck, ikm);
  const o1 = hmac(sha256, t, Uint8Array.of(1));
  const o2 = hmac(sha256, t, concat(o1, Uint8Array.of(2)));
  if (n === 2) return [o1, o2];
  return [o1, o2, hmac(sha256, t, concat(o2, Uint8Array.of(3)))];
}

/** ChaChaPoly's nonce: 32 zero bits, then the counter as 64-bit little-endian. */
function nonce(n: bigint): Uint8Array {
  const b = new Uint8Array(12);
  new DataView(b.buffer).setBigUint64(4, n, true);
  return b;
}

/** One direction of an established channel (or the handshake's cipher before a key is mixed in). */
export class CipherState {
  #k: Uint8Array | null;
  #n = 0n;

  constructor(k: Uint8Array | null) {
    this.#k = k;
  }

  encrypt(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (!this.#k) return plaintext;
    if (this.#n >= 0xffffffffffffffffn) throw new NoiseError("the channel's nonces are used up");
    return chacha20poly1305(this.#k, nonce(this.#n++), ad).encrypt(plaintext);
  }

  decrypt(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (!this.#k) return ciphertext;
    if (this.#n >= 0xffffffffffffffffn) throw new NoiseError("the channel's nonces are used up");
    let p: Uint8Array;
    try {
      p = chacha20poly1305(this.#k, nonce(this.#n), ad).decrypt(ciphertext);
    } catch {
      throw new NoiseError("a message does not decrypt (altered, replayed or out of order)");
    }
    this.#n++;
    return p;
  }

  /** Forgets the key (the session is over). */
  wipe(): void {
    this.#k?.fill(0);
    this.#k = null;
  }
}

class SymmetricState {
  h: Uint8Array;
  ck: Uint8Array;
  cs = new CipherState(null);

  constructor() {
    const name = utf8(NOISE_PARAMS); // 36 bytes, longer than the hash: h = SHA-256(name)
    this.h = sha256(name);
    this.ck = this.h;
  }

  mixHash(d: Uint8Array): void {
    this.h = sha256(concat(this.h, d));
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdf(this.ck, ikm, 2);
    this.ck = ck!;
    this.cs = new CipherState(k!);
  }

  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, th, k] = hkdf(this.ck, ikm, 3);
    this.ck = ck!;
    this.mixHash(th!);
    this.cs = new CipherState(k!);
  }

  encryptAndHash(p: Uint8Array): Uint8Array {
    const c = this.cs.encrypt(this.h, p);
    this.mixHash(c);
    return c;
  }

  decryptAndHash(c: Uint8Array): Uint8Array {
    const p = this.cs.decrypt(this.h, c);
    this.mixHash(c);
    return p;
  }

  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.ck, EMPTY, 2);
    this.ck.fill(0);
    return [new CipherState(k1!), new CipherState(k2!)];
  }
}

/** The two directions of an established channel and the handshake hash (the SAS comes from it). */
export interface Transport {
  send: CipherState;
  recv: CipherState;
  handshakeHash: Uint8Array;
}

function dh(priv: Uint8Array, pub: Uint8Array): Uint8Array {
  try {
    return x25519.getSharedSecret(priv, pub);
  } catch {
    throw new NoiseError("a Diffie-Hellman input is not a usable X25519 key");
  }
}

function checkKey(k: Uint8Array, what: string): void {
  if (k.length !== DH_LEN) throw new NoiseError(`${what} must be ${DH_LEN} bytes`);
}

/** The initiator (the phone): `rs` is the agent's static key from the QR, `prologue` the exact QR text. */
export class NKpsk0Initiator {
  #ss = new SymmetricState();
  #e: Uint8Array;
  #rs: Uint8Array;
  #psk: Uint8Array;
  #state: "start" | "sent" | "done" = "start";

  /** `ephemeral` fixes the ephemeral private key: for conformance vectors only. */
  constructor(prologue: Uint8Array, rs: Uint8Array, psk: Uint8Array, ephemeral?: Uint8Array) {
    checkKey(rs, "the responder's static key");
    checkKey(psk, "the PSK");
    this.#e = ephemeral ? ephemeral.slice() : x25519.utils.randomSecretKey();
    checkKey(this.#e, "the ephemeral key");
    this.#rs = rs.slice();
    this.#psk = psk.slice();
    this.#ss.mixHash(prologue);
    this.#ss.mixHash(this.#rs); // pre-message: <- s
  }

  /** -> psk, e, es */
  writeMessage1(payload: Uint8Array = EMPTY): Uint8Array {
    if (this.#state !== "start") throw new NoiseError("the first handshake message was already written");
    this.#state = "sent";
    this.#ss.mixKeyAndHash(this.#psk);
    this.#psk.fill(0);
    const epub = x25519.getPublicKey(this.#e);
    this.#ss.mixHash(epub);
    this.#ss.mixKey(epub); // psk handshakes also mix e into the key
    this.#ss.mixKey(dh(this.#e, this.#rs));
    return concat(epub, this.#ss.encryptAndHash(payload));
  }

  /** <- e, ee */
  readMessage2(msg: Uint8Array): { payload: Uint8Array; transport: Transport } {
    if (this.#state !== "sent") throw new NoiseError("the handshake is not waiting for the second message");
    this.#state = "done";
    if (msg.length < DH_LEN + TAG_LEN || msg.length > MAX_NOISE_MESSAGE) {
      throw new NoiseError(`a second handshake message of ${msg.length} bytes`);
    }
    const re = msg.subarray(0, DH_LEN);
    this.#ss.mixHash(re);
    this.#ss.mixKey(re);
    this.#ss.mixKey(dh(this.#e, re));
    this.#e.fill(0);
    const payload = this.#ss.decryptAndHash(msg.subarray(DH_LEN));
    const [c1, c2] = this.#ss.split();
    return { payload, transport: { send: c1, recv: c2, handshakeHash: this.#ss.h } };
  }
}

/** The responder (the agent): `s` is its static private key. */
export class NKpsk0Responder {
  #ss = new SymmetricState();
  #s: Uint8Array;
  #e: Uint8Array;
  #psk: Uint8Array;
  #re: Uint8Array | null = null;

  constructor(prologue: Uint8Array, s: Uint8Array, psk: Uint8Array, ephemeral?: Uint8Array) {
    checkKey(s, "the static key");
    checkKey(psk, "the PSK");
    this.#s = s.slice();
    this.#e = ephemeral ? ephemeral.slice() : x25519.utils.randomSecretKey();
    this.#psk = psk.slice();
    this.#ss.mixHash(prologue);
    this.#ss.mixHash(x25519.getPublicKey(this.#s));
  }

  readMessage1(msg: Uint8Array): Uint8Array {
    if (this.#re) throw new NoiseError("the first handshake message was already read");
    if (msg.length < DH_LEN + TAG_LEN || msg.length > MAX_NOISE_MESSAGE) {
      throw new NoiseError(`a first handshake message of ${msg.length} bytes`);
    }
    this.#ss.mixKeyAndHash(this.#psk);
    this.#psk.fill(0);
    const re = msg.slice(0, DH_LEN);
    this.#ss.mixHash(re);
    this.#ss.mixKey(re);
    this.#ss.mixKey(dh(this.#s, re));
    this.#re = re;
    return this.#ss.decryptAndHash(msg.subarray(DH_LEN));
  }

  writeMessage2(payload: Uint8Array = EMPTY): { message: Uint8Array; transport: Transport } {
    if (!this.#re) throw new NoiseError("the first handshake message was not read");
    const epub = x25519.getPublicKey(this.#e);
    this.#ss.mixHash(epub);
    this.#ss.mixKey(epub);
    this.#ss.mixKey(dh(this.#e, this.#re));
    this.#e.fill(0);
    this.#s.fill(0);
    const message = concat(epub, this.#ss.encryptAndHash(payload));
    const [c1, c2] = this.#ss.split();
    return { message, transport: { send: c2, recv: c1, handshakeHash: this.#ss.h } };
  }
}
