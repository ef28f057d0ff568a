// What the screens call: the vault, registrations (with their non-extractable device keys), the
// computers this phone signed for, the history, enrolment and signing. No markup here.

import { b64 } from "../protocol/bytes.js";
import { signCmsDetached, signCmsDigest } from "../protocol/cms.js";
import { Failure } from "../protocol/errors.js";
import { signPrepared } from "../protocol/pdf.js";
import { type DeviceKey, type SigningKey, deviceKeyOf, generateDeviceKey } from "../protocol/keys.js";
import type { Digests, PhoneAnswer, Prompt } from "../protocol/phone-session.js";
import { Qr } from "../protocol/qr.js";
import { buildCsr, checkEnrolledChain, nameText, parseCertificate, pemCertificates } from "../protocol/x509.js";
import { JsonClient } from "../phone/http.js";
import { type PairSummary, type PairUi, pair } from "../phone/pair.js";
import { type DeviceList, Relay, type RegistrationRecord, listDevices, removeDevice } from "../phone/relay.js";
import type { Store } from "../vault/store.js";
import { type BackupHistoryEntry, openBackup, writeBackup } from "../protocol/seal.js";
import { AppVault, type KeyInfo, type NewKeyAlgorithm, type Unlocked, restoreVault } from "../vault/vault.js";

export interface StoredRegistration {
  record: RegistrationRecord;
  keyId: string;
  devicePrivate: CryptoKey;
  devicePublic: string;
}

export interface Computer {
  id: string;
  name: string;
  uses: number;
}

export interface HistoryEntry {
  time: number;
  key: string;
  document: string;
  sha256: string;
  size: number;
  format: string;
  origin: string;
}

export interface CertSummary {
  subject: string;
  issuer: string;
  notAfter: number;
}

/** A certificate's end is shown as a warning this many days before it. */
export const CERT_WARNING_DAYS = 30;

/**
 * Where a certificate stands for signing at `nowMs`: fine, ending within CERT_WARNING_DAYS (whole days
 * left, 0 on its last day), or ended (the agent and the relay refuse it; a new one is needed).
 */
export function certTime(notAfterMs: number, nowMs: number): { state: "ok" } | { state: "ending"; days: number } | { state: "ended" } {
  if (nowMs > notAfterMs) return { state: "ended" };
  const days = Math.floor((notAfterMs - nowMs) / 86_400_000);
  return days < CERT_WARNING_DAYS ? { state: "ending", days } : { state: "ok" };
}

export function certSummary(k: KeyInfo): CertSummary | null {
  const first = k.certificates[0];
  if (!first) return null;
  try {
    const c = parseCertificate(b64.decode(first)!);
    return { subject: nameText(c.subject), issuer: nameText(c.issuer), notAfter: c.notAfter * 1000 };
  } catch {
    return null;
  }
}

const nowMs = () => Date.now();

export class Services {
  constructor(
    readonly store: Store,
    private readonly fetchImpl: typeof fetch = fetch.bind(globalThis),
  ) {}

  hasVault(): Promise<boolean> {
    return AppVault.exists(this.store);
  }

  async createVault(pin: string): Promise<void> {
    await AppVault.init(this.store, pin, nowMs());
  }

  vault(): Promise<AppVault> {
    return AppVault.open(this.store);
  }

  async unlock(pin: string): Promise<Unlocked> {
    return (await this.vault()).unlock(pin, nowMs());
  }

  async keys(): Promise<KeyInfo[]> {
    return (await this.vault()).keys();
  }

  async generate(u: Unlocked, alg: NewKeyAlgorithm, label: string, noExport: boolean): Promise<KeyInfo> {
    return u.generate(alg, label, noExport, nowMs());
  }

