// The phone app's screens (Preact). Every string from the wire, the QR, the relay or the RA is rendered
// as a text node (Preact escapes it) after the display rules (`display.field`), never as markup.

import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

import { b64 } from "../protocol/bytes.js";
import { parseEnrolment } from "./links.js";
import * as display from "../protocol/display.js";
import { Failure, asFailure } from "../protocol/errors.js";
import type { PdfInspection } from "../protocol/pdf.js";
import type { PhoneAnswer, Prompt } from "../protocol/phone-session.js";
import { Unreachable } from "../phone/http.js";
import type { PairUi } from "../phone/pair.js";
import type { DeviceList } from "../phone/relay.js";
import { setArgon2id } from "../protocol/seal.js";
import { IndexedDbStore } from "../vault/store.js";
import type { KeyInfo, NewKeyAlgorithm, Unlocked } from "../vault/vault.js";
import { type Key, LANGS, type Lang, errorHeadline, formatDate, formatLabel, formatNumber, formatSize, initialLang, saveLang, storedLang, t } from "./i18n.js";
import { type CertSummary, certTime, Services, type StoredRegistration, answerWith, certSummary } from "./services.js";
import { workerArgon2id } from "./worker-kdf.js";

type Screen =
  | { s: "loading" }
  | { s: "first-run" }
  | { s: "keys" }
  | { s: "new-key" }
  | { s: "import-pfx" }
  | { s: "key"; id: string }
  | { s: "enrol"; id: string; ra?: string; code?: string }
  | { s: "enrol-link"; ra: string; code: string }
  | { s: "register"; id: string }
  | { s: "sign"; qr: string }
  | { s: "history" }
  | { s: "settings" };

interface Ctx {
  lang: Lang;
  tr: (k: Key, p?: Record<string, string | number>) => string;
  svc: Services;
  go: (s: Screen) => void;
  /** Asks the PIN; resolves with it, or null when the person cancels. */
  askPin: () => Promise<string | null>;
  fail: (e: unknown) => void;
  /**
   * Asks the PIN, opens the vault for `op` only and locks it again; a failure is shown and gives null,
   * as does a cancelled PIN. `busy` is told while the vault is open.
   */
  withVault: <T>(op: (u: Unlocked) => Promise<T>, busy?: (b: boolean) => void) => Promise<T | null>;
}

const failureOf = asFailure;

/** The text after `#` in the address bar; "" when it is not valid percent-encoding. */
function hashText(): string {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return "";
  }
}

/** The QR a link carries: `https://RELAY/app/#kalit:...`. */
function qrFromHash(): string | null {
  const h = hashText();
  return h.startsWith("kalit:") ? h : null;
}

function enrolmentFromHash(): { ra: string; code: string } | null {
  return parseEnrolment(hashText());
}

/**
 * Forgets the link a screen was opened from, so that a reload does not run it again; only that link: a
 * newer one in the address bar (its hashchange may still be on its way) belongs to the next screen.
 */
function forgetLink(link: string): void {
  if (link !== "" && location.hash !== "" && hashText() === link) history.replaceState(null, "", location.pathname);
}

/** Failures whose whole message is a sentence for people, said in the person's language. */
const PLAIN: Record<string, Key> = {
  "storage-full": "storageFull",
  "camera-refused": "cameraRefused",
  "camera-missing": "cameraMissing",
};

