// The README's examples, run as printed (their URL pointed at a test server) from inside the package.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { test } from "node:test";
import { promisify } from "node:util";

import { startServer } from "./support/server.js";

const URL_PRINTED = '"http://127.0.0.1:8080"';

/** The README's ```js blocks, in order. */
async function blocks(): Promise<string[]> {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf-8");
  return [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] as string);
}

/** Run `block` `runs` times against a server started with `args` (the flags its text names); the outputs. */
async function runBlock(block: string, name: string, args: string[], runs: number): Promise<string[]> {
  assert.ok(block.includes(URL_PRINTED));
  const served = await startServer(args);
  const script = new URL(`../${name}`, import.meta.url);
  await writeFile(script, block.replace(URL_PRINTED, JSON.stringify(served.url)));
  try {
    const out: string[] = [];
    for (let run = 0; run < runs; run++) out.push((await promisify(execFile)(process.execPath, [script.pathname])).stdout);
    return out;
  } finally {
    await rm(script, { force: true });
    await served.stop();
  }
}

test("the README quickstart runs as printed", async () => {
  const [quickstart] = await blocks();
  const outputs = await runBlock(quickstart as string, "quickstart-readme.mjs", [], 2);
  outputs.forEach((stdout, i) => {
    assert.match(stdout, new RegExp(`^${i + 1} [0-9a-f]{64} verified in the tree of ${i + 1} true$`, "m"));
  });
});

test("the README module-handles example runs as printed against `nucleus serve --dev --plugin token`", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf-8");
  assert.ok(readme.includes("nucleus serve --dev --plugin token\n"));
  const [, handles] = await blocks();
  const outputs = await runBlock(handles as string, "handles-readme.mjs", ["--plugin", "token"], 2);
  for (const stdout of outputs) {
    const lines = stdout.trim().split("\n");
    assert.equal(lines[0], "token balance history holders token transaction");
    assert.equal(lines[1], "GLD 500 500");
    assert.match(lines[2] as string, /^verified entry \d+ gold-\d+-minted$/);
    assert.equal(lines.length, 3);
  }
});
