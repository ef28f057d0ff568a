// kalit.js: sign documents with the certificate on the person's phone, through the Kalit agent running on
// this computer. An ES module with no dependencies and no build step:
//
//   import * as kalit from "./kalit.js";
//   const sig = await kalit.sign(fileOrBytes, { format: "cms", name: "contract.pdf" });
//
// The agent only answers pages whose origin the person allowed (`kalit agent allow https://your.site`).
// Every failure is a KalitError with a stable `code` (see ErrorCodes).

const DEFAULTS = { agent: "http://127.0.0.1:8760", timeoutMs: 180000, pollMs: 500 };
let config = { ...DEFAULTS };

/** Stable error codes. Codes from the agent (declined, expired, busy, ...) pass through as they are. */
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
});

/** Every failure of this library. */
export class KalitError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = "KalitError";
    this.code = code;
    this.details = details;
  }
}

/** Sets the agent URL, the default timeout (ms) and the polling interval (ms). */
export function configure(options = {}) {
  config = { ...config, ...options };
  return { ...config };
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof Blob !== "undefined" && data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (typeof data === "string") return new TextEncoder().encode(data);
  throw new KalitError(ErrorCodes.INVALID_INPUT, "data must be a Blob, File, ArrayBuffer, typed array or string");
}

// Tells "not running" from "running but refusing this origin" from "the browser blocked local access".
async function diagnose() {
  try {
    if (navigator.permissions) {
      const p = await navigator.permissions.query({ name: "local-network-access" });
      if (p.state === "denied") {
        return new KalitError(ErrorCodes.LOCAL_NETWORK_BLOCKED,
          "The browser blocks this site from reaching apps on this computer; allow local network access in the site settings.");
      }
    }
  } catch (_) { /* permission name unknown to this browser */ }
  try {
    await fetch(config.agent + "/v1/status", { mode: "no-cors", cache: "no-store" });
    return new KalitError(ErrorCodes.ORIGIN_NOT_ALLOWED,
      `The Kalit agent is running but does not accept ${location.origin}. Run: kalit agent allow ${location.origin}`);
  } catch (_) {
    return new KalitError(ErrorCodes.AGENT_NOT_RUNNING,
      `The Kalit agent does not answer at ${config.agent}. Start it with: kalit agent serve --relay URL ` +
      "(or the browser blocked access to this computer).");
  }
}