function App({ svc }: { svc: Services }) {
  const [lang, setLang] = useState<Lang>(() => initialLang(storedLang(), navigator.languages));
  const [screen, setScreen] = useState<Screen>({ s: "loading" });
  const [error, setError] = useState<Failure | null>(null);
  const [pinAsk, setPinAsk] = useState<((pin: string | null) => void) | null>(null);
  const tr = (k: Key, p?: Record<string, string | number>) => t(lang, k, p);

  useEffect(() => {
    document.documentElement.lang = lang === "uz" ? "uz-Latn" : lang;
    document.title = t(lang, "appName");
  }, [lang]);

  useEffect(() => {
    void (async () => {
      if (!(await svc.hasVault())) return setScreen({ s: "first-run" });
      const qr = qrFromHash();
      const enrolment = enrolmentFromHash();
      setScreen(qr ? { s: "sign", qr } : enrolment ? { s: "enrol-link", ...enrolment } : { s: "keys" });
    })().catch((e: unknown) => setError(failureOf(e)));
    const onHash = () => {
      const qr = qrFromHash();
      const enrolment = enrolmentFromHash();
      if (qr || enrolment) setError(null);
      if (qr) setScreen({ s: "sign", qr });
      else if (enrolment) setScreen({ s: "enrol-link", ...enrolment });
    };
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  const ctx: Ctx = {
    lang,
    tr,
    svc,
    go: (s) => {
      setError(null);
      // Leaving a link's screen: a reload must not run the link again.
      if (location.hash && s.s !== "sign" && s.s !== "enrol-link" && s.s !== "enrol") history.replaceState(null, "", location.pathname);
      setScreen(s);
    },
    askPin: () => new Promise((resolve) => setPinAsk(() => (pin: string | null) => {
      setPinAsk(null);
      resolve(pin);
    })),
    fail: (e) => setError(failureOf(e)),
    withVault: async (op, busy) => {
      const pin = await ctx.askPin();
      if (pin === null) return null;
      busy?.(true);
      try {
        const u = await svc.unlock(pin);
        try {
          return await op(u);
        } finally {
          u.lock();
        }
      } catch (e) {
        setError(failureOf(e));
        return null;
      } finally {
        busy?.(false);
      }
    },
  };

  const nav = screen.s !== "first-run" && screen.s !== "loading";
  return (
    <div class="app">
      <header>
        <h1>{tr("appName")}</h1>
        <select aria-label={tr("language")} value={lang} onChange={(e) => {
          const l = (e.target as HTMLSelectElement).value as Lang;
          saveLang(l);
          setLang(l);
        }}>
          {LANGS.map((l) => <option value={l} key={l}>{t(l, "langName")}</option>)}
        </select>
      </header>
      {nav && (
        <nav>
          <button class={screen.s === "keys" ? "on" : ""} onClick={() => ctx.go({ s: "keys" })}>{tr("keys")}</button>
          <button class={screen.s === "sign" ? "on" : ""} onClick={() => ctx.go({ s: "sign", qr: "" })}>{tr("sign")}</button>
          <button class={screen.s === "history" ? "on" : ""} onClick={() => ctx.go({ s: "history" })}>{tr("history")}</button>
          <button id="nav-settings" class={screen.s === "settings" ? "on" : ""} onClick={() => ctx.go({ s: "settings" })}>{tr("settings")}</button>
        </nav>
      )}
      {error && (
        <div class="error" role="alert">
          {error instanceof Unreachable ? (
            <strong>
              {tr(error.service === "relay" ? "relayUnreachable" : "raUnreachable", { address: display.field(error.address, 200) })}
            </strong>
          ) : (
            <>
              <strong>{error.message in PLAIN ? tr(PLAIN[error.message]!) : errorHeadline(lang, error.code)}</strong>
              {!(error.message in PLAIN) && <> {display.field(error.message, 400)}</>}
            </>
          )}{" "}
          <small>{tr("errorCode", { code: error.code })}</small>
        </div>
      )}
      <main>
        {screen.s === "loading" && <p>…</p>}
        {screen.s === "first-run" && <FirstRun ctx={ctx} />}
        {screen.s === "keys" && <Keys ctx={ctx} />}
        {screen.s === "new-key" && <NewKey ctx={ctx} />}
        {screen.s === "import-pfx" && <ImportPfx ctx={ctx} />}
        {screen.s === "key" && <KeyDetails ctx={ctx} id={screen.id} />}
        {screen.s === "enrol" && <Enrol ctx={ctx} id={screen.id} ra={screen.ra ?? ""} code={screen.code ?? ""} />}
        {screen.s === "enrol-link" && <EnrolLink ctx={ctx} ra={screen.ra} code={screen.code} />}
        {screen.s === "register" && <Register ctx={ctx} id={screen.id} />}
        {screen.s === "sign" && <Sign key={screen.qr} ctx={ctx} initial={screen.qr} />}
        {screen.s === "history" && <History ctx={ctx} />}
        {screen.s === "settings" && <Settings ctx={ctx} />}
      </main>
      {pinAsk && <PinDialog tr={tr} done={pinAsk} />}
    </div>
  );
}

function PinDialog({ tr, done }: { tr: Ctx["tr"]; done: (pin: string | null) => void }) {
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const submit = (e: Event) => {
    e.preventDefault();
    const pin = ref.current?.value ?? "";
    if (ref.current) ref.current.value = "";
    done(pin);
  };
  return (
    <div class="modal" role="dialog" aria-modal="true">
      <form onSubmit={submit}>
        <label>
          {tr("pin")}
          <input ref={ref} id="pin" type="password" inputMode="numeric" autoComplete="off" />
        </label>
        <div class="row">
          <button type="submit" id="pin-ok">{tr("unlock")}</button>
          <button type="button" onClick={() => done(null)}>{tr("cancel")}</button>
        </div>
      </form>
    </div>
  );
}

function FirstRun({ ctx }: { ctx: Ctx }) {
  const [a, setA] = useState("");
  const [b, setB] = useState("");
  const [busy, setBusy] = useState(false);
  const [storage, setStorage] = useState<boolean | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (a !== b) return ctx.fail(new Failure("invalid_input", ctx.tr("pinsDiffer")));
    setBusy(true);
    try {
      await ctx.svc.createVault(a);
      const kept = (await navigator.storage?.persist?.()) ?? false;
      setStorage(kept);
    } catch (err) {
      ctx.fail(err);
    } finally {
      setBusy(false);
      setA("");
      setB("");
    }
  };
  const [restored, setRestored] = useState<string | null>(null);
  if (storage !== null) {
    return (
      <section>
        {restored && <p class="ok" id="restored">{restored}</p>}
        <p class={storage ? "ok" : "warn"} id="storage">{ctx.tr(storage ? "storageKept" : "storageNotKept")}</p>
        <button id="continue" onClick={() => ctx.go({ s: "keys" })}>{ctx.tr("ok")}</button>
      </section>
    );
  }
  return (
    <section>
      <h2>{ctx.tr("firstRunTitle")}</h2>
      <p>{ctx.tr("firstRunExplain")}</p>
      <form onSubmit={submit}>
        <label>{ctx.tr("choosePin")}<input id="pin1" type="password" autoComplete="new-password" value={a} onInput={(e) => setA((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("repeatPin")}<input id="pin2" type="password" autoComplete="new-password" value={b} onInput={(e) => setB((e.target as HTMLInputElement).value)} /></label>
        <button id="create-vault" type="submit" disabled={busy}>{ctx.tr("createVault")}</button>
      </form>
      <Restore ctx={ctx} done={async (msg) => {
        setRestored(msg);
        setStorage((await navigator.storage?.persist?.()) ?? false);
      }} />
    </section>
  );
}

function Restore({ ctx, done }: { ctx: Ctx; done: (message: string) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [pass, setPass] = useState("");
  const [pin1, setPin1] = useState("");
  const [pin2, setPin2] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    if (pin1 !== pin2) return ctx.fail(new Failure("invalid_input", ctx.tr("pinsDiffer")));
    setBusy(true);
    try {
      const keys = await ctx.svc.restore(new Uint8Array(await file.arrayBuffer()), pass, pin1);
      done(ctx.tr("restored", { keys: keys.map((k) => display.field(k, 64)).join(", ") }));
    } catch (err) {
      ctx.fail(err);
    } finally {
      setBusy(false);
      setPass("");
      setPin1("");
      setPin2("");
    }
  };
  return (
    <details>
      <summary>{ctx.tr("restore")}</summary>
      <form onSubmit={submit}>
        <label>{ctx.tr("backupFile")}<input id="restore-file" type="file" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} /></label>
        <label>{ctx.tr("backupPassphrase")}<input id="restore-pass" type="password" value={pass} onInput={(e) => setPass((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("newPin")}<input id="restore-pin1" type="password" value={pin1} onInput={(e) => setPin1((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("repeatPin")}<input id="restore-pin2" type="password" value={pin2} onInput={(e) => setPin2((e.target as HTMLInputElement).value)} /></label>
        {busy ? <p class="progress" role="status">{ctx.tr("working")}</p> : <button id="do-restore" type="submit">{ctx.tr("restore")}</button>}
      </form>
    </details>
  );
}

function Settings({ ctx }: { ctx: Ctx }) {
  const [p1, setP1] = useState("");
  const [p2, setP2] = useState("");
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState<{ url: string; name: string; skipped: string[] } | null>(null);
  const [oldPin, setOldPin] = useState("");
  const [newPin, setNewPin] = useState("");
  const [newPin2, setNewPin2] = useState("");
  const [pinDone, setPinDone] = useState(false);
  const backup = async (e: Event) => {
    e.preventDefault();
    if (p1 !== p2) return ctx.fail(new Failure("invalid_input", ctx.tr("passphrasesDiffer")));
    const made = await ctx.withVault((u) => ctx.svc.backup(u, p1), setBusy);
    setP1("");
    setP2("");
    if (!made) return;
    const name = `kalit-backup-${new Date().toISOString().slice(0, 10)}.json`;
    setMade({ url: URL.createObjectURL(new Blob([made.file as Uint8Array<ArrayBuffer>], { type: "application/json" })), name, skipped: made.skipped });
  };
  const change = async (e: Event) => {
    e.preventDefault();
    // A new PIN typed two ways would lock the person out of every key: refused before the vault is read
    // (no PIN attempt is counted), and both new fields are emptied to be typed again.
    if (newPin !== newPin2) {
      setNewPin("");
      setNewPin2("");
      return ctx.fail(new Failure("invalid_input", ctx.tr("pinsDiffer")));
    }
    setBusy(true);
    try {
      await ctx.svc.changePin(oldPin, newPin);
      setPinDone(true);
    } catch (err) {
      ctx.fail(err);
    } finally {
      setBusy(false);
      setOldPin("");
      setNewPin("");
      setNewPin2("");
    }
  };
  return (
    <section>
      <h2>{ctx.tr("backup")}</h2>
      <p>{ctx.tr("backupExplain")}</p>
      {made ? (
        <div>
          <p class="ok">{ctx.tr("backupMade", { file: made.name })}</p>
          <a id="backup-download" class="button" href={made.url} download={made.name}>{made.name}</a>
          {made.skipped.length > 0 && <p class="warn">{ctx.tr("skippedNoExport", { keys: made.skipped.join(", ") })}</p>}
        </div>
      ) : (
        <form onSubmit={backup}>
          <label>{ctx.tr("backupPassphrase")}<input id="backup-pass1" type="password" value={p1} onInput={(e) => setP1((e.target as HTMLInputElement).value)} /></label>
          <label>{ctx.tr("repeatPassphrase")}<input id="backup-pass2" type="password" value={p2} onInput={(e) => setP2((e.target as HTMLInputElement).value)} /></label>
          {busy ? <p class="progress" role="status">{ctx.tr("working")}</p> : <button id="make-backup" type="submit">{ctx.tr("makeBackup")}</button>}
        </form>
      )}
      <h2>{ctx.tr("changePin")}</h2>
      {pinDone ? <p class="ok" id="pin-changed">{ctx.tr("pinChanged")}</p> : (
        <form onSubmit={change}>
          <label>{ctx.tr("currentPin")}<input id="old-pin" type="password" value={oldPin} onInput={(e) => setOldPin((e.target as HTMLInputElement).value)} /></label>
          <label>{ctx.tr("newPin")}<input id="new-pin" type="password" autoComplete="new-password" value={newPin} onInput={(e) => setNewPin((e.target as HTMLInputElement).value)} /></label>
          <label>{ctx.tr("repeatPin")}<input id="new-pin2" type="password" autoComplete="new-password" value={newPin2} onInput={(e) => setNewPin2((e.target as HTMLInputElement).value)} /></label>
          <button id="change-pin" type="submit" disabled={busy}>{ctx.tr("changePin")}</button>
        </form>
      )}
    </section>
  );
}

function useKeys(ctx: Ctx): [KeyInfo[] | null, StoredRegistration[]] {
  const [keys, setKeys] = useState<KeyInfo[] | null>(null);
  const [regs, setRegs] = useState<StoredRegistration[]>([]);
  useEffect(() => {
    void Promise.all([ctx.svc.keys(), ctx.svc.registrations()]).then(([k, r]) => {
      setKeys(k);
      setRegs(r);
    }, ctx.fail);
  }, []);
  return [keys, regs];
}

function CertLine({ ctx, c }: { ctx: Ctx; c: CertSummary | null }) {
  if (!c) return <span class="muted">{ctx.tr("noCertificate")}</span>;
  const time = certTime(c.notAfter, Date.now());
  const date = formatDate(ctx.lang, c.notAfter);
  const note =
    time.state === "ended" ? ctx.tr("certEnded", { date })
    : time.state === "ending" && time.days === 0 ? ctx.tr("certEndsToday", { date })
    : time.state === "ending" ? ctx.tr("certEnding", { n: time.days, date })
    : null;
  return (
    <span class="cert-subject">
      {c.subject}
      {note !== null && <span class={time.state === "ended" ? "cert-time bad" : "cert-time warn"} role="note">{note}</span>}
    </span>
  );
}

function Keys({ ctx }: { ctx: Ctx }) {
  const [keys, regs] = useKeys(ctx);
  if (!keys) return <p>…</p>;
  return (
    <section>
      <h2>{ctx.tr("keys")} <small>{ctx.tr("keyCount", { n: keys.length })}</small></h2>
      {keys.length === 0 && <p>{ctx.tr("noKeys")}</p>}
      <ul class="list">
        {keys.map((k) => (
          <li key={k.id}>
            <button class="link" onClick={() => ctx.go({ s: "key", id: k.id })}>
              <strong>{k.label}</strong> <span class="muted">{k.algorithm}</span>
              <br />
              <CertLine ctx={ctx} c={certSummary(k)} />
              <span class="tags">
                {regs.filter((r) => r.keyId === k.id).map((r) => (
                  <span class="tag" key={r.record.relayId + r.record.login}>{r.record.login} @ {display.field(r.record.relayName || r.record.relayUrl, 40)}</span>
                ))}
              </span>
            </button>
          </li>
        ))}
      </ul>
      <div class="row">
        <button id="new-key" onClick={() => ctx.go({ s: "new-key" })}>{ctx.tr("newKey")}</button>
        <button id="import-pfx" onClick={() => ctx.go({ s: "import-pfx" })}>{ctx.tr("importPfx")}</button>
      </div>
    </section>
  );
}

function NewKey({ ctx }: { ctx: Ctx }) {
  const [label, setLabel] = useState("");
  const [alg, setAlg] = useState<NewKeyAlgorithm>("p-256");
  const [noExport, setNoExport] = useState(false);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = await ctx.withVault((u) => ctx.svc.generate(u, alg, label, noExport), setBusy);
    if (k) ctx.go({ s: "key", id: k.id });
  };
  return (
    <section>
      <h2>{ctx.tr("newKey")}</h2>
      <form onSubmit={submit}>
        <label>{ctx.tr("keyName")}<input id="key-name" value={label} maxLength={64} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("algorithm")}
          <select id="key-alg" value={alg} onChange={(e) => setAlg((e.target as HTMLSelectElement).value as NewKeyAlgorithm)}>
            <option value="p-256">ECDSA P-256</option>
            <option value="ed25519">Ed25519</option>
            <option value="rsa-2048">RSA 2048</option>
            <option value="rsa-3072">RSA 3072</option>
          </select>
        </label>
        <label class="check"><input type="checkbox" checked={noExport} onChange={(e) => setNoExport((e.target as HTMLInputElement).checked)} /> {ctx.tr("noExport")}</label>
        {busy ? <p class="progress" role="status">{ctx.tr("generating")}</p> : <button id="create-key" type="submit">{ctx.tr("create")}</button>}
      </form>
    </section>
  );
}

function ImportPfx({ ctx }: { ctx: Ctx }) {
  const [file, setFile] = useState<File | null>(null);
  const [password, setPassword] = useState("");
  const [label, setLabel] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    const pin = await ctx.askPin();
    if (pin === null) return;
    setBusy(true);
    try {
      const { importPfx } = (await import("./pfx.js")) as typeof import("./pfx.js");
      const contents = await importPfx(new Uint8Array(await file.arrayBuffer()), password);
      const u = await ctx.svc.unlock(pin);
      try {
        const k = await u.storeKey(contents.pkcs8, label || file.name.replace(/\.(pfx|p12)$/i, ""), false, "imported", contents.certificates.map((c) => b64.encode(c)), Date.now());
        contents.pkcs8.fill(0);
        ctx.go({ s: "key", id: k.id });
      } finally {
        u.lock();
      }
    } catch (err) {
      ctx.fail(err);
      setBusy(false);
    } finally {
      setPassword("");
    }
  };
  return (
    <section>
      <h2>{ctx.tr("importPfx")}</h2>
      <form onSubmit={submit}>
        <label>{ctx.tr("pfxFile")}<input id="pfx-file" type="file" accept=".pfx,.p12,application/x-pkcs12" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} /></label>
        <label>{ctx.tr("pfxPassword")}<input id="pfx-password" type="password" autoComplete="off" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("keyName")}<input id="pfx-label" value={label} maxLength={64} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} /></label>
        {busy ? <p class="progress" role="status">{ctx.tr("working")}</p> : <button id="do-import" type="submit">{ctx.tr("importPfx")}</button>}
      </form>
    </section>
  );
}

