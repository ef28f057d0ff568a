// kalit.js: sign documents with the certificate on the person's phone. An ES module with no dependencies
// and no build step on the portal's side (this TypeScript is built into web/kalit.js, which is committed):
//
//   import * as kalit from "./kalit.js";
//   kalit.configure({ relay: "https://relay.example" });        // enables direct mode
//   const sig = await kalit.sign(fileOrBytes, { format: "cms", name: "contract.pdf" });
//
// Two ways to the phone, with the same API and error codes:
// - agent: the Kalit agent on this computer (it only answers origins the person allowed with
//   `kalit agent allow https://your.site`); it checks every answer and can sign PDFs and huge files.
// - direct: nothing installed. This page makes the session itself through the relay (web/kalit-direct.js,
//   loaded only then); the relay vouches to the phone for this page's origin.
// Mode "auto" (the default) uses the agent when it answers, and direct mode when no agent runs and a relay
// is configured. Every failure is a KalitError with a stable `code` (see ErrorCodes).

type Mode = "auto" | "agent" | "direct";

interface Config {
  agent: string;
  timeoutMs: number;
  pollMs: number;
  /** The relay for direct mode (https, or http on this machine); none: direct mode off. */
  relay: string | null;
  /** The relay's id, pinned (optional). */
  relayId: string | null;
  mode: Mode;
}

const DEFAULTS: Config = { agent: "http://127.0.0.1:8760", timeoutMs: 180000, pollMs: 100, relay: null, relayId: null, mode: "auto" };
let config: Config = { ...DEFAULTS };

/** Stable error codes. Codes from the agent or the phone (declined, expired, busy, ...) pass through as they are. */
export const ErrorCodes = Object.freeze({
  AGENT_NOT_RUNNING: "agent_not_running",
  ORIGIN_NOT_ALLOWED: "origin_not_allowed",
  LOCAL_NETWORK_BLOCKED: "local_network_blocked",
  RELAY_UNREACHABLE: "relay_unreachable",
  TIMEOUT: "timeout",
  CANCELLED: "cancelled",
  DECLINED: "declined",
  EXPIRED: "expired",
  BUSY: "busy",
  INVALID_SIGNATURE: "invalid_signature",
  CHANNEL: "channel",
  INVALID_INPUT: "invalid_input",
  TOO_LARGE: "too_large",
  PROTOCOL: "protocol",
  REFUSED_BY_POLICY: "refused_by_policy",
} as const);

/** Every failure of this library. */
export class KalitError extends Error {
  readonly code: string;
  readonly details: { status?: number } | undefined;
  constructor(code: string, message: string, details?: { status?: number }) {
    super(message);
    this.name = "KalitError";
    this.code = code;
    this.details = details;
  }
}

/** Sets the agent URL, the relay for direct mode, the mode, the default timeout (ms) and the polling interval (ms). */
export function configure(options: Partial<Config> = {}): Config {
  config = { ...config, ...options };
  return { ...config };
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + 0x8000)));
  }
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

type Bytes = Blob | ArrayBuffer | ArrayBufferView | string;

async function toBytes(data: Bytes): Promise<Uint8Array> {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof Blob !== "undefined" && data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (typeof data === "string") return new TextEncoder().encode(data);
  throw new KalitError(ErrorCodes.INVALID_INPUT, "data must be a Blob, File, ArrayBuffer, typed array or string");
}

