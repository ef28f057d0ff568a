// The vault's sealing (kalit_core::seal, kalit_vault::backup): Argon2id (RFC 9106, version 0x13) of a PIN
// or passphrase with a floor and a ceiling on its parameters, AES-256-GCM with the file's header as
// associated data, and the `kalit-backup/1` file that `kalit vault backup` writes and this app restores
// (docs/BACKUP-FORMAT.md). Argon2id runs in hash-wasm (WebAssembly); AES-GCM in WebCrypto.

import { argon2id } from "hash-wasm";

import { b64, fromUtf8, utf8 } from "./bytes.js";
import { Failure } from "./errors.js";

export interface KdfParams {
  m_kib: number;
  t: number;
  p: number;
}

export const KDF_DEFAULT: KdfParams = { m_kib: 64 * 1024, t: 3, p: 1 };
/** Nothing weaker is read: a downgraded header is refused instead of making the PIN cheaper to guess. */
export const KDF_FLOOR: KdfParams = KDF_DEFAULT;
/** Nothing absurdly large is read: a hostile header cannot make the phone allocate without bound. */
export const KDF_CEILING: KdfParams = { m_kib: 4 * 1024 * 1024, t: 64, p: 16 };
export const BACKUP_FORMAT = "kalit-backup/1";
export const MAX_BACKUP_LEN = 64 << 20;

export function checkKdf(k: KdfParams): void {
  const f = KDF_FLOOR;
  const c = KDF_CEILING;
  const whole = [k.m_kib, k.t, k.p].every((x) => Number.isInteger(x) && x >= 0);
  if (!whole || k.m_kib < f.m_kib || k.t < f.t || k.p < f.p) {
    throw new Failure(
      "corrupt",
      `Argon2id parameters m=${k.m_kib} KiB t=${k.t} p=${k.p} are below the floor m=${f.m_kib} KiB t=${f.t} p=${f.p} (downgraded or damaged header)`,
    );
  }
  if (k.m_kib > c.m_kib || k.t > c.t || k.p > c.p) {
    throw new Failure("corrupt", "Argon2id parameters are absurdly large (damaged header)");
  }
}

/** Argon2id itself: hash-wasm here; the app runs it in a Worker instead so that the screen stays alive. */
export type Argon2id = (password: Uint8Array, salt: Uint8Array, k: KdfParams) => Promise<Uint8Array>;

export const argon2idHere: Argon2id = (password, salt, k) =>
  argon2id({
    password,
    salt,
    parallelism: k.p,
    iterations: k.t,
    memorySize: k.m_kib,
    hashLength: 32,
    outputType: "binary",
  });

let argon2: Argon2id = argon2idHere;

/** Replaces where Argon2id runs (the app: a Worker). */
export function setArgon2id(f: Argon2id): void {
  argon2 = f;
}

/** A 32-byte key from a secret (its UTF-8 bytes) and a salt. */
export async function deriveKey(k: KdfParams, secret: string, salt: Uint8Array): Promise<Uint8Array> {
  checkKdf(k);
  const password = utf8(secret);
  try {
    return await argon2(password, salt, k);
  } finally {
    password.fill(0);
  }
}

async function aesKey(key: Uint8Array): Promise<CryptoKey> {
  if (key.length !== 32) throw new Failure("internal", "AES-256-GCM needs a 32-byte key");
  return crypto.subtle.importKey("raw", key as Uint8Array<ArrayBuffer>, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

export interface SealedBox {
  /** 96-bit nonce, base64. */
  nonce: string;
  /** Ciphertext followed by the 128-bit tag, base64. */
  ciphertext: string;
}

/** AES-256-GCM; `nonce` is random unless given (vectors only). */
export async function seal(key: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, nonce?: Uint8Array): Promise<SealedBox> {
  const iv = nonce ?? crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer>, additionalData: aad as Uint8Array<ArrayBuffer>, tagLength: 128 },
    await aesKey(key),
    plaintext as Uint8Array<ArrayBuffer>,
  );
  return { nonce: b64.encode(iv), ciphertext: b64.encode(new Uint8Array(ct)) };
}

/** The plaintext, or `null` when the key is wrong or anything was altered. */
export async function open(key: Uint8Array, aad: Uint8Array, box: SealedBox): Promise<Uint8Array | null> {
  const iv = b64.decode(box.nonce);
  const ct = b64.decode(box.ciphertext);
  if (!iv || iv.length !== 12 || !ct || ct.length < 16) throw new Failure("corrupt", "a sealed box is damaged");
  try {
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer>, additionalData: aad as Uint8Array<ArrayBuffer>, tagLength: 128 },
      await aesKey(key),
      ct as Uint8Array<ArrayBuffer>,
    );
    return new Uint8Array(pt);
  } catch {
    return null;
  }
}

export interface BackupKey {
  label: string;
  no_export: boolean;
  origin: string;
  created: string;
  /** PKCS#8, base64. */
  pkcs8: string;
  /** DER certificates, base64, the key's own first. */
  certificates: string[];
}

export interface BackupContents {
  policy: { max_attempts: number; delay_base_ms: number };
  keys: BackupKey[];
  history: unknown[];
}