  /** CSR to the RA with the code; the answer checked; returns what to show before installing. */
  async enrol(u: Unlocked, key: KeyInfo, raUrl: string, code: string): Promise<{ chain: Uint8Array[]; root: string; subject: string }> {
    const ra = new JsonClient(raUrl, "registration office", this.fetchImpl);
    const signer = await u.signingKey(key.id);
    let csr: string;
    try {
      csr = await buildCsr(signer, b64.decode(key.spki)!, key.label);
    } finally {
      signer.wipe();
    }
    const resp = await ra.post<{ chain?: unknown }>("/v1/certificates", { code: code.trim(), csr });
    if (typeof resp?.chain !== "string") throw new Failure("unavailable", "the registration office answered without a certificate");
    const chain = pemCertificates(resp.chain);
    const { root, leaf } = await checkEnrolledChain(chain, b64.decode(key.spki)!, Math.floor(nowMs() / 1000));
    return { chain, root, subject: nameText(leaf.subject) };
  }

  async install(u: Unlocked, key: KeyInfo, chain: Uint8Array[], root: string): Promise<void> {
    await u.installCertificates(key.id, chain.map((c) => b64.encode(c)));
    const roots = (await this.store.get<string[]>("ra-roots")) ?? [];
    if (!roots.includes(root)) await this.store.put("ra-roots", [...roots, root]);
  }

  async register(u: Unlocked, key: KeyInfo, relayUrl: string, login: string): Promise<RegistrationRecord> {
    if (key.certificates.length === 0) throw new Failure("refused_by_policy", "this key has no certificate: get one first");
    const relay = new Relay(relayUrl, this.fetchImpl);
    const { pair: devicePair, device } = await generateDeviceKey();
    const signer = await u.signingKey(key.id);
    let record: RegistrationRecord;
    try {
      record = await relay.register({
        login,
        device,
        deviceName: "Kalit app",
        chain: key.certificates.map((c) => b64.decode(c)!),
        certificateKey: signer,
      });
    } finally {
      signer.wipe();
    }
    const stored: StoredRegistration = { record, keyId: key.id, devicePrivate: devicePair.privateKey, devicePublic: b64.encode(device.publicKey) };
    await this.store.put(`registration/${record.relayId}/${record.login}`, stored);
    return record;
  }

  async registrations(): Promise<StoredRegistration[]> {
    const out: StoredRegistration[] = [];
    for (const k of await this.store.keys("registration/")) {
      const r = await this.store.get<StoredRegistration>(k);
      if (r) out.push(r);
    }
    return out;
  }

  private deviceOf(reg: StoredRegistration): DeviceKey {
    return deviceKeyOf(reg.devicePrivate, b64.decode(reg.devicePublic)!);
  }

  async devices(reg: StoredRegistration): Promise<DeviceList> {
    return listDevices(new Relay(reg.record.relayUrl, this.fetchImpl), reg.record, this.deviceOf(reg));
  }

  /** Removes a device from the login; removing this phone's own forgets the registration here too. */
  async removeDevice(reg: StoredRegistration, target: string): Promise<void> {
    await removeDevice(new Relay(reg.record.relayUrl, this.fetchImpl), reg.record, this.deviceOf(reg), target);
    if (target === reg.record.deviceId) await this.store.delete(`registration/${reg.record.relayId}/${reg.record.login}`);
  }

  async computer(id: string): Promise<Computer | null> {
    return (await this.store.get<Computer>(`computer/${id}`)) ?? null;
  }

  async recordComputer(id: string, name: string | null): Promise<void> {
    const known = await this.computer(id);
    await this.store.put(`computer/${id}`, { id, name: known?.name ?? name ?? id, uses: (known?.uses ?? 0) + 1 } satisfies Computer);
  }

  /** A backup file of every exportable key, with the history; `skipped`: the no-export keys left out. */
  async backup(u: Unlocked, passphrase: string): Promise<{ file: Uint8Array; skipped: string[] }> {
    const v = await this.vault();
    const keys = await v.keys();
    const fingerprint = (label: string) => keys.find((k) => k.label === label)?.fingerprint ?? "";
    const history: BackupHistoryEntry[] = (await this.history()).map((h) => ({
      time: new Date(h.time).toISOString().replace(/\.\d{3}Z$/, "Z"),
      key: h.key,
      fingerprint: fingerprint(h.key),
      document: h.document,
      sha256: h.sha256,
      size: h.size,
      format: h.format,
      origin: h.origin,
    }));
    const { contents, skipped } = await u.backupContents(v.header.policy, history);
    return { file: await writeBackup(contents, passphrase, nowMs()), skipped };
  }

