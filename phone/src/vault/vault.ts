// The app's vault, with the command-line vault's rules: Argon2id(PIN) with the same floor seals a random
// master key (AES-256-GCM, the header's exact bytes as associated data); every private key is sealed
// under the master key with its own header as associated data; an attempt counter is written before
// each PIN attempt, delays grow after the third failure and the vault locks after `max_attempts`.
// Nothing secret is logged; key bytes are wiped after use (as far as JavaScript lets us).

import { sha256 } from "@noble/hashes/sha2.js";

import { b64, toHex, utf8 } from "../protocol/bytes.js";
import { Failure } from "../protocol/errors.js";
import { type KeyAlgorithm, SigningKey, describePkcs8 } from "../protocol/keys.js";
import {
  type BackupContents,
  type BackupHistoryEntry,
  KDF_DEFAULT,
  type KdfParams,
  type SealedBox,
  checkKdf,
  deriveKey,
  open,
  seal,
} from "../protocol/seal.js";
import type { Store } from "./store.js";

export const VAULT_FORMAT = "kalit-app-vault/1";
export const MIN_PIN_LEN = 6;

export interface PinPolicy {
  max_attempts: number;
  delay_base_ms: number;
}
export const DEFAULT_POLICY: PinPolicy = { max_attempts: 10, delay_base_ms: 1000 };

/** The delay after `failures` consecutive wrong PINs (none for the first three, then doubling, at most 5 min). */
export function delayAfter(p: PinPolicy, failures: number): number {
  if (failures <= 3 || p.delay_base_ms === 0) return 0;
  return Math.min(p.delay_base_ms * 2 ** Math.min(failures - 4, 20), 300_000);
}

interface VaultHeader {
  format: string;
  kdf: KdfParams;
  salt: string;
  policy: PinPolicy;
  created: string;
}

interface VaultRecord {
  /** The header's JSON text: its exact UTF-8 bytes are the associated data. */
  header: string;
  master: SealedBox;
}

interface PinState {
  failures: number;
  not_before_ms: number;
}

export type KeyOrigin = "generated" | "imported";

/** What the app shows of a key (nothing secret). */
export interface KeyInfo {
  id: string;
  label: string;
  algorithm: KeyAlgorithm;
  /** The SubjectPublicKeyInfo, base64 DER. */
  spki: string;
  /** SHA-256 of the SubjectPublicKeyInfo, hex. */
  fingerprint: string;
  no_export: boolean;
  origin: KeyOrigin;
  created: string;
  /** DER certificates, base64, the key's own first. */
  certificates: string[];
}

interface KeyHeader {
  id: string;
  label: string;
  algorithm: KeyAlgorithm;
  spki: string;
  no_export: boolean;
  origin: KeyOrigin;
  created: string;
}

interface KeyRecord {
  header: string;
  sealed: SealedBox;
  certificates: string[];
}

const K = { vault: "vault", pin: "pin-state", key: (id: string) => `key/${id}`, keys: "key/" } as const;

export interface PinStatus {
  failures: number;
  remaining: number;
  locked: boolean;
  /** Milliseconds before the next attempt is allowed. */
  waitMs: number;
}

export function checkNewPin(pin: string): void {
  if (Array.from(pin).length < MIN_PIN_LEN) {
    throw new Failure("weak_secret", `the PIN must have at least ${MIN_PIN_LEN} characters`);
  }
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Failure("corrupt", `${what} is damaged`);
  }
}

export class AppVault {
  private constructor(
    private readonly store: Store,
    private readonly record: VaultRecord,
    readonly header: VaultHeader,
  ) {}

  static async exists(store: Store): Promise<boolean> {
    return (await store.get(K.vault)) !== undefined;
  }

  /** A new vault under `pin`; refuses to overwrite one. */
  static async init(store: Store, pin: string, nowMs: number, policy: PinPolicy = DEFAULT_POLICY, kdf: KdfParams = KDF_DEFAULT): Promise<AppVault> {
    checkNewPin(pin);
    if (await AppVault.exists(store)) throw new Failure("already_exists", "this phone already has a vault");
    const header: VaultHeader = {
      format: VAULT_FORMAT,
      kdf,
      salt: b64.encode(crypto.getRandomValues(new Uint8Array(16))),
      policy,
      created: new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
    };
    const headerText = JSON.stringify(header);
    const master = crypto.getRandomValues(new Uint8Array(32));
    const kek = await deriveKey(kdf, pin, b64.decode(header.salt)!);
    try {
      const record: VaultRecord = { header: headerText, master: await seal(kek, utf8(headerText), master) };
      await store.putMany([
        [K.vault, record],
        [K.pin, { failures: 0, not_before_ms: 0 } satisfies PinState],
      ]);
      return new AppVault(store, record, header);
    } finally {
      kek.fill(0);
      master.fill(0);
    }
  }