// Tells "not running" from "running but refusing this origin" from "the browser blocked local access".
async function diagnose(): Promise<KalitError> {
  try {
    if (navigator.permissions) {
      const p = await navigator.permissions.query({ name: "local-network-access" as PermissionName });
      if (p.state === "denied") {
        return new KalitError(ErrorCodes.LOCAL_NETWORK_BLOCKED,
          "The browser blocks this site from reaching apps on this computer; allow local network access in the site settings.");
      }
    }
  } catch { /* permission name unknown to this browser */ }
  try {
    await fetch(config.agent + "/v1/status", { mode: "no-cors", cache: "no-store" });
    return new KalitError(ErrorCodes.ORIGIN_NOT_ALLOWED,
      `The Kalit agent is running but does not accept ${location.origin}. Run: kalit agent allow ${location.origin}`);
  } catch {
    return new KalitError(ErrorCodes.AGENT_NOT_RUNNING,
      `The Kalit agent does not answer at ${config.agent}. Start it with: kalit agent serve --relay URL ` +
      "(or the browser blocked access to this computer).");
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function call(method: string, path: string, o: { body?: unknown; token?: string; signal?: AbortSignal } = {}): Promise<Json> {
  const headers: Record<string, string> = {};
  if (o.body !== undefined) headers["content-type"] = "application/json";
  if (o.token) headers["authorization"] = "Bearer " + o.token;
  let resp: Response;
  try {
    resp = await fetch(config.agent + path, {
      method, headers, cache: "no-store",
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
    });
  } catch (e) {
    if (e instanceof Error && e.name === "AbortError") throw e;
    throw await diagnose();
  }
  if (resp.status === 204) return null;
  return answer(resp.status, await resp.text(), path);
}

/** The agent's answer: its JSON, or its error as a KalitError. */
function answer(status: number, text: string, path: string): Json {
  let json: Json;
  try { json = JSON.parse(text); } catch {
    throw new KalitError(ErrorCodes.PROTOCOL, `The agent answered HTTP ${status} without JSON.`);
  }
  if (status < 200 || status > 299) {
    const err = (json && json.error) || {};
    let code = err.code || ErrorCodes.PROTOCOL;
    if (code === "unavailable" && path === "/v1/sessions") code = ErrorCodes.RELAY_UNREACHABLE;
    throw new KalitError(code, err.message || `HTTP ${status}`, { status });
  }
  return json;
}

/** Largest document sent as JSON; a larger one goes as its bytes, with progress (the agent streams it). */
const JSON_DOCUMENT = 8 * 1024 * 1024;

/** POSTs a document's bytes themselves (a Blob is read by the browser as it goes), reporting progress. */
function upload(path: string, token: string, body: Blob | Uint8Array, signal: AbortSignal, progress: (done: number) => void): Promise<Json> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", config.agent + path);
    x.setRequestHeader("content-type", "application/octet-stream");
    x.setRequestHeader("authorization", "Bearer " + token);
    x.upload.onprogress = (e) => progress(e.loaded);
    x.onload = () => {
      try { resolve(answer(x.status, x.responseText, path)); } catch (e) { reject(e); }
    };
    x.onerror = () => { diagnose().then(reject, reject); };
    signal.addEventListener("abort", () => { x.abort(); reject(signal.reason); }, { once: true });
    x.send(body as XMLHttpRequestBodyInit);
  });
}

/** The direct-mode module, loaded the first time it is needed (from next to this file). */
type DirectModule = typeof import("./direct.js");
let directModule: Promise<DirectModule> | null = null;
function direct(): Promise<DirectModule> {
  if (!directModule) {
    const url = new URL("./kalit-direct.js", import.meta.url).href;
    directModule = (import(/* @vite-ignore */ url) as Promise<DirectModule>).catch((e) => {
      directModule = null;
      throw new KalitError(ErrorCodes.PROTOCOL, `kalit-direct.js could not be loaded from next to kalit.js (${String(e)})`);
    });
  }
  return directModule;
}

/** A failure of the direct module (its own Failure class: recognised by name and code) as a KalitError. */
function asKalitError(e: unknown): KalitError {
  if (e instanceof KalitError) return e;
  if (e instanceof Error && e.name === "Failure" && "code" in e) return new KalitError(String((e as { code: unknown }).code), e.message);
  return new KalitError(ErrorCodes.PROTOCOL, String(e));
}

/** In auto mode: when this page last found no agent (ms), so that the next signature goes straight to
 * direct mode for a minute instead of asking the agent again. */
let noAgentSince = 0;
const NO_AGENT_FOR_MS = 60_000;

const noAgent = (e: unknown) =>
  e instanceof KalitError && (e.code === ErrorCodes.AGENT_NOT_RUNNING || e.code === ErrorCodes.LOCAL_NETWORK_BLOCKED);