function ExportPfx({ ctx, k }: { ctx: Ctx; k: KeyInfo }) {
  const [open, setOpen] = useState(false);
  const [p1, setP1] = useState("");
  const [p2, setP2] = useState("");
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState<{ url: string; name: string } | null>(null);
  if (k.no_export) return null;
  if (!open) return <button id="export-pfx" onClick={() => setOpen(true)}>{ctx.tr("exportPfx")}</button>;
  if (made) {
    return (
      <div>
        <p class="ok">{ctx.tr("pfxReady", { file: made.name })}</p>
        <a id="pfx-download" class="button" href={made.url} download={made.name}>{made.name}</a>
      </div>
    );
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    if (p1 !== p2) return ctx.fail(new Failure("invalid_input", ctx.tr("passphrasesDiffer")));
    const file = await ctx.withVault(async (u) => {
      const { exportPfx } = (await import("./pfx.js")) as typeof import("./pfx.js");
      const pkcs8 = await u.exportPkcs8(k.id);
      try {
        return await exportPfx(pkcs8, k.certificates.map((c) => b64.decode(c)!), p1, k.label);
      } finally {
        pkcs8.fill(0);
      }
    }, setBusy);
    setP1("");
    setP2("");
    if (!file) return;
    const name = `${k.label.replace(/[^\p{L}\p{N}._-]+/gu, "_")}.pfx`;
    setMade({ url: URL.createObjectURL(new Blob([file as Uint8Array<ArrayBuffer>], { type: "application/x-pkcs12" })), name });
  };
  return (
    <form onSubmit={submit}>
      <label>{ctx.tr("newPfxPassword")}<input id="pfx-pass1" type="password" value={p1} onInput={(e) => setP1((e.target as HTMLInputElement).value)} /></label>
      <label>{ctx.tr("repeatPassphrase")}<input id="pfx-pass2" type="password" value={p2} onInput={(e) => setP2((e.target as HTMLInputElement).value)} /></label>
      {busy ? <p class="progress" role="status">{ctx.tr("working")}</p> : <button id="do-export" type="submit">{ctx.tr("exportPfx")}</button>}
    </form>
  );
}