  static async open(store: Store): Promise<AppVault> {
    const record = await store.get<VaultRecord>(K.vault);
    if (!record) throw new Failure("not_found", "this phone has no vault yet");
    const header = parseJson<VaultHeader>(record.header, "the vault's header");
    if (header.format !== VAULT_FORMAT) throw new Failure("corrupt", `a vault of format ${JSON.stringify(header.format)}`);
    checkKdf(header.kdf);
    return new AppVault(store, record, header);
  }

  async pinStatus(nowMs: number): Promise<PinStatus> {
    const st = (await this.store.get<PinState>(K.pin)) ?? { failures: 0, not_before_ms: 0 };
    const max = this.header.policy.max_attempts;
    return {
      failures: st.failures,
      remaining: Math.max(0, max - st.failures),
      locked: st.failures >= max,
      waitMs: Math.max(0, st.not_before_ms - nowMs),
    };
  }

  /** Opens the vault with `pin`. The failed attempt is counted before the PIN is tried. */
  async unlock(pin: string, nowMs: number): Promise<Unlocked> {
    const master = await this.openMaster(pin, nowMs);
    const key = await crypto.subtle.importKey("raw", master as Uint8Array<ArrayBuffer>, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
    master.fill(0);
    return new Unlocked(this.store, key);
  }

  /** Seals the master key under a new PIN (with a new salt); the old PIN is checked and counted first. */
  async changePin(oldPin: string, newPin: string, nowMs: number): Promise<void> {
    checkNewPin(newPin);
    const master = await this.openMaster(oldPin, nowMs);
    const header: VaultHeader = { ...this.header, salt: b64.encode(crypto.getRandomValues(new Uint8Array(16))) };
    const text = JSON.stringify(header);
    const kek = await deriveKey(header.kdf, newPin, b64.decode(header.salt)!);
    try {
      await this.store.put(K.vault, { header: text, master: await seal(kek, utf8(text), master) } satisfies VaultRecord);
    } finally {
      kek.fill(0);
      master.fill(0);
    }
  }

  private async openMaster(pin: string, nowMs: number): Promise<Uint8Array> {
    const policy = this.header.policy;
    const status = await this.pinStatus(nowMs);
    if (status.locked) throw new Failure("locked", `the vault is locked after ${status.failures} wrong PINs; restore a backup`);
    if (status.waitMs > 0) throw new Failure("try_later", `wait ${Math.ceil(status.waitMs / 1000)} s before the next attempt`);
    const failures = status.failures + 1;
    await this.store.put(K.pin, { failures, not_before_ms: nowMs + delayAfter(policy, failures) } satisfies PinState);
    const kek = await deriveKey(this.header.kdf, pin, b64.decode(this.header.salt)!);
    const master = await open(kek, utf8(this.record.header), this.record.master);
    kek.fill(0);
    if (!master) {
      if (failures >= policy.max_attempts) throw new Failure("locked", `the vault is locked after ${failures} wrong PINs; restore a backup`);
      throw new Failure("wrong_pin", `wrong PIN (${policy.max_attempts - failures} tries left)`);
    }
    await this.store.put(K.pin, { failures: 0, not_before_ms: 0 } satisfies PinState);
    return master;
  }

  /** The keys' public facts, readable before the PIN. */
  async keys(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for (const k of await this.store.keys(K.keys)) {
      const rec = await this.store.get<KeyRecord>(k);
      if (rec) out.push(info(rec));
    }
    return out.sort((a, b) => a.created.localeCompare(b.created) || a.label.localeCompare(b.label));
  }
}

function info(rec: KeyRecord): KeyInfo {
  const h = parseJson<KeyHeader>(rec.header, "a key's header");
  return {
    id: h.id,
    label: h.label,
    algorithm: h.algorithm,
    spki: h.spki,
    fingerprint: toHex(sha256(b64.decode(h.spki) ?? new Uint8Array(0))),
    no_export: h.no_export,
    origin: h.origin,
    created: h.created,
    certificates: rec.certificates,
  };
}

const LABEL = /^[\p{L}\p{N} ._-]{1,64}$/u;

export function checkLabel(label: string): string {
  const l = label.trim();
  if (!LABEL.test(l)) throw new Failure("invalid_input", "a key's name is 1 to 64 letters, digits, spaces, '.', '_' or '-'");
  return l;
}

async function aead(key: CryptoKey, aad: Uint8Array, data: Uint8Array): Promise<SealedBox> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad as Uint8Array<ArrayBuffer> }, key, data as Uint8Array<ArrayBuffer>);
  return { nonce: b64.encode(iv), ciphertext: b64.encode(new Uint8Array(ct)) };
}

