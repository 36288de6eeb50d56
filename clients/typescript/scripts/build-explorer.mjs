// Builds the ledger explorer (explorer/) into the server distribution's package data,
// plugins/server/src/nucleus_server/explorer/: index.html and style.css as they are, and
// explorer.ts with this client bundled into one ES module, app.js (esbuild: the browser loads one
// file, the client's noble dependencies included, with nothing to install).
//   node scripts/build-explorer.mjs           write the files (npm run build:explorer)
//   node scripts/build-explorer.mjs --check   fail when the committed files differ from a fresh build
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(pkg, "..", "..", "plugins", "server", "src", "nucleus_server", "explorer");

/** The explorer's files, name -> bytes, as a fresh build makes them. */
export async function buildExplorer() {
  const result = await build({
    absWorkingDir: pkg,
    entryPoints: ["explorer/explorer.ts"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "inline",
    write: false,
    logLevel: "warning",
    banner: { js: "// Built by `npm run build:explorer` in clients/typescript from explorer/explorer.ts: do not edit." },
  });
  const [script] = result.outputFiles;
  return {
    "index.html": await readFile(join(pkg, "explorer", "index.html")),
    "style.css": await readFile(join(pkg, "explorer", "style.css")),
    "app.js": Buffer.from(script.contents),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await buildExplorer();
  if (process.argv.includes("--check")) {
    const stale = [];
    for (const [name, bytes] of Object.entries(files)) {
      let committed = null;
      try {
        committed = await readFile(join(out, name));
      } catch {
        // missing: stale
      }
      if (committed === null || !committed.equals(bytes)) stale.push(name);
    }
    if (stale.length) {
      console.error(`the explorer's built files differ from a fresh build: ${stale.join(", ")} (run npm run build:explorer)`);
      process.exit(1);
    }
    console.log("the explorer's built files are a fresh build of explorer/");
  } else {
    await mkdir(out, { recursive: true });
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(out, name), bytes);
    console.log(`wrote ${Object.keys(files).join(", ")} to ${out}`);
  }
}
