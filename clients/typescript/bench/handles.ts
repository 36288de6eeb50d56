// A module handle call: this TypeScript client's `runtime.getModule("token")` vs the Python
// RemoteLedger's `modules.get("token", TokenModule)`, plain and verifying, against one
// `nucleus serve --dev --plugin token` (SQLite) on loopback, calls interleaved in rounds.
//
//     npm run bench:handles -- [--entries 50] [--requests 200] [--rounds 3]
//
// $NUCLEUS_PYTHON (default python3) runs the server and bench/python_handles.py. Two calls:
// `balance` (a derived integer: one GET, no entry) and `history` (the token's `--entries` entries,
// each rebuilt and its hash recomputed; verifying, proven by one POST /proof/inclusion). Within a
// round the clients run in an order that rotates from round to round. Printed: p50 and mean per
// client and call, and the ratios TypeScript / Python.
import { createClient, type LedgerRecord, type TokenHandle } from "../src/index.js";
import { nodeHttpFetch } from "../src/node-http.js";
import { startServer } from "../test/support/server.js";
import { mean, option, percentile, pythonWorker } from "./support.js";

const ISSUER = "oid:bench:user:issuer";
const TOKEN = `dev:${ISSUER}`;
const HOLDER = "oid:bench:user:holder-0";

const entries = option("entries", 50);
const requests = option("requests", 200);
const rounds = option("rounds", 3);

type Op = "balance" | "history";
const ARGS: Record<Op, string[]> = { balance: ["gold", HOLDER], history: ["gold"] };

async function main(): Promise<void> {
  const served = await startServer(["--plugin", "token"]);
  const worker = pythonWorker("python_handles.py");
  const ask = worker.ask;
  try {
    // The token "gold": created, then minted entries - 1 times to 10 holders.
    const writer = createClient({ url: served.url, token: TOKEN });
    const records: LedgerRecord[] = [{
      id: "gold", stream: "token", timestamp: 1_700_000_000_000,
      payload: { type: "created", token_id: "gold", issuer: ISSUER, symbol: "GLD", decimals: 2 },
    }];
    for (let i = 1; i < entries; i++) {
      records.push({
        id: `mint-${i}`, stream: "token", timestamp: 1_700_000_000_000 + i,
        payload: { type: "minted", token_id: "gold", tx_id: `tx-${i}`, to: `oid:bench:user:holder-${i % 10}`, amount: i },
      });
    }
    await writer.appendBatch(records);
    await ask({ url: served.url, token: TOKEN, vkey: served.vkey });
    const ts: Record<string, TokenHandle> = {};
    const verifying = ["verifying", "verifying node-http"];
    for (const name of ["plain", "verifying", "plain node-http", "verifying node-http"]) {
      const client = createClient({
        url: served.url, token: TOKEN, ...(name.startsWith("verifying") ? { verifierKeys: [served.vkey] } : {}),
        ...(name.endsWith("node-http") ? { fetch: nodeHttpFetch() } : {}),
      });
      ts[name] = await client.runtime.getModule("token");
      // A verifying client's trusted checkpoint must cover the token's entries before timing.
      if (verifying.includes(name)) {
        for (;;) {
          if ((await client.refresh()).size >= entries) break;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    }
    const runners: [string, (op: Op, count: number) => Promise<number[]>][] = [];
    for (const name of Object.keys(ts)) {
      runners.push([`ts ${name}`, async (op, count) => {
        const out: number[] = [];
        const handle = ts[name] as TokenHandle;
        for (let i = 0; i < count; i++) {
          const start = performance.now();
          const result = op === "balance" ? await handle.balance("gold", HOLDER) : await handle.history("gold");
          out.push(performance.now() - start);
          if (op === "history" && (result as unknown[]).length !== entries) throw new Error("short history");
        }
        return out;
      }]);
      if (!name.includes(" ")) {
        runners.push([`py ${name}`, async (op, count) =>
          ask({ client: name, op, args: ARGS[op], count, expect: entries }) as Promise<number[]>]);
      }
    }
    const times: Record<string, number[]> = {};
    for (const op of ["balance", "history"] as const) {
      for (const [, run] of runners) await run(op, 20); // warm-up
    }
    for (let round = 0; round < rounds; round++) {
      for (const op of ["balance", "history"] as const) {
        for (let i = 0; i < runners.length; i++) {
          const [name, run] = runners[(i + round) % runners.length]!;
          (times[`${op} ${name}`] ??= []).push(...(await run(op, requests)));
        }
      }
    }
    console.log(`history of ${entries} entries, ${requests} calls x ${rounds} rounds per client and call`);
    console.log("call     client                   p50 ms   mean ms");
    for (const [key, xs] of Object.entries(times)) {
      console.log(`${key.padEnd(32)} ${percentile(xs, 50).toFixed(3).padStart(8)} ${mean(xs).toFixed(3).padStart(9)}`);
    }
    for (const op of ["balance", "history"]) {
      for (const client of Object.keys(ts)) {
        const t = times[`${op} ts ${client}`]!;
        const p = times[`${op} py ${client.split(" ")[0] as string}`]!;
        console.log(
          `${op} ${client}: TypeScript / Python p50 ${(percentile(t, 50) / percentile(p, 50)).toFixed(3)}, ` +
          `mean ${(mean(t) / mean(p)).toFixed(3)}`,
        );
      }
    }
  } finally {
    worker.stop();
    await served.stop();
  }
}

await main();