async function unaead(key: CryptoKey, aad: Uint8Array, box: SealedBox): Promise<Uint8Array> {
  const iv = b64.decode(box.nonce);
  const ct = b64.decode(box.ciphertext);
  if (!iv || !ct) throw new Failure("corrupt", "a sealed key is damaged");
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer>, additionalData: aad as Uint8Array<ArrayBuffer> }, key, ct as Uint8Array<ArrayBuffer>),
    );
  } catch {
    throw new Failure("corrupt", "a key failed its integrity check (damaged or altered storage)");
  }
}

const GEN: Record<"p-256" | "ed25519" | "rsa-2048" | "rsa-3072", RsaHashedKeyGenParams | EcKeyGenParams | Algorithm> = {
  "p-256": { name: "ECDSA", namedCurve: "P-256" } as EcKeyGenParams,
  ed25519: { name: "Ed25519" },
  "rsa-2048": { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: "SHA-256" } as RsaHashedKeyGenParams,
  "rsa-3072": { name: "RSASSA-PKCS1-v1_5", modulusLength: 3072, publicExponent: Uint8Array.of(1, 0, 1), hash: "SHA-256" } as RsaHashedKeyGenParams,
};
export type NewKeyAlgorithm = keyof typeof GEN;

/** The open vault: the only door to private keys. `lock()` forgets the master key. */
export class Unlocked {
  #master: CryptoKey | null;

  constructor(
    private readonly store: Store,
    master: CryptoKey,
  ) {
    this.#master = master;
  }