function KeyDetails({ ctx, id }: { ctx: Ctx; id: string }) {
  const [keys, regs] = useKeys(ctx);
  const k = keys?.find((x) => x.id === id);
  if (!keys) return <p>…</p>;
  if (!k) return <p>{ctx.tr("noKeys")}</p>;
  const c = certSummary(k);
  const del = async () => {
    if (!confirm(ctx.tr("confirmDelete", { name: k.label }))) return;
    if ((await ctx.withVault(async (u) => (await u.destroy(k.id), true))) !== null) ctx.go({ s: "keys" });
  };
  return (
    <section>
      <h2>{k.label}</h2>
      <dl>
        <dt>{ctx.tr("algorithm")}</dt><dd>{k.algorithm}</dd>
        <dt>{ctx.tr("fingerprint")}</dt><dd class="mono">{k.fingerprint}</dd>
        <dt>{ctx.tr("created")}</dt><dd>{formatDate(ctx.lang, Date.parse(k.created))}</dd>
        <dt>{ctx.tr("policy")}</dt><dd id="key-policy">{ctx.tr(k.no_export ? "policyNoExport" : "policyExportable")}</dd>
        <dt>{ctx.tr("certificate")}</dt><dd id="cert-subject"><CertLine ctx={ctx} c={c} /></dd>
        {c && <><dt>{ctx.tr("issuer")}</dt><dd>{c.issuer}</dd><dt>{ctx.tr("validUntil")}</dt><dd id="cert-not-after" data-not-after={c.notAfter}>{formatDate(ctx.lang, c.notAfter)}</dd></>}
        {regs.filter((r) => r.keyId === k.id).map((r) => (
          <><dt>{ctx.tr("registrations")}</dt><dd class="registration">{r.record.login} @ {display.field(r.record.relayUrl, 80)}</dd></>
        ))}
      </dl>
      {regs.filter((r) => r.keyId === k.id).map((r) => <Devices key={r.record.relayId + r.record.login} ctx={ctx} reg={r} />)}
      <div class="row">
        <button id="enrol" onClick={() => ctx.go({ s: "enrol", id })}>{ctx.tr("getCertificate")}</button>
        {c && <button id="register" onClick={() => ctx.go({ s: "register", id })}>{ctx.tr("register")}</button>}
        <button class="danger" onClick={del}>{ctx.tr("deleteKey")}</button>
      </div>
      <ExportPfx ctx={ctx} k={k} />
    </section>
  );
}

