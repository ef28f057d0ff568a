// Builds the phone app into dist/ (committed, embedded in the relay binary and served at /app/).
// Deterministic: the same sources give the same bytes (CI rebuilds and compares with git diff).
//   node build.mjs          build
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";

import { build } from "esbuild";

const DIST = "dist";
rmSync(DIST, { recursive: true, force: true });
mkdirSync(DIST);

const common = {
  bundle: true,
  minify: true,
  target: "es2022",
  charset: "utf8",
  legalComments: "none",
  sourcemap: false,
  logLevel: "warning",
  jsx: "automatic",
  jsxImportSource: "preact",
};
// The scanner (and zxing's WebAssembly) load only when the person scans: a file of their own.
await build({ ...common, entryPoints: ["src/app/main.tsx"], outfile: `${DIST}/app.js`, format: "esm", external: ["./scanner.js", "./pfx.js", "./pdf-view.js"] });
await build({ ...common, entryPoints: ["src/app/scanner.ts"], outfile: `${DIST}/scanner.js`, format: "esm" });
await build({ ...common, entryPoints: ["src/app/pfx.ts"], outfile: `${DIST}/pfx.js`, format: "esm", external: ["./pfx-legacy.js"] });
await build({ ...common, entryPoints: ["src/protocol/pfx-legacy.ts"], outfile: `${DIST}/pfx-legacy.js`, format: "esm" });
copyFileSync("node_modules/zxing-wasm/dist/reader/zxing_reader.wasm", `${DIST}/zxing_reader.wasm`);
// pdf.js draws the pages of a PDF to sign: loaded only then, with its worker as published.
await build({ ...common, entryPoints: ["src/app/pdf-view.ts"], outfile: `${DIST}/pdf-view.js`, format: "esm" });
copyFileSync("node_modules/pdfjs-dist/build/pdf.worker.min.mjs", `${DIST}/pdf.worker.js`);
await build({ ...common, entryPoints: ["src/app/argon2-worker.ts"], outfile: `${DIST}/argon2-worker.js`, format: "esm" });
for (const f of readdirSync("static")) copyFileSync(`static/${f}`, `${DIST}/${f}`);

// kalit.js for portals (readable, one file, no build step on their side) and its direct mode, loaded only
// when no agent answers: both committed under web/ next to the demo portal.
const WEB_BANNER = "// Built from phone/src/web/%s by phone/build.mjs (npm run build); edit the TypeScript, not this file.";
await build({
  ...common,
  minify: false,
  entryPoints: ["src/web/kalit.ts"],
  outfile: "../web/kalit.js",
  format: "esm",
  external: ["./kalit-direct.js"],
  banner: { js: WEB_BANNER.replace("%s", "kalit.ts") },
});
await build({
  ...common,
  entryPoints: ["src/web/direct.ts"],
  outfile: "../web/kalit-direct.js",
  format: "esm",
  banner: { js: WEB_BANNER.replace("%s", "direct.ts") },
});

// The icons: a white key on the brand colour, drawn here so that no binary file needs a tool.
for (const size of [192, 512]) writeFileSync(`${DIST}/icon-${size}.png`, png(size, keyIcon(size)));

// The service worker caches exactly these files, under a name that changes with their contents.
const files = readdirSync(DIST).sort();
const hash = createHash("sha256");
for (const f of files) hash.update(f).update(readFileSync(`${DIST}/${f}`));
// Precached at install: the shell. The scanner and its WebAssembly are cached when first used.
const lazy = ["scanner.js", "zxing_reader.wasm", "pfx.js", "pfx-legacy.js", "pdf-view.js", "pdf.worker.js"];
const shell = ["./", ...files.filter((f) => f !== "index.html" && !lazy.includes(f))];
await build({
  ...common,
  entryPoints: ["src/app/sw.ts"],
  outfile: `${DIST}/sw.js`,
  format: "iife",
  define: {
    __KALIT_VERSION__: JSON.stringify(hash.digest("hex").slice(0, 16)),
    __KALIT_FILES__: JSON.stringify(shell),
    __KALIT_ALL__: JSON.stringify(["./", ...files.filter((f) => f !== "index.html")]),
  },
});
console.log(`built ${DIST}/: ${readdirSync(DIST).sort().join(", ")}`);

function keyIcon(s) {
  const px = new Uint8Array(s * s * 3);
  const bg = [0x0b, 0x5f, 0x5f];
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      const u = x / s;
      const v = y / s;
      const d = Math.hypot(u - 0.35, v - 0.5);
      const white =
        (d < 0.17 && d > 0.08) ||
        (u > 0.45 && u < 0.82 && v > 0.46 && v < 0.54) ||
        (u > 0.66 && u < 0.71 && v >= 0.54 && v < 0.64) ||
        (u > 0.75 && u < 0.8 && v >= 0.54 && v < 0.64);
      const c = white ? [255, 255, 255] : bg;
      px.set(c, (y * s + x) * 3);
    }
  }
  return px;
}

function png(size, rgb) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const raw = Buffer.alloc(size * (size * 3 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0; // filter: none
    Buffer.from(rgb.buffer, y * size * 3, size * 3).copy(raw, y * (size * 3 + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
