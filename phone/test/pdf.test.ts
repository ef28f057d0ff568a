// The signer's check of a prepared PDF, held to the vectors the Rust check writes
// (crates/kalit-core/vectors/pdf-v1.json), and hostile input: an error, never a hang or a crash.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { b64, toHex } from "../src/protocol/bytes.js";
import { Failure } from "../src/protocol/errors.js";
import { inspectPrepared } from "../src/protocol/pdf.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const v: Json = JSON.parse(readFileSync(new URL("../../../crates/kalit-core/vectors/pdf-v1.json", import.meta.url), "utf8"));
const pdfOf = (c: Json): Uint8Array => b64.decode(c.pdf)!;

test("pdf-v1: every prepared PDF is found as the Rust check finds it, or refused", async () => {
  assert.ok(v.cases.length >= 10);
  for (const c of v.cases) {
    const found = await inspectPrepared(pdfOf(c)).then(
      (s) => ({ field: s.field, field_page: s.fieldPage, pages: s.pages, title: s.title, earlier_signatures: s.earlierSignatures, sha256: toHex(s.sha256), byte_range: s.byteRange }),
      (e: unknown) => {
        assert.ok(e instanceof Failure, `${c.name}: ${String(e)}`);
        return "refused";
      },
    );
    assert.deepEqual(found, c.expect, c.name);
  }
});

test("a refusal says why, in words", async () => {
  const why = async (name: string) => {
    const c = v.cases.find((x: Json) => x.name === name);
    assert.ok(c, name);
    return inspectPrepared(pdfOf(c)).then(() => "accepted", (e: Failure) => e.message);
  };
  assert.match(await why("the new revision rewrites the page"), /changed beyond adding a signature field: a page's \/Contents changed/);
  assert.match(await why("the new revision lays a note over the page"), /not a signature was added to a page/);
  assert.match(await why("the new revision changes the title"), /object \d+ changed/);
  assert.match(await why("the new revision takes the page's content away"), /\/Contents was removed/);
  assert.match(await why("bytes after the byte range"), /does not cover the whole PDF/);
  assert.match(await why("a signature that is not PAdES"), /not a PAdES signature/);
});

test("truncated, flipped and hostile PDFs are errors, never a hang or a crash", async () => {
  const good = pdfOf(v.cases[1]);
  for (let cut = 0; cut < good.length; cut += 37) {
    await inspectPrepared(good.subarray(0, cut)).then(() => assert.fail(`a PDF cut at ${cut} was accepted`), (e: unknown) => assert.ok(e instanceof Failure, String(e)));
  }
  for (let at = 0; at < good.length; at += 11) {
    const m = good.slice();
    m[at] = m[at]! ^ 0x20;
    await inspectPrepared(m).catch((e: unknown) => assert.ok(e instanceof Failure, `byte ${at}: ${String(e)}`));
  }
  const enc = new TextEncoder();
  const hostile = [
    `%PDF-1.7\n1 0 obj\n${"[".repeat(100_000)}\nendobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer\n<</Root 1 0 R>>\nstartxref\n${100_030}\n%%EOF\n`,
    "%PDF-1.7\nxref\n0 1\n0000000000 65535 f \ntrailer\n<</Prev 9/Root 1 0 R>>\nstartxref\n9\n%%EOF\n",
    "%PDF-1.7\n1 0 obj\n<</Type/XRef/W[1 2 1]/Size 1/Filter/FlateDecode/Length 3>>stream\nabc\nendstream\nendobj\nstartxref\n9\n%%EOF\n",
    "%PDF-1.7\n1 0 obj\n<</Type/XRef/W[9 9 9]/Size 1/Length 0>>stream\n\nendstream\nendobj\nstartxref\n9\n%%EOF\n",
  ];
  for (const h of hostile) {
    await inspectPrepared(enc.encode(h)).then(() => assert.fail("accepted"), (e: unknown) => assert.ok(e instanceof Failure, String(e)));
  }
});