function Devices({ ctx, reg }: { ctx: Ctx; reg: StoredRegistration }) {
  const [list, setList] = useState<DeviceList | null>(null);
  const [msg, setMsg] = useState<string | null>(null);
  const load = () => ctx.svc.devices(reg).then(setList, ctx.fail);
  const remove = async (id: string, name: string) => {
    if (!confirm(ctx.tr("confirmRemoveDevice", { name: display.field(name, 60), login: reg.record.login }))) return;
    try {
      await ctx.svc.removeDevice(reg, id);
      setMsg(ctx.tr("deviceRemoved"));
      if (id === reg.record.deviceId) return ctx.go({ s: "keys" });
      await load();
    } catch (e) {
      ctx.fail(e);
    }
  };
  if (!list) return <button class="devices" onClick={load}>{ctx.tr("devices")}: {reg.record.login}</button>;
  return (
    <div class="devices-list">
      <h3>{ctx.tr("devices")}: {display.field(list.login, 64)}</h3>
      {msg && <p class="ok">{msg}</p>}
      <ul class="list">
        {list.devices.map((d) => (
          <li key={d.device_id} class="device">
            <strong>{display.field(d.name, 60)}</strong>{d.device_id === reg.record.deviceId && <span class="tag">{ctx.tr("thisPhone")}</span>}
            <br />
            <small class="mono">{d.device_id.slice(0, 8)}</small> · <small>{ctx.tr("registeredAt")}: {formatDate(ctx.lang, d.registered_at * 1000)}</small>
            <br />
            <small>{display.field(d.cert_subject, 120)}</small>
            <div><button class="danger" onClick={() => remove(d.device_id, d.name)}>{ctx.tr("removeDevice")}</button></div>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** An enrolment link from the registration office: which key gets the certificate (or a new one). */
function EnrolLink({ ctx, ra, code }: { ctx: Ctx; ra: string; code: string }) {
  const [keys] = useKeys(ctx);
  if (!keys) return <p>…</p>;
  const fresh = async () => {
    const k = await ctx.withVault((u) => ctx.svc.generate(u, "p-256", ctx.tr("myKey"), false));
    if (k) ctx.go({ s: "enrol", id: k.id, ra, code });
  };
  return (
    <section>
      <h2>{ctx.tr("getCertificate")}</h2>
      <p>{ctx.tr("enrolLinkExplain", { ra: display.field(ra, 80) })}</p>
      <ul class="list">
        {keys.map((k) => (
          <li key={k.id}>
            <button class="link enrol-key" onClick={() => ctx.go({ s: "enrol", id: k.id, ra, code })}>
              <strong>{k.label}</strong> <span class="muted">{k.algorithm}</span>
            </button>
          </li>
        ))}
      </ul>
      <button id="enrol-new-key" onClick={() => void fresh()}>{ctx.tr("newKey")} (P-256)</button>
    </section>
  );
}

function Enrol({ ctx, id, ra: ra0, code: code0 }: { ctx: Ctx; id: string; ra: string; code: string }) {
  const [keys] = useKeys(ctx);
  const [ra, setRa] = useState(ra0);
  const [code, setCode] = useState(code0);
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<{ chain: Uint8Array[]; root: string; subject: string } | null>(null);
  const k = keys?.find((x) => x.id === id);
  if (!k) return <p>…</p>;
  const ask = async (e: Event) => {
    e.preventDefault();
    const got = await ctx.withVault((u) => ctx.svc.enrol(u, k, ra, code), setBusy);
    if (got) setAnswer(got);
  };
  const install = async () => {
    if (!answer) return;
    const done = await ctx.withVault(async (u) => (await ctx.svc.install(u, k, answer.chain, answer.root), true));
    if (done) ctx.go({ s: "key", id });
  };
  if (answer) {
    return (
      <section>
        <h2>{ctx.tr("getCertificate")}</h2>
        <dl>
          <dt>{ctx.tr("subject")}</dt><dd id="enrolled-subject">{answer.subject}</dd>
          <dt>{ctx.tr("rootFingerprint")}</dt><dd class="mono" id="root-fingerprint">{answer.root.match(/.{1,4}/g)?.join(" ")}</dd>
        </dl>
        <button id="install" onClick={install}>{ctx.tr("install")}</button>
      </section>
    );
  }
  return (
    <section>
      <h2>{ctx.tr("getCertificate")}: {k.label}</h2>
      <form onSubmit={ask}>
        <label>{ctx.tr("raAddress")}<input id="ra-url" type="url" value={ra} onInput={(e) => setRa((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("enrolCode")}<input id="ra-code" value={code} autoComplete="off" onInput={(e) => setCode((e.target as HTMLInputElement).value)} /></label>
        {busy ? <p class="progress" role="status">{ctx.tr("requesting")}</p> : <button id="ask-cert" type="submit">{ctx.tr("getCertificate")}</button>}
      </form>
    </section>
  );
}

function Register({ ctx, id }: { ctx: Ctx; id: string }) {
  const [keys] = useKeys(ctx);
  const [relay, setRelay] = useState(location.origin);
  const [login, setLogin] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const k = keys?.find((x) => x.id === id);
  if (!k) return <p>…</p>;
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await ctx.withVault((u) => ctx.svc.register(u, k, relay, login), setBusy);
    if (r) setDone(ctx.tr("registered", { login: r.login, relay: display.field(r.relayName || r.relayUrl, 80) }));
  };
  if (done) {
    return (
      <section>
        <p class="ok" id="registered">{done}</p>
        <button onClick={() => ctx.go({ s: "keys" })}>{ctx.tr("ok")}</button>
      </section>
    );
  }
  return (
    <section>
      <h2>{ctx.tr("register")}: {k.label}</h2>
      <form onSubmit={submit}>
        <label>{ctx.tr("relayAddress")}<input id="relay-url" type="url" value={relay} onInput={(e) => setRelay((e.target as HTMLInputElement).value)} /></label>
        <label>{ctx.tr("login")}<input id="login" value={login} autoComplete="username" onInput={(e) => setLogin((e.target as HTMLInputElement).value)} /></label>
        {busy ? <p class="progress" role="status">…</p> : <button id="do-register" type="submit">{ctx.tr("register")}</button>}
      </form>
    </section>
  );
}

type Phase =
  | { p: "input" }
  | { p: "name-computer"; qr: string; computerId: string; origin: string; login: string }
  | { p: "choose"; qr: string; name: string | null; logins: string[] }
  | { p: "connecting"; origin: string }
  | { p: "connected"; sas: string; origin: string; network: string | null; vouch: string }
  | { p: "ended"; origin: string };

interface Asking {
  prompt: Prompt;
  /** For a PDF signature: what the phone's own check of the prepared PDF found. */
  pdf: PdfInspection | null;
  resolve: (a: PhoneAnswer | null) => void;
}

function Sign({ ctx, initial }: { ctx: Ctx; initial: string }) {
  const fromLink = initial !== "";
  // A newer link or another screen replaced this one while its session was still ending: what the old
  // session does afterwards stays its own (no failure over the new screen, no tab closed under it).
  const live = useRef(true);
  useEffect(() => () => {
    live.current = false;
  }, []);
  const [text, setText] = useState(initial);
  const [phase, setPhase] = useState<Phase>({ p: "input" });
  const [asking, setAsking] = useState<Asking | null>(null);
  const [notices, setNotices] = useState<string[]>([]);
  const [computerName, setComputerName] = useState("");
  const signingKey = useRef<KeyInfo | null>(null);
  const vouchRef = useRef<string>("");
  const notice = (s: string) => setNotices((n) => [...n, s]);

  const start = async (qrText: string, name: string | null, login: string | null = null) => {
    try {
      const { qr, regs } = await ctx.svc.registrationsFor(qrText);
      // Several logins at this relay: the person chooses which one signs.
      const reg = regs.length === 1 ? regs[0]! : regs.find((r) => r.record.login === login);
      if (!reg) {
        setPhase({ p: "choose", qr: qrText, name, logins: regs.map((r) => r.record.login) });
        return;
      }
      const computerId = qr.computerId();
      // A page in direct mode has a key for this session only: the relay's statement of its origin is
      // what the phone goes by (the session requires it), not a name.
      const page = qr.payload.mode === "direct";
      const known = page || (await ctx.svc.computer(computerId));
      if (!known && name === null) {
        setPhase({ p: "name-computer", qr: qrText, computerId, origin: qr.payload.origin, login: reg.record.login });
        return;
      }
      const keys = await ctx.svc.keys();
      const key = keys.find((k) => k.id === reg.keyId);
      if (!key) throw new Failure("not_found", "the key of this registration was deleted");
      signingKey.current = key;
      const chain = key.certificates.map((c) => b64.decode(c)!);
      setPhase({ p: "connecting", origin: qr.payload.origin });
      let endedShown = false;
      const ui: PairUi = {
        connected: ({ sas, origin, network, vouchedBy }) => {
          if (!page) void ctx.svc.recordComputer(computerId, name);
          const relay = vouchedBy === reg.record.relayId ? new URL(reg.record.relayUrl).host : vouchedBy;
          const vouch = relay === null ? ctx.tr("computerSays") : ctx.tr("vouchedBy", { relay });
          vouchRef.current = vouch;
          setPhase({ p: "connected", sas, origin, network, vouch });
        },
        ask: (prompt, signal, pdf) =>
          new Promise<PhoneAnswer | null>((resolve) => {
            signal.addEventListener("abort", () => {
              setAsking(null);
              resolve(null);
            });
            setAsking({
              prompt,
              pdf,
              resolve: (a) => {
                setAsking(null);
                // Opened by a portal on this very phone: once the answer is on its way, back to the portal's
                // tab (it takes its session back from the relay and receives the signature).
                if (a?.kind === "approved" && fromLink) setTimeout(() => live.current && window.close(), 1500);
                if (a?.kind === "approved") {
                  void ctx.svc.appendHistory({
                    time: Date.now(),
                    key: key.label,
                    document: prompt.name,
                    sha256: prompt.sha256,
                    size: prompt.size,
                    // As the Rust vault records it: a document signed by the computer's digest says so.
                    format: prompt.unchecked ? `${prompt.format}-digest` : prompt.format,
                    origin: prompt.origin,
                  });
                }
                resolve(a);
              },
            });
          }),
        notice: (kind, msg) => {
          if (kind === "withdrawn") notice(ctx.tr("withdrawn"));
          else if (kind === "refused") notice(ctx.tr("refused", { reason: display.field(msg, 200) }));
          else if (kind === "ended") {
            endedShown = true;
            notice(`${ctx.tr("ended")} ${display.field(msg, 200)}`);
          }
          else notice(display.field(msg, 200));
        },
      };
      await ctx.svc.pair(qrText, reg, chain, ui, (url) => new WebSocket(url));
      setPhase({ p: "ended", origin: qr.payload.origin });
      if (!endedShown) notice(ctx.tr("ended"));
      // Opened by a portal on this very phone (its "Sign with Kalit on this phone" button): back to its
      // tab, which takes its session back and receives the signature.
      if (fromLink) setTimeout(() => live.current && window.close(), 1500);
      forgetLink(initial);
    } catch (e) {
      setPhase({ p: "input" });
      if (live.current) ctx.fail(e);
      // A link that failed is not run again by a reload.
      forgetLink(initial);
    }
  };

  useEffect(() => {
    if (initial) void start(initial, null);
  }, []);

  return (
    <section class="sign" data-phase={phase.p}>
      {phase.p === "input" && (
        <>
          <Scanner ctx={ctx} found={(qr) => {
            const enrolment = parseEnrolment(qr);
            if (enrolment) ctx.go({ s: "enrol-link", ...enrolment });
            else void start(qr, null);
          }} />
          <form onSubmit={(e) => {
            e.preventDefault();
            void start(text, null);
          }}>
            <label>{ctx.tr("pasteQr")}<textarea id="qr-text" rows={4} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} /></label>
            <button id="connect" type="submit">{ctx.tr("connect")}</button>
          </form>
        </>
      )}
      {phase.p === "name-computer" && (
        <form class="warning-screen" onSubmit={(e) => {
          e.preventDefault();
          if (computerName.trim()) void start(phase.qr, computerName.trim(), phase.login);
        }}>
          <h2>{ctx.tr("newComputerTitle")}</h2>
          <p class="origin" id="asking-origin">{display.field(phase.origin, 120)}</p>
          <p>{ctx.tr("newComputerWarn")}</p>
          <label>{ctx.tr("nameComputer")}<input id="computer-name" value={computerName} maxLength={40} onInput={(e) => setComputerName((e.target as HTMLInputElement).value)} /></label>
          <div class="row">
            <button id="name-ok" type="submit">{ctx.tr("connect")}</button>
            <button type="button" onClick={() => setPhase({ p: "input" })}>{ctx.tr("cancel")}</button>
          </div>
        </form>
      )}
      {phase.p === "choose" && (
        <div>
          <p>{ctx.tr("chooseLogin")}</p>
          {phase.logins.map((l) => (
            <button class="choose-login" key={l} onClick={() => void start(phase.qr, phase.name, l)}>{display.field(l, 64)}</button>
          ))}
        </div>
      )}
      {phase.p === "connecting" && <p class="progress" role="status">{ctx.tr("connecting")}</p>}
      {phase.p === "connected" && !asking && (
        <div>
          <p>{ctx.tr("connected")}: <span class="origin">{display.field(phase.origin, 120)}</span></p>
          <p class="muted" id="origin-vouch">{phase.vouch}</p>
          <p class="sas" id="sas">{phase.sas}</p>
          <p>{ctx.tr("compareCode")}</p>
          <p class="muted">{ctx.tr("waitingRequest")}</p>
        </div>
      )}
      {phase.p === "ended" && fromLink && (
        <p>
          <button id="back-to-portal" onClick={() => window.close()}>{ctx.tr("backToPortal", { origin: display.field(phase.origin, 80) })}</button>
        </p>
      )}
      {asking && signingKey.current && (
        <Ask ctx={ctx} asking={asking} signingKey={signingKey.current} vouch={vouchRef.current} sas={phase.p === "connected" ? phase.sas : ""} />
      )}
      {notices.length > 0 && <ul class="notices" id="notices">{notices.map((n, i) => <li key={i}>{n}</li>)}</ul>}
    </section>
  );
}

/** The camera, loaded only when the person presses "Scan" (scanner.js and its WebAssembly). */
function Scanner({ ctx, found }: { ctx: Ctx; found: (qr: string) => void }) {
  const video = useRef<HTMLVideoElement>(null);
  const [stop, setStop] = useState<AbortController | null>(null);
  useEffect(() => () => stop?.abort(), [stop]);
  const scan = async () => {
    const abort = new AbortController();
    setStop(abort);
    try {
      const { scanQr } = (await import("./scanner.js")) as typeof import("./scanner.js");
      if (!video.current) return;
      const qr = await scanQr(video.current, abort.signal);
      setStop(null);
      found(qr);
    } catch (e) {
      setStop(null);
      if (abort.signal.aborted) return;
      ctx.fail(e);
    }
  };
  return (
    <div class="scanner">
      <video ref={video} id="camera" playsInline muted class={stop ? "on" : "off"} />
      {stop ? (
        <>
          <p role="status">{ctx.tr("scanning")}</p>
          <button onClick={() => stop.abort()}>{ctx.tr("stopScan")}</button>
        </>
      ) : (
        <button id="scan" onClick={() => void scan()}>{ctx.tr("scan")}</button>
      )}
    </div>
  );
}

function Ask({ ctx, asking, signingKey, vouch, sas }: { ctx: Ctx; asking: Asking; signingKey: KeyInfo; vouch: string; sas: string }) {
  const p = asking.prompt;
  const [busy, setBusy] = useState(false);
  // The digest path: approving needs its own confirmation that the phone could not check the document.
  const [uncheckedOk, setUncheckedOk] = useState(false);
  const lines = display.isTextType(p.mediaType) || display.sniff(p.data) === "text" ? display.preview(p.data, 60, 24) : null;
  const approve = async () => {
    const pin = await ctx.askPin();
    if (pin === null) return;
    setBusy(true);
    let answer: PhoneAnswer;
    try {
      const u = await ctx.svc.unlock(pin);
      try {
        answer = await answerWith(u, signingKey, p);
      } finally {
        u.lock();
      }
    } catch (e) {
      answer = { kind: "failed", failure: failureOf(e) };
      ctx.fail(e);
    }
    asking.resolve(answer);
  };
  return (
    <div class="prompt" id="prompt">
      <p class="origin big" id="prompt-origin">{display.field(p.origin, 120)}</p>
      <p class="muted" id="prompt-vouch">{vouch}</p>
      {sas && <p class="muted">{ctx.tr("compareCode")} <span class="sas-small" id="prompt-sas">{sas}</span></p>}
      <p>{ctx.tr("requestFrom")}</p>
      <dl>
        <dt>{ctx.tr("document")}</dt><dd id="prompt-name">{display.field(p.name, 120)}</dd>
        <dt>{ctx.tr("size")}</dt><dd>{p.size < 1024 ? ctx.tr("bytes", { n: p.size }) : `${formatSize(ctx.lang, p.size)} (${ctx.tr("bytes", { n: p.size })})`}</dd>
        <dt>{ctx.tr("type")}</dt><dd>{display.field(p.mediaType, 80)} ({display.field(formatLabel(ctx.lang, p.format), 60)})</dd>
        <dt>{ctx.tr("sha256")}</dt><dd class="mono">{p.sha256}</dd>
      </dl>
      {p.typeWarning && <p class="warn">{p.typeWarning}</p>}
      {p.blind && <p class="warn">{ctx.tr("blindWarning")}</p>}
      {p.unchecked && (
        <>
          <p class="warn" id="prompt-unchecked">{ctx.tr("uncheckedWarning", { first: ctx.tr("bytes", { n: p.data.length }) })}</p>
          <label class="check">
            <input type="checkbox" id="unchecked-ok" checked={uncheckedOk} onChange={(e) => setUncheckedOk((e.target as HTMLInputElement).checked)} />
            {ctx.tr("uncheckedConfirm")}
          </label>
        </>
      )}
      {p.digests?.computedHere && <p class="muted" id="prompt-checked">{ctx.tr("checkedWhole")}</p>}
      {asking.pdf && <PdfFacts ctx={ctx} pdf={asking.pdf} data={p.data} />}
      {lines && (
        <figure>
          <figcaption>{ctx.tr("preview")}</figcaption>
          <pre id="prompt-preview">{lines.join("\n")}</pre>
        </figure>
      )}
      {busy ? <p class="progress" role="status">{ctx.tr("signing")}</p> : (
        <div class="row">
          <button id="approve" onClick={approve} disabled={p.unchecked && !uncheckedOk}>{ctx.tr("approve")}</button>
          <button id="decline" class="danger" onClick={() => asking.resolve({ kind: "declined" })}>{ctx.tr("decline")}</button>
        </div>
      )}
    </div>
  );
}

/** What the phone's check of a prepared PDF found, and its pages drawn by pdf.js (loaded only now). */
function PdfFacts({ ctx, pdf, data }: { ctx: Ctx; pdf: PdfInspection; data: Uint8Array }) {
  const box = useRef<HTMLDivElement>(null);
  const [drawn, setDrawn] = useState<{ pages: number; drawn: number; firstPageText: string } | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    const el = box.current;
    if (!el) return;
    el.replaceChildren();
    const width = Math.max(200, Math.min(el.clientWidth || 320, 640));
    (import("./pdf-view.js") as Promise<typeof import("./pdf-view.js")>)
      .then((m) => m.drawPages(data, el, width, (n) => ctx.tr("pdfPage", { n }), abort.signal))
      .then((d) => !abort.signal.aborted && setDrawn(d))
      .catch((e: unknown) => !abort.signal.aborted && setFailed(display.field(e instanceof Error ? e.message : String(e), 200)));
    return () => abort.abort();
  }, [data]);
  const field = display.field(pdf.field, 60);
  return (
    <section class="pdf" id="prompt-pdf">
      <p class="muted" id="pdf-checked">{ctx.tr("pdfChecked")}</p>
      <dl>
        <dt>{ctx.tr("pdfPages")}</dt><dd id="pdf-pages">{formatNumber(ctx.lang, pdf.pages)}</dd>
        {pdf.title !== null && <><dt>{ctx.tr("pdfTitle")}</dt><dd id="pdf-title">{display.field(pdf.title, 120)}</dd></>}
        <dt>{ctx.tr("pdfField")}</dt>
        <dd id="pdf-field">{pdf.fieldPage === null ? ctx.tr("pdfFieldNowhere", { field }) : ctx.tr("pdfFieldOn", { field, n: pdf.fieldPage })}</dd>
      </dl>
      {pdf.earlierSignatures > 0 && <p class="muted" id="pdf-earlier">{ctx.tr("pdfEarlier", { n: pdf.earlierSignatures })}</p>}
      {!drawn && !failed && <p class="progress" role="status">{ctx.tr("pdfDrawing")}</p>}
      {failed && <p class="warn" id="pdf-failed">{ctx.tr("pdfNotDrawn", { reason: failed })}</p>}
      <div class="pdf-pages" id="pdf-pages-drawn" ref={box} />
      {drawn && drawn.pages > drawn.drawn && <p class="muted">{ctx.tr("pdfMore", { n: drawn.pages - drawn.drawn })}</p>}
      {drawn && drawn.firstPageText && (
        <details>
          <summary>{ctx.tr("pdfFirstText")}</summary>
          <p id="pdf-text">{display.field(drawn.firstPageText, 2000)}</p>
        </details>
      )}
    </section>
  );
}

function History({ ctx }: { ctx: Ctx }) {
  const [items, setItems] = useState<Awaited<ReturnType<Services["history"]>> | null>(null);
  useEffect(() => void ctx.svc.history().then(setItems, ctx.fail), []);
  if (!items) return <p>…</p>;
  if (items.length === 0) return <p>{ctx.tr("noHistory")}</p>;
  return (
    <ul class="list">
      {[...items].reverse().map((h, i) => (
        <li key={i}>
          <strong>{display.field(h.document, 80)}</strong> · {display.field(h.origin, 80)}
          <br />
          <small>{formatDate(ctx.lang, h.time)} · {h.key} · {display.field(formatLabel(ctx.lang, h.format), 60)} · {formatSize(ctx.lang, h.size)}</small>
        </li>
      ))}
    </ul>
  );
}

async function boot(): Promise<void> {
  setArgon2id(workerArgon2id("./argon2-worker.js"));
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("./sw.js", { scope: "./" }).catch(() => {
      /* offline use needs it; the app works without it */
    });
  }
  const root = document.getElementById("root");
  if (!root) return;
  const store = await IndexedDbStore.open();
  render(<App svc={new Services(store)} />, root);
}

void boot();
