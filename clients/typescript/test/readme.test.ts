// The README's quickstart, run as printed (its URL pointed at a test server) from inside the package.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { startServer, type Served } from "./support/server.js";

let served: Served;

before(async () => {
  served = await startServer();
});

after(async () => {
  await served?.stop();
});

test("the README quickstart runs as printed", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf-8");
  const block = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block !== undefined && block.includes('"http://127.0.0.1:8080"'));
  const script = new URL("../quickstart-readme.mjs", import.meta.url);
  await writeFile(script, block.replace('"http://127.0.0.1:8080"', JSON.stringify(served.url)));
  try {
    for (const run of [1, 2]) {
      const { stdout } = await promisify(execFile)(process.execPath, [script.pathname]);
      assert.match(stdout, new RegExp(`^${run} [0-9a-f]{64} verified in the tree of ${run} true$`, "m"));
    }
  } finally {
    await rm(script, { force: true });
  }
});