async function call(method, path, { body, token, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers["authorization"] = "Bearer " + token;
  let resp;
  try {
    resp = await fetch(config.agent + path, {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw await diagnose();
  }
  if (resp.status === 204) return null;
  let json;
  try { json = await resp.json(); } catch (_) {
    throw new KalitError(ErrorCodes.PROTOCOL, `The agent answered HTTP ${resp.status} without JSON.`);
  }
  if (!resp.ok) {
    const err = (json && json.error) || {};
    let code = err.code || ErrorCodes.PROTOCOL;
    if (code === "unavailable" && path === "/v1/sessions") code = ErrorCodes.RELAY_UNREACHABLE;
    throw new KalitError(code, err.message || `HTTP ${resp.status}`, { status: resp.status });
  }
  return json;
}

/** Version, relay and whether this origin is allowed. */
export async function status() {
  return call("GET", "/v1/status");
}

/** Digest of data, hex: "sha256" (default), "sha384" or "sha512". */
export async function hash(data, alg = "sha256") {
  const bytes = await toBytes(data);
  return (await call("POST", "/v1/hash", { body: { data: toBase64(bytes), alg } })).digest;
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// The dialog with the QR, then the SAS. Returns handles to update it.
function openDialog(created, name, onCancel) {
  const dlg = el("dialog", { "data-kalit-dialog": "", style: "max-width:24rem;font-family:system-ui,sans-serif;border-radius:.5rem" });
  const title = el("h2", { style: "margin-top:0;font-size:1.2rem" }, "Sign with your phone");
  const doc = el("p", {}, `Document: ${name}`);
  const img = el("img", { alt: "QR code", width: "240", height: "240", "data-kalit-qr-image": "" });
  img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(created.qr_svg);
  const help = el("p", {}, "Scan this QR code with the Kalit app on your phone.");
  const text = el("code", { "data-kalit-qr": "", style: "display:block;word-break:break-all;font-size:.65rem;color:#555" }, created.qr);
  const state = el("p", { "data-kalit-state": "" }, "Waiting for your phone...");
  const sas = el("p", { "data-kalit-sas": "", style: "font-size:2rem;font-weight:bold;letter-spacing:.2rem;margin:.5rem 0" });
  const cancel = el("button", { type: "button" }, "Cancel");
  cancel.addEventListener("click", onCancel);
  dlg.append(title, doc, img, help, text, state, sas, cancel);
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
    close() { try { dlg.close(); } catch (_) {} dlg.remove(); },
  };
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

/**
 * Signs a document with the phone. Shows a dialog with the QR code and then the matching code (SAS).
 * Resolves with { format, signature (Uint8Array), signatureBase64, scheme, sha256, certificatePem, signer, login }.
 * With format "pades" the data is a PDF; the result also holds `document` (the signed PDF) and `level`;
 * options `level` ("b-b", "b-t", "b-lt", "b-lta"), `reason` and `visible` ("PAGE,X,Y,WIDTH,HEIGHT").
 */
export async function sign(data, options = {}) {
  const { format = "cms", name = "document", mediaType, pss = false, ttl,
          timeoutMs = config.timeoutMs, dialog = true, onSession, level, reason, visible } = options;
  const bytes = await toBytes(data);
  const type = mediaType || (typeof Blob !== "undefined" && data instanceof Blob && data.type) || "application/octet-stream";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new KalitError(ErrorCodes.TIMEOUT, "The phone did not answer in time.")), timeoutMs);
  let created = null;
  let ui = null;
  try {
    created = await call("POST", "/v1/sessions", { body: ttl ? { ttl } : {}, signal: ctl.signal });
    if (onSession) onSession({ session: created.session, qr: created.qr, qrSvg: created.qr_svg, expiresAt: created.expires_at });
    if (dialog && typeof document !== "undefined") {
      ui = openDialog(created, name, () => ctl.abort(new KalitError(ErrorCodes.CANCELLED, "Cancelled.")));
    }
    for (;;) {
      const s = await call("GET", `/v1/sessions/${created.session}`, { token: created.token, signal: ctl.signal });
      if (s.phase === "connected") { if (ui) ui.paired(s); if (onSession) onSession({ session: created.session, sas: s.sas, login: s.login }); break; }
      if (s.phase === "closed") {
        const e = s.error || { code: ErrorCodes.EXPIRED, message: "The session ended." };
        throw new KalitError(e.code, e.message);
      }
      await sleep(config.pollMs, ctl.signal);
    }
    if (ui) ui.signing();
    const r = await call("POST", `/v1/sessions/${created.session}/sign`, {
      token: created.token, signal: ctl.signal,
      body: format === "pades"
        ? { data: toBase64(bytes), name, media_type: "application/pdf", format, pades: { level, reason, visible } }
        : { data: toBase64(bytes), name, media_type: type, format, pss },
    });
    const out = {
      format: r.format, signature: fromBase64(r.signature), signatureBase64: r.signature, scheme: r.scheme,
      sha256: r.sha256, certificatePem: r.certificate_pem, signer: r.signer, login: r.login,
    };
    if (r.document) { out.document = fromBase64(r.document); out.level = r.level; }
    return out;
  } catch (e) {
    if (e && e.name === "AbortError") throw (ctl.signal.reason || new KalitError(ErrorCodes.TIMEOUT, "Timed out."));
    if (e instanceof KalitError) throw e;
    if (ctl.signal.aborted) throw ctl.signal.reason;
    throw new KalitError(ErrorCodes.PROTOCOL, String(e));
  } finally {
    clearTimeout(timer);
    if (ui) ui.close();
    if (created) {
      call("DELETE", `/v1/sessions/${created.session}`, { token: created.token }).catch(() => {});
    }
  }
}

/**
 * Verifies a signature (raw needs `certificate`, PEM; CMS usually carries it). Resolves with the agent's
 * report { valid, format, scheme, signer, signing_time, chain, reason }.
 */
export async function verify(data, signature, options = {}) {
  const { format = "cms", certificate } = options;
  const body = { data: toBase64(await toBytes(data)), signature: toBase64(await toBytes(signature)), format };
  if (certificate) body.certificate = certificate;
  return call("POST", "/v1/verify", { body });
}

/**
 * Verifies every signature and document timestamp in a PDF. Resolves with the agent's report
 * { signatures: [{ field, kind, level, valid, reason, signer, timestamp, chain, covers_whole_document, ... }] }.
 */
export async function verifyPdf(pdf) {
  return call("POST", "/v1/verify/pdf", { body: { data: toBase64(await toBytes(pdf)) } });
}
