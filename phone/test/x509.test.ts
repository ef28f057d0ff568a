// CSRs the phone builds, judged by OpenSSL (`openssl req -verify`), and the enrolment chain check on
// certificates OpenSSL issues for them.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { b64 } from "../src/protocol/bytes.js";
import { Failure } from "../src/protocol/errors.js";
import { signCmsDetached } from "../src/protocol/cms.js";
import { inspectPrepared, signPrepared } from "../src/protocol/pdf.js";
import { checkCms, checkRaw } from "../src/protocol/signature-check.js";
import { buildCsr, checkEnrolledChain, nameText, parseCertificate, pemCertificates } from "../src/protocol/x509.js";
import { MemoryStore } from "../src/vault/store.js";
import { AppVault } from "../src/vault/vault.js";
import { haveCerttool, haveOpenssl } from "./tools.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pdfVectors: any = JSON.parse(readFileSync(new URL("../../../crates/kalit-core/vectors/pdf-v1.json", import.meta.url), "utf8"));

const NOW = Date.now();
const now = () => Math.floor(Date.now() / 1000);

test("CSRs for every key kind verify with OpenSSL; the issued chain checks; another key's does not", async (t) => {
  if (!haveOpenssl()) return t.skip("no openssl");
  const dir = mkdtempSync(join(tmpdir(), "kalit-x509-"));
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] }).toString();
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=Test RA root/C=UZ");
  writeFileSync(join(dir, "ext.cnf"), "keyUsage=critical,digitalSignature,nonRepudiation\n");
  const v = await AppVault.init(new MemoryStore(), "123456", NOW);
  const u = await v.unlock("123456", NOW);
  let first: Uint8Array | undefined;
  let prevLeaf: Uint8Array | undefined;
  for (const alg of ["p-256", "ed25519", "rsa-2048"] as const) {
    const k = await u.generate(alg, `key ${alg}`, false, NOW);
    const key = await u.signingKey(k.id);
    const spki = b64.decode(k.spki)!;
    const csr = await buildCsr(key, spki, "Alisher Navoiy");
    writeFileSync(join(dir, `${alg}.csr`), csr);
    // OpenSSL 3 says "verify OK" on standard error and exits 1 on a bad self-signature.
    const verified = execFileSync("sh", ["-c", `openssl req -verify -noout -in ${alg}.csr 2>&1`], { cwd: dir }).toString();
    assert.match(verified, /verify OK/, verified);
    ossl("x509", "-req", "-in", `${alg}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "10", "-extfile", "ext.cnf", "-out", `${alg}.pem`);
    const chain = [...pemCertificates(readFileSync(join(dir, `${alg}.pem`), "utf8")), ...pemCertificates(readFileSync(join(dir, "ca.pem"), "utf8"))];
    const { root, leaf } = await checkEnrolledChain(chain, spki, now());
    assert.equal(root.length, 64);
    assert.equal(nameText(leaf.subject), "CN=Alisher Navoiy");
    assert.equal(nameText(parseCertificate(chain[1]!).subject), "CN=Test RA root, C=UZ");
    if (first) {
      // The certificate of another key: refused.
      await assert.rejects(checkEnrolledChain(chain, first, now()), (e: unknown) => e instanceof Failure && e.code === "key_mismatch");
    }
    first = spki;
    // Outside the validity: refused. A certificate altered by one byte: refused.
    await assert.rejects(checkEnrolledChain(chain, spki, now() + 90 * 86400), (e: unknown) => e instanceof Failure && e.code === "untrusted_certificate");
    // One bit altered in the signed part (the serial number), or anywhere in the signature: refused.
    for (const at of [15, -40, -60]) {
      const altered = chain.map((c) => c.slice());
      const c0 = altered[0]!;
      c0[at < 0 ? c0.length + at : at]! ^= 1;
      await assert.rejects(checkEnrolledChain(altered, spki, now()), Failure, `bit at ${at}`);
    }
    // A detached CMS signature of a document, checked by OpenSSL with the CAdES checks (its signing
    // certificate attribute must name this certificate). OpenSSL 3.0 cannot check Ed25519 CMS: the
    // Rust agent checks those (e2e phone_app.rs).
    const doc = new TextEncoder().encode("Shartnoma / Договор\n");
    const cms = await signCmsDetached(key, chain, doc, false, new Date());
    // kalit.js direct mode checks the phone's answer itself: this certificate, this document, no other.
    const scheme = { "p-256": "ecdsa-p256-sha256", ed25519: "ed25519", "rsa-2048": "rsa-pkcs1-sha256" }[alg];
    const otherDoc = new TextEncoder().encode("Shartnoma / Договор!\n");
    const notSigned = (e: unknown) => e instanceof Failure && e.code === "invalid_signature";
    assert.equal(await checkCms(doc, cms, chain[0]!), scheme);
    await assert.rejects(checkCms(otherDoc, cms, chain[0]!), notSigned);
    await assert.rejects(checkCms(doc, cms, chain[1]!), notSigned, "another certificate");
    await assert.rejects(checkCms(doc, cms.slice(0, cms.length - 3), chain[0]!), notSigned, "truncated");
    const flipped = cms.slice();
    flipped[flipped.length - 5]! ^= 1;
    await assert.rejects(checkCms(doc, flipped, chain[0]!), notSigned, "a bit of the signature");
    const raw = (await key.signDocument(doc, false)).signature;
    assert.equal(await checkRaw(doc, raw, chain[0]!, false), scheme);
    await assert.rejects(checkRaw(otherDoc, raw, chain[0]!, false), notSigned);
    await assert.rejects(checkRaw(doc, raw, chain[0]!, true), notSigned, "PSS asked, PKCS#1 or another key kind given");
    if (prevLeaf) await assert.rejects(checkRaw(doc, raw, prevLeaf, false), notSigned, "another key's certificate");
    prevLeaf = chain[0]!;
    if (alg === "rsa-2048") {
      const pss = (await key.signDocument(doc, true)).signature;
      assert.equal(await checkRaw(doc, pss, chain[0]!, true), "rsa-pss-sha256");
      await assert.rejects(checkRaw(doc, pss, chain[0]!, false), notSigned);
      assert.equal(await checkCms(doc, await signCmsDetached(key, chain, doc, true, new Date()), chain[0]!), "rsa-pss-sha256");
    }
    // A PDF signature: the CMS over the prepared PDF's byte ranges, PAdES profile (no signingTime).
    const prepared = b64.decode(pdfVectors.cases[0].pdf)!;
    const [, a, b, c] = (await inspectPrepared(prepared)).byteRange;
    const ranges = new Uint8Array([...prepared.subarray(0, a), ...prepared.subarray(b, b + c)]);
    const pades = await signPrepared(key, chain, prepared, false);
    assert.equal(await checkCms(ranges, pades, chain[0]!), scheme);
    await assert.rejects(checkCms(ranges.subarray(1), pades, chain[0]!), notSigned);
    const signingTime = Uint8Array.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05]);
    const has = (hay: Uint8Array, n: Uint8Array) => hay.some((_, i) => n.every((x, j) => hay[i + j] === x));
    assert.ok(has(cms, signingTime) && !has(pades, signingTime), "CAdES carries signingTime, PAdES does not");
    await assert.rejects(signPrepared(key, chain, b64.decode(pdfVectors.cases[4].pdf)!, false), Failure, "a lying PDF is never signed");
    writeFileSync(join(dir, "ranges.bin"), ranges);
    writeFileSync(join(dir, `${alg}-pades.p7s`), pades);
    writeFileSync(join(dir, "doc.txt"), doc);
    writeFileSync(join(dir, `${alg}.p7s`), cms);
    if (alg !== "ed25519") {
      const out = execFileSync(
        "sh",
        ["-c", `openssl cms -verify -cades -binary -inform DER -in ${alg}.p7s -content doc.txt -CAfile ca.pem -purpose any -out /dev/null 2>&1`],
        { cwd: dir },
      ).toString();
      assert.match(out, /Verification successful/, out);
      const padesOut = execFileSync(
        "sh",
        ["-c", `openssl cms -verify -binary -inform DER -in ${alg}-pades.p7s -content ranges.bin -CAfile ca.pem -purpose any -out /dev/null 2>&1`],
        { cwd: dir },
      ).toString();
      assert.match(padesOut, /Verification successful/, padesOut);
      writeFileSync(join(dir, "other.txt"), "another document");
      assert.throws(() => execFileSync("openssl", ["cms", "-verify", "-binary", "-inform", "DER", "-in", `${alg}.p7s`, "-content", "other.txt", "-CAfile", "ca.pem", "-purpose", "any"], { cwd: dir, stdio: "pipe" }));
    } else {
      assert.match(ossl("cms", "-cmsout", "-print", "-inform", "DER", "-in", `${alg}.p7s`), /ED25519/i);
      // OpenSSL 3.0 cannot check Ed25519 CMS; GnuTLS can (Debian gnutls-bin).
      if (haveCerttool()) {
        const check = (content: string) =>
          execFileSync("sh", ["-c", `certtool --p7-verify --infile ${alg}.p7s --inder --load-data ${content} --load-ca-certificate ca.pem 2>&1; echo "exit=$?"`], { cwd: dir }).toString();
        const good = check("doc.txt");
        assert.match(good, /Signature status: ok/, good);
        assert.match(good, /exit=0/, good);
        writeFileSync(join(dir, "other.txt"), "another document");
        assert.doesNotMatch(check("other.txt"), /exit=0/);
      }
    }
    if (alg === "rsa-2048") {
      const pssCms = await signCmsDetached(key, chain, doc, true, new Date());
      writeFileSync(join(dir, "pss.p7s"), pssCms);
      const out = execFileSync("sh", ["-c", "openssl cms -verify -cades -binary -inform DER -in pss.p7s -content doc.txt -CAfile ca.pem -purpose any -out /dev/null 2>&1"], { cwd: dir }).toString();
      assert.match(out, /Verification successful/, out);
    }
    // No CA chain at all.
    await assert.rejects(checkEnrolledChain(chain.slice(0, 1), spki, now()), (e: unknown) => e instanceof Failure && e.code === "untrusted_certificate");
    key.wipe();
  }
});
