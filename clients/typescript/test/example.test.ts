// examples/node_client.mjs, run as its header says: against `nucleus serve` started with the flags
// the header prints, with the built package linked into a node_modules beside it (what
// `npm install --no-save ./clients/typescript` makes).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startServer } from "./support/server.js";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
const EXAMPLE = join(PACKAGE, "..", "..", "examples", "node_client.mjs");

test("examples/node_client.mjs runs against the server its header describes", async () => {
  const text = await readFile(EXAMPLE, "utf-8");
  const command = /^\/\/ {5}nucleus serve --dev (--plugin \S+ --admin \S+)$/m.exec(text);
  assert.ok(command !== null, "the header names the server command");
  const served = await startServer((command[1] as string).split(" "));
  const dir = await mkdtemp(join(tmpdir(), "nucleus-example-"));
  try {
    await mkdir(join(dir, "node_modules", "@nucleus-ledger"), { recursive: true });
    await symlink(PACKAGE, join(dir, "node_modules", "@nucleus-ledger", "client"), "dir");
    await copyFile(EXAMPLE, join(dir, "node_client.mjs"));
    for (let run = 0; run < 2; run++) {
      const { stdout } = await promisify(execFile)(process.execPath, [join(dir, "node_client.mjs"), served.url], { cwd: dir });
      const lines = stdout.trim().split("\n");
      assert.deepEqual(lines.map((line) => line.split(":")[0]), ["modules", "alice", "bob", "bob", "carol", "bob", "refused"]);
      assert.equal(lines[0], "modules: asset (assets_of, get, history, owner); token (balance, history, holders, token, transaction)");
      assert.equal(lines[1], 'alice: GLD supply 1000 of 10000, holders {"oid:acme:user:bob":700,"oid:acme:user:carol":300}');
      assert.match(lines[2] as string, /^bob: balance 700, 2 verified entries: \d+ minted by oid:acme:user:alice, \d+ transferred by oid:acme:user:bob$/);
      assert.match(lines[3] as string, /^bob: transaction applied at seq \d+$/);
      assert.equal(lines[4], "carol: token null, balance 0, history 0");
      assert.equal(lines[5], "bob: owner of car oid:acme:user:bob, carol: null");
      assert.equal(lines[6], "refused: module 'proof': is not enabled on this ledger (known modules: asset, token)");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await served.stop();
  }
});
