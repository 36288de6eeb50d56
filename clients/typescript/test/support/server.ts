// A real `nucleus serve --dev` on a free loopback port with a temporary SQLite database, and a
// tampering HTTP proxy in front of it. Python interpreter: $NUCLEUS_PYTHON (default python3).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { ed25519 } from "@noble/curves/ed25519.js";

import { base64DecodeStrict, base64Encode, concatBytes, utf8 } from "../../src/bytes.js";
import { canonicalBytes } from "../../src/canonical.js";
import { entryHash, type Entry, type LedgerRecord } from "../../src/entry.js";
import { keyId } from "../../src/note.js";

export interface Served {
  url: string;
  dir: string;
  /** The server's checkpoint verifier key (what an operator hands its clients). */
  vkey: string;
  /** Sign `text` as the server's checkpoint key does: the signature line, newline included. */
  signLine(text: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ServerOptions {
  /** Make the test fixture plugins of test/fixtures/python (`ts_notes`, `ts_fake_token`) importable. */
  fixturePlugins?: boolean;
}

const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/python", import.meta.url));

/** A dist-info in `dir` declaring the fixture plugins' entry points (importlib.metadata finds it on the path). */
async function writeFixtureDistribution(dir: string): Promise<void> {
  const info = join(dir, "nucleus_ts_fixtures-0.1.0.dist-info");
  await mkdir(info);
  await writeFile(join(info, "METADATA"), "Metadata-Version: 2.1\nName: nucleus-ts-fixtures\nVersion: 0.1.0\n");
  await writeFile(
    join(info, "entry_points.txt"),
    "[nucleus]\nts_notes = nucleus_ts_fixtures.notes\nts_fake_token = nucleus_ts_fixtures.fake_token\n",
  );
}

/** Start the server; `args` are more `nucleus serve` flags (e.g. `["--plugin", "ual"]`). */
export async function startServer(args: readonly string[] = [], options: ServerOptions = {}): Promise<Served> {
  const dir = await mkdtemp(join(tmpdir(), "nucleus-ts-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NUCLEUS_")));
  if (options.fixturePlugins) {
    const site = join(dir, "site");
    await mkdir(site);
    await writeFixtureDistribution(site);
    env["PYTHONPATH"] = [FIXTURES, site, env["PYTHONPATH"]].filter(Boolean).join(delimiter);
  }
  const python = process.env["NUCLEUS_PYTHON"] || "python3";
  const child: ChildProcess = spawn(
    python, ["-m", "nucleus_core", "serve", "--dev", "--port", String(port), "--log-level", "warning", ...args],
    { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf-8");
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!running) throw new Error(`the server exited: ${stderr}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the server did not become ready: ${stderr}`);
    }
    await sleep(50);
  }
  const vkey = (await (await fetch(`${url}/checkpoint/key`)).text()).trim();
  // PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || seed)>, made by --dev beside the database.
  const skey = (await readFile(join(dir, "nucleus.db.checkpoint.key"), "utf-8")).trim();
  const parts = skey.split("+");
  const name = parts[2] as string;
  const seed = (base64DecodeStrict(parts.slice(4).join("+")) as Uint8Array).slice(1);
  const id = new Uint8Array(4);
  new DataView(id.buffer).setUint32(0, parseInt(parts[3] as string, 16));
  return {
    url, dir, vkey,
    signLine(text: string): string {
      const signature = ed25519.sign(utf8(text), seed);
      return `\u2014 ${name} ${base64Encode(concatBytes([id, signature]))}\n`;
    },
    async stop(): Promise<void> {
      if (running) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  contentType: string;
  body: string;
}

/** Rewrites an answer of the server (method, path with query) or returns it unchanged. */
export type Rewrite = (method: string, path: string, answer: Answer) => Answer;

export interface Proxy {
  url: string;
  /** The rewrite applied to every answer (null: none). */
  rewrite: Rewrite | null;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A proxy on a free loopback port forwarding to `upstream`, answers rewritten by `proxy.rewrite`. */
export async function startProxy(upstream: string): Promise<Proxy> {
  const proxy: Proxy = { url: "", rewrite: null, close: async () => undefined };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const body = await readBody(req);
      const headers: Record<string, string> = {};
      for (const name of ["authorization", "content-type", "accept"]) {
        const value = req.headers[name];
        if (typeof value === "string") headers[name] = value;
      }
      const method = req.method ?? "GET";
      const path = req.url ?? "/";
      const init: RequestInit = { method, headers };
      if (body.length) init.body = new Uint8Array(body);
      const upstreamAnswer = await fetch(`${upstream}${path}`, init);
      let answer: Answer = {
        status: upstreamAnswer.status,
        contentType: upstreamAnswer.headers.get("content-type") ?? "application/json",
        body: await upstreamAnswer.text(),
      };
      if (proxy.rewrite !== null) answer = proxy.rewrite(method, path, answer);
      res.writeHead(answer.status, { "content-type": answer.contentType });
      res.end(answer.body);
    })().catch((err: unknown) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return proxy;
}

export interface Witness {
  vkey: string;
  /** The witness's cosignature line of the checkpoint text `text` at `timestamp` (POSIX seconds). */
  cosignLine(text: string, timestamp: number): string;
}

/** A witness key made for the test (c2sp.org/tlog-cosignature, Ed25519, type 0x04). */
export function makeWitness(name: string): Witness {
  const seed = ed25519.utils.randomPrivateKey();
  const material = concatBytes([new Uint8Array([0x04]), ed25519.getPublicKey(seed)]);
  const id = keyId(name, material);
  const idBytes = new Uint8Array(4);
  new DataView(idBytes.buffer).setUint32(0, id);
  return {
    vkey: `${name}+${id.toString(16).padStart(8, "0")}+${base64Encode(material)}`,
    cosignLine(text: string, timestamp: number): string {
      const time = new Uint8Array(8);
      new DataView(time.buffer).setBigUint64(0, BigInt(timestamp));
      const signature = ed25519.sign(utf8(`cosignature/v1\ntime ${timestamp}\n${text}`), seed);
      return `\u2014 ${name} ${base64Encode(concatBytes([idBytes, time, signature]))}\n`;
    },
  };
}

/**
 * Change `entry`'s stored record to one with `payload` in the server's SQLite database, behind
 * its back; with `rehash` its stored hash is recomputed too (the chain's next prev_hash is not).
 */
export async function tamperEntry(
  served: Served, entry: Entry, payload: LedgerRecord["payload"], rehash: boolean, ledgerId = "default",
): Promise<void> {
  const changed = { ...entry.record, payload };
  const canonical = new TextDecoder().decode(canonicalBytes(changed));
  const hash = rehash
    ? entryHash(ledgerId, entry.seq, entry.prevHash, canonicalBytes(changed), 2, entry.appender, entry.authSource, entry.committedAt)
    : entry.hash;
  const script = [
    "import sqlite3, sys",
    "db = sqlite3.connect(sys.argv[1], timeout=30)",
    "db.execute('UPDATE nucleus_entries SET canonical = ?, hash = ? WHERE seq = ?', (sys.argv[2].encode(), sys.argv[3], int(sys.argv[4])))",
    "db.commit()",
  ].join("\n");
  const python = process.env["NUCLEUS_PYTHON"] || "python3";
  await promisify(execFile)(python, ["-c", script, join(served.dir, "nucleus.db"), canonical, hash, String(entry.seq)]);
}
