// PFX files made by OpenSSL (3.0 default and -legacy; RSA, P-256, Ed25519; with a CA; a Cyrillic
// password) read by the app's code; wrong passwords and foreign files refused; exports read by OpenSSL
// with the key coming back byte for byte.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { toHex } from "../src/protocol/bytes.js";
import { Failure } from "../src/protocol/errors.js";
import { SigningKey, describePkcs8 } from "../src/protocol/keys.js";
import { exportPfx, importPfx } from "../src/protocol/pfx.js";
import { parseCertificate, pemCertificates } from "../src/protocol/x509.js";
import { haveOpenssl } from "./tools.js";

test("PFX from OpenSSL, both encodings, every key kind; wrong passwords and foreign files refused; exports OpenSSL reads", async (t) => {
  if (!haveOpenssl()) return t.skip("no openssl");
  const dir = mkdtempSync(join(tmpdir(), "kalit-pfx-"));
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=PFX test CA");
  const kinds: [string, string[]][] = [
    ["rsa", ["-newkey", "rsa:2048"]],
    ["p256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]],
    ["ed25519", ["-newkey", "ed25519"]],
  ];
  for (const [name, keyArgs] of kinds) {
    ossl("req", "-new", ...keyArgs, "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=Alisher ${name}`);
    ossl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "10", "-out", `${name}.pem`);
    const keyDer = new Uint8Array(ossl("pkcs8", "-topk8", "-nocrypt", "-in", `${name}.key`, "-outform", "DER"));
    for (const [mode, password] of [
      ["modern", "secret-pass"],
      ["legacy", "secret-pass"],
      ["modern", "Парол-ўзбек1"],
      ["legacy", "Парол-ўзбек1"],
    ] as const) {
      const file = `${name}-${mode}-${password.length}.pfx`;
      ossl("pkcs12", "-export", ...(mode === "legacy" ? ["-legacy"] : []), "-inkey", `${name}.key`, "-in", `${name}.pem`, "-certfile", "ca.pem", "-passout", `pass:${password}`, "-out", file);
      const der = new Uint8Array(readFileSync(join(dir, file)));
      const got = await importPfx(der, password);
      assert.equal(toHex(got.pkcs8), toHex(keyDer), `${file}: the same key`);
      assert.equal(got.certificates.length, 2, file);
      assert.match(new TextDecoder().decode(parseCertificate(got.certificates[0]!).subject), /Alisher/, `${file}: its own certificate first`);
      await assert.rejects(importPfx(der, "wrong password"), (e: unknown) => e instanceof Failure && e.code === "wrong_password", file);
      assert.ok(describePkcs8(got.pkcs8).alg);
    }
    // Export: OpenSSL reads it with the password, and the key comes back byte for byte.
    const out = await exportPfx(keyDer, [...pemCertificates(readFileSync(join(dir, `${name}.pem`), "utf8")), ...pemCertificates(readFileSync(join(dir, "ca.pem"), "utf8"))], "export-pass-1", `key ${name}`);
    writeFileSync(join(dir, `${name}-export.pfx`), out);
    const info = execFileSync("sh", ["-c", `openssl pkcs12 -info -in ${name}-export.pfx -passin pass:export-pass-1 -noout 2>&1`], { cwd: dir }).toString();
    assert.match(info, /MAC: sha256/, info);
    assert.match(info, /AES-256-CBC/, info);
    const back = new Uint8Array(
      execFileSync("sh", ["-c", `openssl pkcs12 -in ${name}-export.pfx -passin pass:export-pass-1 -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt -outform DER`], { cwd: dir }),
    );
    assert.equal(toHex(back), toHex(keyDer), `${name}: OpenSSL reads the exported key back`);
    // And the app reads its own export.
    const again = await importPfx(out, "export-pass-1");
    assert.equal(toHex(again.pkcs8), toHex(keyDer));
    SigningKey.fromPkcs8(again.pkcs8).wipe();
  }
  // Foreign and hostile files.
  for (const bad of [new Uint8Array(0), new TextEncoder().encode("not a pfx"), readFileSync(join(dir, "ca.pem")), new Uint8Array(2 << 20)]) {
    await assert.rejects(importPfx(new Uint8Array(bad), "x"), (e: unknown) => e instanceof Failure && ["invalid_input", "wrong_password"].includes(e.code));
  }
  await assert.rejects(exportPfx(new Uint8Array(0), [], "short", "k"), (e: unknown) => e instanceof Failure && e.code === "weak_secret");
});
