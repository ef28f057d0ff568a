// The app's words: every language fills the same parameters, and Uzbek is written in its own alphabet.

import assert from "node:assert/strict";
import { test } from "node:test";

import { DICTS, LANGS, formatLabel, formatNumber, formatSize, t } from "../src/app/i18n.js";

type Entry = string | Record<string, string | undefined>;

function forms(v: Entry): string[] {
  return typeof v === "string" ? [v] : Object.values(v).filter((x): x is string => x !== undefined);
}

function params(s: string): Set<string> {
  return new Set([...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1] ?? ""));
}

test("every translation fills exactly the parameters the English one does", () => {
  const en = DICTS.en as Record<string, Entry>;
  for (const lang of LANGS) {
    const dict = DICTS[lang] as Record<string, Entry>;
    for (const [key, enValue] of Object.entries(en)) {
      const want = new Set(forms(enValue).flatMap((s) => [...params(s)]));
      const value = dict[key];
      assert.ok(value !== undefined, `${lang}.${key} is missing`);
      for (const s of forms(value)) {
        const got = params(s);
        // A plural form may leave the count out ("один ключ"); nothing else may be left out or added.
        for (const p of want) assert.ok(got.has(p) || (p === "n" && typeof value !== "string"), `${lang}.${key} lacks {${p}}: ${s}`);
        for (const p of got) assert.ok(want.has(p), `${lang}.${key} has {${p}}, which nothing fills: ${s}`);
      }
    }
  }
});

test("Uzbek is written with its own apostrophes: oʻ and gʻ with U+02BB, the tutuq belgisi with U+02BC", () => {
  // A typewriter apostrophe, a quotation mark or a backtick between letters is a misspelling that screen
  // readers and search read as punctuation (and a font may draw as a closing quote).
  const wrong = /\p{L}['\u2018\u2019`\u00b4]\p{L}?/u;
  const checked: string[] = [];
  for (const [key, v] of Object.entries(DICTS.uz as Record<string, Entry>)) {
    for (const s of forms(v)) {
      assert.doesNotMatch(s, wrong, `uz.${key}: ${s}`);
      checked.push(s);
    }
  }
  // The rule is not vacuous: the letters it protects are used, and written as they should be.
  assert.ok(checked.some((s) => s.includes("o\u02bb")), "some Uzbek string has oʻ");
  assert.ok(checked.some((s) => s.includes("\u02bc")), "some Uzbek string has the tutuq belgisi");
});

test("parameters are filled as text in the person's number format", () => {
  assert.equal(formatNumber("uz", 1234567), "1\u00a0234\u00a0567");
  assert.equal(formatNumber("en", 1234567), "1,234,567");
  for (const lang of LANGS) {
    const s = t(lang, "pfxReady", { file: "<b>x</b>.p12" });
    assert.ok(s.includes("<b>x</b>.p12"), `${lang}: the file name is kept as it is (the screen draws it as text)`);
  }
});

test("sizes are shown as people read them, never larger than they are", () => {
  assert.equal(formatSize("en", 0), "0 bytes");
  assert.equal(formatSize("en", 1), "1 byte");
  assert.equal(formatSize("uz", 1023), "1\u00a0023 bayt");
  assert.equal(formatSize("ru", 1023), "1\u00a0023 байта");
  assert.equal(formatSize("en", 1024), "1.0 KB");
  assert.equal(formatSize("uz", 10 * 1024 - 1), "9,9 KB", "rounded down");
  assert.equal(formatSize("ru", 1536), "1,5 КБ");
  assert.equal(formatSize("en", 1024 * 1024 - 1), "1,023 KB");
  assert.equal(formatSize("en", 1024 * 1024), "1.0 MB");
  assert.equal(formatSize("uz", 111_411_200), "106 MB");
  assert.equal(formatSize("ru", 5 * 1024 * 1024 + 1), "5,0 МБ");
  assert.equal(formatSize("en", 2 ** 40), "1,048,576 MB");
});

test("a certificate's end is announced 30 days ahead, and an ended one says it cannot sign", async () => {
  const { certTime, CERT_WARNING_DAYS } = await import("../src/app/services.js");
  const day = 86_400_000;
  const end = Date.UTC(2027, 0, 31, 12);
  assert.equal(CERT_WARNING_DAYS, 30);
  assert.deepEqual(certTime(end, end - 31 * day), { state: "ok" });
  assert.deepEqual(certTime(end, end - 30 * day), { state: "ok" });
  assert.deepEqual(certTime(end, end - 30 * day + 1), { state: "ending", days: 29 });
  assert.deepEqual(certTime(end, end - day), { state: "ending", days: 1 });
  assert.deepEqual(certTime(end, end - 1), { state: "ending", days: 0 });
  assert.deepEqual(certTime(end, end), { state: "ending", days: 0 }, "valid through its notAfter second (RFC 5280)");
  assert.deepEqual(certTime(end, end + 1), { state: "ended" });
  assert.equal(t("ru", "certEnding", { n: 5, date: "x" }), "Срок действия истекает через 5 дней (x): получите новый сертификат в RA заранее.");
  assert.equal(t("ru", "certEnding", { n: 2, date: "x" }), "Срок действия истекает через 2 дня (x): получите новый сертификат в RA заранее.");
  assert.equal(t("en", "certEnding", { n: 1, date: "x" }), "It ends in 1 day (x): get a new certificate from your RA before then.");
});

test("signature formats are said in words in every language, and an unknown one is shown as it came", () => {
  assert.equal(formatLabel("en", "raw"), "plain signature");
  assert.equal(formatLabel("en", "cms"), "CMS signature (.p7s)");
  assert.equal(formatLabel("en", "pades"), "signature inside the PDF");
  assert.equal(formatLabel("en", "cms-digest"), "CMS signature (.p7s), by the computer's digest");
  assert.equal(formatLabel("uz", "raw-digest"), "oddiy imzo, kompyuter bergan xesh boʻyicha");
  assert.equal(formatLabel("ru", "pades"), "подпись внутри PDF");
  for (const lang of LANGS) {
    for (const f of ["raw", "cms", "pades", "raw-digest", "cms-digest"]) {
      assert.ok(!/^(raw|cms|pades)(-digest)?$/.test(formatLabel(lang, f)), `${lang}: ${f} is not translated`);
    }
    // From a stored history or a newer phone: not a label of ours, so not dressed as one.
    assert.equal(formatLabel(lang, "a-future-format"), "a-future-format");
    assert.equal(formatLabel(lang, "toString"), "toString");
    assert.equal(formatLabel(lang, "-digest"), "-digest");
    assert.equal(formatLabel(lang, "constructor-digest"), "constructor-digest");
  }
});