  private get master(): CryptoKey {
    if (!this.#master) throw new Failure("locked", "the vault was locked again; enter the PIN");
    return this.#master;
  }

  lock(): void {
    this.#master = null;
  }

  /** A new key made on this phone. */
  async generate(alg: NewKeyAlgorithm, label: string, noExport: boolean, nowMs: number): Promise<KeyInfo> {
    const pair = (await crypto.subtle.generateKey(GEN[alg], true, ["sign", "verify"])) as CryptoKeyPair;
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    try {
      return await this.store_(pkcs8, label, noExport, "generated", [], nowMs);
    } finally {
      pkcs8.fill(0);
    }
  }

  /** Stores a PKCS#8 key (from a PFX or a backup) with its certificates. */
  async storeKey(pkcs8: Uint8Array, label: string, noExport: boolean, origin: KeyOrigin, certificates: string[], nowMs: number): Promise<KeyInfo> {
    return this.store_(pkcs8, label, noExport, origin, certificates, nowMs);
  }

  private async store_(pkcs8: Uint8Array, label: string, noExport: boolean, origin: KeyOrigin, certificates: string[], nowMs: number): Promise<KeyInfo> {
    const clean = checkLabel(label);
    const existing = await this.keysByLabel();
    if (existing.has(clean)) throw new Failure("already_exists", `a key named "${clean}" exists already`);
    const { alg } = describePkcs8(pkcs8);
    const spki = await spkiOf(pkcs8, alg);
    const id = toHex(crypto.getRandomValues(new Uint8Array(8)));
    const header: KeyHeader = {
      id,
      label: clean,
      algorithm: alg,
      spki: b64.encode(spki),
      no_export: noExport,
      origin,
      created: new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
    };
    const text = JSON.stringify(header);
    const rec: KeyRecord = { header: text, sealed: await aead(this.master, utf8(text), pkcs8), certificates };
    await this.store.put(K.key(id), rec);
    return info(rec);
  }

  private async keysByLabel(): Promise<Map<string, string>> {
    const m = new Map<string, string>();
    for (const k of await this.store.keys(K.keys)) {
      const rec = await this.store.get<KeyRecord>(k);
      if (rec) {
        const h = parseJson<KeyHeader>(rec.header, "a key's header");
        m.set(h.label, h.id);
      }
    }
    return m;
  }

  private async record(id: string): Promise<KeyRecord> {
    const rec = await this.store.get<KeyRecord>(K.key(id));
    if (!rec) throw new Failure("not_found", "no such key");
    return rec;
  }

  /** The private key, to sign with (its PKCS#8 copy is wiped when the SigningKey is). */
  async signingKey(id: string): Promise<SigningKey> {
    const master = this.master;
    const rec = await this.record(id);
    const pkcs8 = await unaead(master, utf8(rec.header), rec.sealed);
    try {
      return SigningKey.fromPkcs8(pkcs8);
    } finally {
      pkcs8.fill(0);
    }
  }

  /** The PKCS#8 for export or backup; refused for a `no_export` key. */
  async exportPkcs8(id: string): Promise<Uint8Array> {
    const rec = await this.record(id);
    const h = parseJson<KeyHeader>(rec.header, "a key's header");
    if (h.no_export) throw new Failure("refused_by_policy", "this key was made not to leave this phone");
    return unaead(this.master, utf8(rec.header), rec.sealed);
  }

  async installCertificates(id: string, chain: string[]): Promise<KeyInfo> {
    const rec = await this.record(id);
    const updated: KeyRecord = { ...rec, certificates: chain };
    await this.store.put(K.key(id), updated);
    return info(updated);
  }

  /** What a backup carries: every exportable key with its certificates, the policy, the history given. */
  async backupContents(policy: PinPolicy, history: BackupHistoryEntry[]): Promise<{ contents: BackupContents; skipped: string[] }> {
    const keys: BackupContents["keys"] = [];
    const skipped: string[] = [];
    for (const k of await this.store.keys(K.keys)) {
      const rec = await this.store.get<KeyRecord>(k);
      if (!rec) continue;
      const h = parseJson<KeyHeader>(rec.header, "a key's header");
      if (h.no_export) {
        skipped.push(h.label);
        continue;
      }
      const pkcs8 = await unaead(this.master, utf8(rec.header), rec.sealed);
      keys.push({ label: h.label, no_export: false, origin: h.origin, created: h.created, pkcs8: b64.encode(pkcs8), certificates: rec.certificates });
      pkcs8.fill(0);
    }
    return { contents: { policy, keys, history }, skipped };
  }

  async destroy(id: string): Promise<void> {
    await this.record(id);
    await this.store.delete(K.key(id));
  }
}

/**
 * A new vault from a backup's contents under a new PIN (the store must hold no vault). The backup's
 * PIN policy is kept; every key is sealed again under the new master key.
 */
export async function restoreVault(store: Store, contents: BackupContents, newPin: string, nowMs: number): Promise<{ vault: AppVault; keys: string[] }> {
  const policy = contents.policy;
  if (!Number.isInteger(policy?.max_attempts) || policy.max_attempts < 3 || policy.max_attempts > 100 || !Number.isInteger(policy.delay_base_ms)) {
    throw new Failure("corrupt", "the backup's PIN policy is damaged");
  }
  const vault = await AppVault.init(store, newPin, nowMs, { max_attempts: policy.max_attempts, delay_base_ms: policy.delay_base_ms });
  const u = await vault.unlock(newPin, nowMs);
  const keys: string[] = [];
  try {
    for (const k of contents.keys) {
      const pkcs8 = b64.decode(k.pkcs8);
      if (!pkcs8) throw new Failure("corrupt", "a key in the backup is damaged");
      const origin: KeyOrigin = k.origin === "imported" ? "imported" : "generated";
      await u.storeKey(pkcs8, k.label, false, origin, k.certificates, Date.parse(k.created) || nowMs);
      pkcs8.fill(0);
      keys.push(k.label);
    }
  } finally {
    u.lock();
  }
  return { vault, keys };
}

/** The SubjectPublicKeyInfo of a PKCS#8 key (through a temporary extractable import). */
async function spkiOf(pkcs8: Uint8Array, alg: KeyAlgorithm): Promise<Uint8Array> {
  const params =
    alg === "rsa"
      ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }
      : alg === "p-256"
        ? { name: "ECDSA", namedCurve: "P-256" }
        : { name: "Ed25519" };
  const priv = await crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, params, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", priv);
  delete jwk.d;
  delete jwk.p;
  delete jwk.q;
  delete jwk.dp;
  delete jwk.dq;
  delete jwk.qi;
  jwk.key_ops = ["verify"];
  const pub = await crypto.subtle.importKey("jwk", jwk, params, true, ["verify"]);
  return new Uint8Array(await crypto.subtle.exportKey("spki", pub));
}