const notBackup = (why: string) => new Failure("invalid_input", `not a Kalit backup: ${why}`);

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw notBackup(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function onlyFields(o: Record<string, unknown>, fields: string[], what: string): void {
  for (const k of Object.keys(o)) if (!fields.includes(k)) throw notBackup(`unknown field \`${k}\` in ${what}`);
  for (const k of fields) if (!(k in o)) throw notBackup(`missing field \`${k}\` in ${what}`);
}

/** Opens a backup file with its passphrase (kalit_vault::backup::open_backup). */
export async function openBackup(file: Uint8Array, passphrase: string): Promise<BackupContents> {
  if (file.length > MAX_BACKUP_LEN) throw new Failure("invalid_input", "backup file is implausibly large");
  const text = fromUtf8(file);
  let parsed: unknown;
  try {
    parsed = text === null ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const f = object(parsed, "the file");
  onlyFields(f, ["header", "payload"], "the file");
  const payload = object(f.payload, "the payload");
  onlyFields(payload, ["nonce", "ciphertext"], "the payload");
  if (typeof f.header !== "string" || typeof payload.nonce !== "string" || typeof payload.ciphertext !== "string") {
    throw notBackup("a field has the wrong type");
  }
  const headerJson = b64.decode(f.header);
  if (!headerJson) throw notBackup("the header is not base64");
  let header: Record<string, unknown>;
  try {
    header = object(JSON.parse(fromUtf8(headerJson) ?? ""), "the header");
  } catch (e) {
    throw e instanceof Failure ? e : notBackup("the header is not JSON");
  }
  onlyFields(header, ["format", "kdf", "salt", "created"], "the header");
  if (header.format !== BACKUP_FORMAT) {
    throw notBackup(`format ${JSON.stringify(header.format)} (written by a newer Kalit?)`);
  }
  const kdf = object(header.kdf, "the KDF parameters");
  onlyFields(kdf, ["m_kib", "t", "p"], "the KDF parameters");
  const params = { m_kib: Number(kdf.m_kib), t: Number(kdf.t), p: Number(kdf.p) };
  checkKdf(params);
  const salt = typeof header.salt === "string" ? b64.decode(header.salt) : null;
  if (!salt) throw notBackup("the salt is not base64");
  const key = await deriveKey(params, passphrase, salt);
  try {
    const plain = await open(key, headerJson, { nonce: payload.nonce, ciphertext: payload.ciphertext });
    if (!plain) throw new Failure("wrong_password", "wrong backup passphrase, or the backup file was damaged");
    try {
      const contents = object(JSON.parse(fromUtf8(plain) ?? ""), "the contents");
      onlyFields(contents, ["policy", "keys", "history"], "the contents");
      if (!Array.isArray(contents.keys) || !Array.isArray(contents.history)) throw new Failure("corrupt", "backup contents: bad lists");
      return contents as unknown as BackupContents;
    } catch (e) {
      throw e instanceof Failure ? new Failure("corrupt", `backup contents: ${e.message}`) : new Failure("corrupt", "backup contents: not JSON");
    } finally {
      plain.fill(0);
    }
  } finally {
    key.fill(0);
  }
}

export const MIN_PASSWORD_LEN = 8;

export interface BackupHistoryEntry {
  time: string;
  key: string;
  fingerprint: string;
  document: string;
  sha256: string;
  size: number;
  format: string;
  origin: string | null;
}

/** Writes a `kalit-backup/1` file (docs/BACKUP-FORMAT.md) that `kalit vault restore` reads. */
export async function writeBackup(contents: BackupContents, passphrase: string, nowMs: number, salt?: Uint8Array, nonce?: Uint8Array): Promise<Uint8Array> {
  if (Array.from(passphrase).length < MIN_PASSWORD_LEN) {
    throw new Failure("weak_secret", `the backup passphrase must have at least ${MIN_PASSWORD_LEN} characters`);
  }
  const s = salt ?? crypto.getRandomValues(new Uint8Array(16));
  // The header's fields in the order the Rust side writes them; its exact bytes are the associated data.
  const header = JSON.stringify({
    format: BACKUP_FORMAT,
    kdf: { m_kib: KDF_DEFAULT.m_kib, t: KDF_DEFAULT.t, p: KDF_DEFAULT.p },
    salt: b64.encode(s),
    created: new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
  });
  const headerBytes = utf8(header);
  const plain = utf8(
    JSON.stringify({
      policy: { max_attempts: contents.policy.max_attempts, delay_base_ms: contents.policy.delay_base_ms },
      keys: contents.keys.map((k) => ({
        label: k.label,
        no_export: false,
        origin: k.origin,
        created: k.created,
        pkcs8: k.pkcs8,
        certificates: k.certificates,
      })),
      history: contents.history,
    }),
  );
  const key = await deriveKey(KDF_DEFAULT, passphrase, s);
  try {
    const payload = await seal(key, headerBytes, plain, nonce);
    return utf8(JSON.stringify({ header: b64.encode(headerBytes), payload: { nonce: payload.nonce, ciphertext: payload.ciphertext } }, null, 2));
  } finally {
    key.fill(0);
    plain.fill(0);
  }
}