/**
 * Which way this page signs, and through what. Agent mode: the agent's status (version, relay, whether
 * this origin is allowed) with `mode: "agent"`. Direct mode: `{ mode: "direct", relay, relay_id, relay_name }`
 * once the relay answered.
 */
export async function status(): Promise<Json> {
  if (config.mode !== "direct") {
    try {
      const st = { ...(await call("GET", "/v1/status")), mode: "agent" };
      noAgentSince = 0;
      return st;
    } catch (e) {
      if (config.mode === "agent" || !config.relay || !noAgent(e)) throw e;
      noAgentSince = Date.now();
    }
  }
  if (!config.relay) throw new KalitError(ErrorCodes.INVALID_INPUT, "direct mode needs a relay: kalit.configure({ relay: URL })");
  const m = await direct();
  try {
    const base = m.relayBase(config.relay);
    const r = await m.relayIdentity(base, config.relayId ?? undefined, new AbortController().signal);
    return { mode: "direct", relay: base, relay_id: r.id, relay_name: r.name };
  } catch (e) {
    const k = asKalitError(e);
    throw k.code === "unavailable" ? new KalitError(ErrorCodes.RELAY_UNREACHABLE, k.message) : k;
  }
}

/** Digest of data, hex: "sha256" (default), "sha384" or "sha512" (by the agent; in the browser without one). */
export async function hash(data: Bytes, alg: "sha256" | "sha384" | "sha512" = "sha256"): Promise<string> {
  const bytes = await toBytes(data);
  try {
    return (await call("POST", "/v1/hash", { body: { data: toBase64(bytes), alg } })).digest;
  } catch (e) {
    if (!noAgent(e)) throw e;
    const name = { sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" }[alg];
    if (!name) throw new KalitError(ErrorCodes.INVALID_INPUT, `unknown digest ${alg}`);
    const d = new Uint8Array(await crypto.subtle.digest(name, bytes as Uint8Array<ArrayBuffer>));
    return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}

function el(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

interface Dialog {
  paired(s: { sas?: string; login?: string; certificate?: { subject: string } | null }): void;
  signing(): void;
  progress(p: Progress): void;
  close(): void;
}

/** How far a large document got: read by the agent ("upload"), then sent on to the phone ("phone"). */
export interface Progress { phase: "upload" | "phone"; done: number; total: number; }

/** Whether this page runs on a phone (where the person signs with the Kalit app on the same device). */
function onPhone(): boolean {
  const uaData = (navigator as Navigator & { userAgentData?: { mobile?: boolean } }).userAgentData;
  return uaData?.mobile === true || /Android|iPhone|iPad|iPod|Mobile/i.test(navigator.userAgent);
}

/** The link that opens a QR in the Kalit app served by its relay (the QR names the relay). */
function appLink(qr: string): string | null {
  try {
    const b = qr.slice("kalit:".length).replace(/-/g, "+").replace(/_/g, "/");
    const relay = JSON.parse(new TextDecoder().decode(fromBase64(b + "=".repeat((4 - (b.length % 4)) % 4)))).relay;
    return typeof relay === "string" && /^https?:\/\//.test(relay) ? `${relay.replace(/\/+$/, "")}/app/#${encodeURIComponent(qr)}` : null;
  } catch {
    return null;
  }
}

// The dialog with the QR (and, on a phone, the button that opens the Kalit app on it), then the SAS.
// Returns handles to update it. Every string in it is text.
function openDialog(created: { qr: string; qr_svg: string }, name: string, via: string, sameDevice: string | null, onCancel: () => void): Dialog {
  const dlg = el("dialog", { "data-kalit-dialog": "", style: "max-width:24rem;font-family:system-ui,sans-serif;border-radius:.5rem" }) as HTMLDialogElement;
  const title = el("h2", { style: "margin-top:0;font-size:1.2rem" }, "Sign with your phone");
  const doc = el("p", {}, `Document: ${name}`);
  const img = el("img", { alt: "QR code", width: "240", height: "240", "data-kalit-qr-image": "" }) as HTMLImageElement;
  img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(created.qr_svg);
  const help = el("p", {}, "Scan this QR code with the Kalit app on your phone.");
  const text = el("code", { "data-kalit-qr": "", style: "display:block;word-break:break-all;font-size:.65rem;color:#555" }, created.qr);
  const mode = el("p", { "data-kalit-mode": via, style: "font-size:.8rem;color:#555" },
    via === "direct" ? "Through the Kalit relay: nothing needs to be installed on this device." : "Through the Kalit agent on this computer.");
  const state = el("p", { "data-kalit-state": "" }, "Waiting for your phone...");
  const sas = el("p", { "data-kalit-sas": "", style: "font-size:2rem;font-weight:bold;letter-spacing:.2rem;margin:.5rem 0" });
  const cancel = el("button", { type: "button" }, "Cancel");
  cancel.addEventListener("click", onCancel);
  dlg.append(title, doc);
  if (sameDevice) {
    // The app opens in a tab of its own; this page waits (and takes its session back if the browser
    // froze it meanwhile). The app closes its tab when it is done, which brings the person back here.
    const open = el("button", { type: "button", "data-kalit-same-device": "", style: "font-size:1.1rem;padding:.6rem 1rem;margin:.25rem 0 .75rem" }, "Sign with Kalit on this phone");
    open.addEventListener("click", () => { window.open(sameDevice, "_blank", "noopener"); });
    help.textContent = "Or scan this QR code with the Kalit app on another phone.";
    dlg.append(open);
  }
  dlg.append(img, help, text, mode, state, sas, cancel);
  document.body.append(dlg);
  if (typeof dlg.showModal === "function") dlg.showModal(); else dlg.setAttribute("open", "");
  return {
    paired(s) {
      img.remove(); text.remove();
      help.textContent = "Check that your phone shows the same code, then approve there.";
      sas.textContent = s.sas || "";
      state.textContent = `Connected: ${s.login}` + (s.certificate ? ` (${s.certificate.subject})` : "");
    },
    signing() { state.textContent = "Waiting for your approval on the phone..."; },
    progress(p) {
      const pct = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 0;
      state.textContent = p.done >= p.total && p.phase === "phone"
        ? "Waiting for your approval on the phone..."
        : `${p.phase === "upload" ? "The Kalit agent is reading the document" : "Sending the document to your phone"}: ${pct} %`;
    },
    close() { try { dlg.close(); } catch { /* not open */ } dlg.remove(); },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

export interface SessionInfo { session: string; qr?: string; qrSvg?: string; expiresAt?: number; sas?: string; login?: string; mode?: "agent" | "direct"; }
export interface SignOptions {
  format?: "cms" | "raw" | "pades"; name?: string; mediaType?: string; pss?: boolean; ttl?: number;
  timeoutMs?: number; dialog?: boolean; onSession?: (info: SessionInfo) => void;
  level?: string; reason?: string; visible?: string; field?: string; lang?: "en" | "uz" | "ru";
  /** This call only: "agent", "direct" or "auto" (the configured mode otherwise). */
  mode?: Mode;
  /** Offer "Sign with Kalit on this phone" (the app on this very device) [default: on phones]. */
  sameDevice?: boolean;
  /** For a large document (over 8 MiB, agent mode): called as the agent reads it and as it goes to the phone. */
  onProgress?: (p: Progress) => void;
}

/**
 * Signs a document with the phone. Shows a dialog with the QR code and then the matching code (SAS).
 * Resolves with { format, signature (Uint8Array), signatureBase64, scheme, sha256, certificatePem, signer, login, mode }.
 * With format "pades" (agent only) the data is a PDF; the result also holds `document` (the signed PDF) and `level`;
 * options `level` ("b-b", "b-t", "b-lt", "b-lta"), `reason`, `visible` ("PAGE,X,Y,WIDTH,HEIGHT" in points, from the lower-left corner of the page as shown)
 * `field` (the PDF's own empty signature field to sign into) and `lang` ("en", "uz", "ru": the box's words).
 */
export async function sign(data: Bytes, options: SignOptions = {}): Promise<Json> {
  const { format = "cms", name = "document", mediaType, pss = false, ttl,
          timeoutMs = config.timeoutMs, dialog = true, onSession, level, reason, visible, field, lang } = options;
  const mode = options.mode || config.mode;
  const sameDevice = options.sameDevice ?? (typeof navigator !== "undefined" && onPhone());
  // A large Blob (a File from an <input>) is never read into this page: the browser streams it to the agent.
  const blob = typeof Blob !== "undefined" && data instanceof Blob ? data : null;
  const size = blob ? blob.size : -1;
  const bytes = blob && size > JSON_DOCUMENT ? new Uint8Array(0) : await toBytes(data);
  const large = blob ? size > JSON_DOCUMENT : bytes.length > JSON_DOCUMENT;
  const type = mediaType || (typeof Blob !== "undefined" && data instanceof Blob && data.type) || "application/octet-stream";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new KalitError(ErrorCodes.TIMEOUT, "The phone did not answer in time.")), timeoutMs);
  let created: Json = null;
  let ui: Dialog | null = null;
  const cancel = () => ctl.abort(new KalitError(ErrorCodes.CANCELLED, "Cancelled."));
  try {
    const skipAgent = mode === "auto" && config.relay && Date.now() - noAgentSince < NO_AGENT_FOR_MS;
    if (mode !== "direct" && !skipAgent) {
      try {
        created = await call("POST", "/v1/sessions", { body: ttl ? { ttl } : {}, signal: ctl.signal });
      } catch (e) {
        if (mode === "agent" || !config.relay || !noAgent(e)) throw e;
        noAgentSince = Date.now();
      }
    }
    if (!created) {
      if (format !== "cms" && format !== "raw") {
        throw new KalitError(ErrorCodes.INVALID_INPUT,
          "PDF signatures (pades) need the Kalit agent on this computer; without it, ask for cms or raw.");
      }
      if (!config.relay) throw new KalitError(ErrorCodes.INVALID_INPUT, "direct mode needs a relay: kalit.configure({ relay: URL })");
      if (large) {
        throw new KalitError(ErrorCodes.TOO_LARGE,
          "Documents over 8 MiB need the Kalit agent on this computer (it streams them to the phone, or signs them by digest).");
      }
      const m = await direct();
      let started = false;
      try {
        const r = await m.signDirect({
          data: bytes, name, mediaType: type, format, pss, relay: config.relay,
          ...(config.relayId ? { relayId: config.relayId } : {}),
          ...(ttl ? { ttl } : {}),
          signal: ctl.signal,
          onQr(i) {
            started = true;
            if (onSession) onSession({ session: i.session, qr: i.qr, qrSvg: i.qrSvg, expiresAt: i.expiresAt, mode: "direct" });
            if (dialog && typeof document !== "undefined") {
              ui = openDialog({ qr: i.qr, qr_svg: i.qrSvg }, name, "direct", sameDevice ? i.appUrl : null, cancel);
            }
          },
          onPaired(i) {
            ui?.paired(i);
            if (onSession) onSession({ session: i.session, sas: i.sas, login: i.login, mode: "direct" });
          },
          onSigning() { ui?.signing(); },
        });
        return r;
      } catch (e) {
        if (ctl.signal.aborted) throw ctl.signal.reason;
        const k = asKalitError(e);
        throw !started && k.code === "unavailable" ? new KalitError(ErrorCodes.RELAY_UNREACHABLE, k.message) : k;
      }
    }
    if (onSession) onSession({ session: created.session, qr: created.qr, qrSvg: created.qr_svg, expiresAt: created.expires_at, mode: "agent" });
    if (dialog && typeof document !== "undefined") ui = openDialog(created, name, "agent", sameDevice ? appLink(created.qr) : null, cancel);
    let offer: { whole: number; digest: boolean } | null = null;
    for (;;) {
      const s = await call("GET", `/v1/sessions/${created.session}`, { token: created.token, signal: ctl.signal });
      if (s.phase === "connected") {
        offer = s.documents || null;
        ui?.paired(s);
        if (onSession) onSession({ session: created.session, sas: s.sas, login: s.login, mode: "agent" });
        break;
      }
      if (s.phase === "closed") {
        const e = s.error || { code: ErrorCodes.EXPIRED, message: "The session ended." };
        throw new KalitError(e.code, e.message);
      }
      await sleep(config.pollMs, ctl.signal);
    }
    ui?.signing();
    let r: Json;
    if (large) {
      const total = blob ? size : bytes.length;
      // A raw signature needs the whole document on the phone: say so before sending anything.
      if (format === "raw" && offer && total > offer.whole) {
        throw new KalitError(ErrorCodes.TOO_LARGE,
          `A raw signature needs the whole document on the phone, which takes up to ${Math.floor(offer.whole / 1048576)} MiB; ask for cms (signed by its digest).`);
      }
      const report = (p: Progress) => { ui?.progress(p); if (options.onProgress) options.onProgress(p); };
      const q = new URLSearchParams({ name, format, media_type: format === "pades" ? "application/pdf" : type });
      if (format === "pades") {
        if (level) q.set("level", level);
        if (reason) q.set("reason", reason);
        if (visible) q.set("visible", visible);
        if (field) q.set("field", field);
        if (lang) q.set("lang", lang);
      } else if (pss) q.set("pss", "true");
      // While the agent sends the document on to the phone, the session state says how far it got.
      let sending = true;
      const watch = (async () => {
        while (sending) {
          await sleep(250, ctl.signal).catch(() => { sending = false; });
          if (!sending) break;
          const s = await call("GET", `/v1/sessions/${created.session}`, { token: created.token }).catch(() => null);
          if (s && s.transfer && sending) report({ phase: "phone", done: s.transfer.sent, total: s.transfer.total });
        }
      })();
      try {
        r = await upload(`/v1/sessions/${created.session}/sign?${q}`, created.token, blob || bytes, ctl.signal,
          (done) => report({ phase: "upload", done, total }));
      } finally {
        sending = false;
        await watch;
      }
    } else {
      r = await call("POST", `/v1/sessions/${created.session}/sign`, {
        token: created.token, signal: ctl.signal,
        body: format === "pades"
          ? { data: toBase64(bytes), name, media_type: "application/pdf", format, pades: { level, reason, visible, field, lang } }
          : { data: toBase64(bytes), name, media_type: type, format, pss },
      });
    }
    const out: Json = {
      format: r.format, signature: fromBase64(r.signature), signatureBase64: r.signature, scheme: r.scheme,
      sha256: r.sha256, certificatePem: r.certificate_pem, signer: r.signer, login: r.login, mode: "agent",
    };
    if (r.document) { out.document = fromBase64(r.document); out.level = r.level; }
    return out;
  } catch (e) {
    if (e instanceof Error && e.name === "AbortError") throw (ctl.signal.reason || new KalitError(ErrorCodes.TIMEOUT, "Timed out."));
    if (e instanceof KalitError) throw e;
    if (ctl.signal.aborted) throw ctl.signal.reason;
    throw new KalitError(ErrorCodes.PROTOCOL, String(e));
  } finally {
    clearTimeout(timer);
    (ui as Dialog | null)?.close();
    if (created) {
      call("DELETE", `/v1/sessions/${created.session}`, { token: created.token }).catch(() => {});
    }
  }
}

/**
 * Verifies a signature (raw needs `certificate`, PEM; CMS usually carries it), by the agent. Resolves
 * with its report { valid, format, scheme, signer, signing_time, chain, reason }. Direct mode has no
 * verifier in the page: verify on the portal's server (`kalit verify`, OpenSSL).
 */
export async function verify(data: Bytes, signature: Bytes, options: { format?: "cms" | "raw"; certificate?: string } = {}): Promise<Json> {
  const { format = "cms", certificate } = options;
  const body: Json = { data: toBase64(await toBytes(data)), signature: toBase64(await toBytes(signature)), format };
  if (certificate) body.certificate = certificate;
  return call("POST", "/v1/verify", { body });
}

/**
 * Verifies every signature and document timestamp in a PDF, by the agent. Resolves with its report
 * { signatures: [{ field, kind, level, valid, reason, signer, timestamp, chain, covers_whole_document, ... }] }.
 */
export async function verifyPdf(pdf: Bytes): Promise<Json> {
  return call("POST", "/v1/verify/pdf", { body: { data: toBase64(await toBytes(pdf)) } });
}