  /** A new vault from a backup file (this phone must have none yet). */
  async restore(file: Uint8Array, passphrase: string, newPin: string): Promise<string[]> {
    const contents = await openBackup(file, passphrase);
    const { keys } = await restoreVault(this.store, contents, newPin, nowMs());
    const history: HistoryEntry[] = (contents.history as BackupHistoryEntry[]).map((h) => ({
      time: Date.parse(h.time) || 0,
      key: h.key,
      document: h.document,
      sha256: h.sha256,
      size: h.size,
      format: h.format,
      origin: h.origin ?? "",
    }));
    await this.store.put("history", history);
    return keys;
  }

  async changePin(oldPin: string, newPin: string): Promise<void> {
    await (await this.vault()).changePin(oldPin, newPin, nowMs());
  }

  async history(): Promise<HistoryEntry[]> {
    return (await this.store.get<HistoryEntry[]>("history")) ?? [];
  }

  async appendHistory(e: HistoryEntry): Promise<void> {
    await this.store.put("history", [...(await this.history()), e]);
  }

  /** The registrations a QR can use (its relay's), or why there is none. */
  async registrationsFor(qrText: string): Promise<{ qr: Qr; regs: StoredRegistration[] }> {
    const qr = Qr.parse(qrText);
    qr.checkFresh(Math.floor(nowMs() / 1000));
    const regs = (await this.registrations()).filter((r) => r.record.relayId === qr.payload.relay_id);
    if (regs.length === 0) throw new Failure("not_found", "this phone is not registered with the relay in the QR code");
    return { qr, regs };
  }

  /** Runs one signing session; `ask` is the screen's question, `sign` signs after the PIN. */
  async pair(
    qrText: string,
    reg: StoredRegistration,
    chain: Uint8Array[],
    ui: PairUi,
    connect: (url: string) => WebSocket,
  ): Promise<PairSummary> {
    const device = this.deviceOf(reg);
    return pair({
      qrText,
      nowSecs: Math.floor(nowMs() / 1000),
      registration: reg.record,
      chain,
      device,
      relay: new Relay(reg.record.relayUrl, this.fetchImpl),
      ui,
      connect: (url) => connect(url),
    });
  }
}

/** The digest a CMS by `signer` is made over: SHA-512 for an Ed25519 key (RFC 8419), SHA-256 otherwise. */
function digestFor(signer: SigningKey, d: Digests): Uint8Array {
  const digest = signer.algorithm === "ed25519" ? d.sha512 : d.sha256;
  if (digest.length === 0) throw new Failure("invalid_input", "this key's CMS needs the document's SHA-512");
  return digest;
}

/** Signs an approved prompt with the key (raw, detached CMS with the certificate chain, or PAdES). */
export async function answerWith(u: Unlocked, key: KeyInfo, p: Prompt): Promise<PhoneAnswer> {
  const signer = await u.signingKey(key.id);
  try {
    if (p.format === "pades") {
      const chain = key.certificates.map((c) => b64.decode(c)!);
      if (!p.digests) return { kind: "approved", signature: await signPrepared(signer, chain, p.data, p.pss) };
      // Too large to travel: the computer's digest of its byte ranges, which the person confirmed separately.
      return { kind: "approved", signature: await signCmsDigest(signer, chain, digestFor(signer, p.digests), p.pss, null) };
    }
    if (p.format === "cms") {
      const chain = key.certificates.map((c) => b64.decode(c)!);
      // A large document: the phone holds its first bytes and the digests (its own, or on the digest path
      // the computer's, which the person confirmed separately).
      if (p.digests) {
        return { kind: "approved", signature: await signCmsDigest(signer, chain, digestFor(signer, p.digests), p.pss, new Date()) };
      }
      return { kind: "approved", signature: await signCmsDetached(signer, chain, p.data, p.pss, new Date()) };
    }
    if (p.digests) throw new Failure("refused_by_policy", "a raw signature is made over the whole document, which is not here");
    const { signature } = await signer.signDocument(p.data, p.pss);
    return { kind: "approved", signature };
  } finally {
    signer.wipe();
  }
}
