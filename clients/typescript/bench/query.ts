// A query page of 50: this TypeScript client vs the Python RemoteLedger, plain and verifying,
// against one `nucleus serve --dev` (SQLite) on loopback, requests interleaved in rounds.
//
//     npm run bench -- [--entries 5000] [--requests 100] [--rounds 5]
//
// $NUCLEUS_PYTHON (default python3) runs the server and bench/python_client.py. Two page kinds,
// as bench/bench_client.py: `all` (50 consecutive entries, `limit` + `cursor`) and `stream` (50
// entries 10 seqs apart, `stream` + `limit` + `cursor`). Every request of a round uses the same
// random pages; within a round the four clients run in an order that rotates from round to round.
// Printed: p50 and mean per client and kind, and the ratios TypeScript / Python.
import { createClient, type LedgerRecord, type NucleusClient, type QueryFilters } from "../src/index.js";
import { nodeHttpFetch } from "../src/node-http.js";
import { startServer } from "../test/support/server.js";
import { mean, option, percentile, pythonWorker } from "./support.js";

const TOKEN = "dev:oid:bench:user:ts";
const PAGE = 50;
const STREAMS = 10;

const entries = option("entries", 5000);
const requests = option("requests", 100);
const rounds = option("rounds", 5);

// A deterministic generator (the pages must be the same for both languages in a round).
let seed = 16;
const random = (): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};

function pages(kind: "all" | "stream", count: number): QueryFilters[] {
  return Array.from({ length: count }, () => {
    if (kind === "all") return { limit: PAGE, cursor: `s${Math.floor(random() * (entries - PAGE))}` };
    const perStream = entries / STREAMS;
    return { stream: "stream-3", limit: PAGE, cursor: `s${Math.floor(random() * (perStream - PAGE - 1)) * STREAMS}` };
  });
}

function pythonFilters(filters: QueryFilters): Record<string, unknown> {
  return { ...filters };
}

async function main(): Promise<void> {
  const served = await startServer();
  const worker = pythonWorker("python_client.py");
  const ask = worker.ask;
  try {
    const writer = createClient({ url: served.url, token: TOKEN });
    for (let start = 0; start < entries; start += 500) {
      const batch: LedgerRecord[] = [];
      for (let i = start; i < Math.min(entries, start + 500); i++) {
        batch.push({
          id: `rec-${i}`, stream: `stream-${i % STREAMS}`, timestamp: 1_700_000_000_000 + i,
          payload: { n: i, amount: i * 1.25, text: `entry number ${i} of the benchmark ledger`, tags: ["a", "b", "c"] },
        });
      }
      await writer.appendBatch(batch);
    }
    await ask({ url: served.url, token: TOKEN, vkey: served.vkey });
    const ts: Record<string, NucleusClient> = {
      plain: createClient({ url: served.url, token: TOKEN }),
      verifying: createClient({ url: served.url, token: TOKEN, verifierKeys: [served.vkey] }),
      "plain node-http": createClient({ url: served.url, token: TOKEN, fetch: nodeHttpFetch() }),
      "verifying node-http": createClient({ url: served.url, token: TOKEN, verifierKeys: [served.vkey], fetch: nodeHttpFetch() }),
    };
    // The verifying clients' trusted checkpoint must cover the whole ledger before timing.
    for (;;) {
      const checkpoint = await ts["verifying"]!.refresh();
      if (checkpoint.size >= entries) {
        await ts["verifying node-http"]!.refresh();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const times: Record<string, number[]> = {};
    const runners: [string, (f: QueryFilters[]) => Promise<number[]>][] = [];
    for (const client of ["plain", "verifying", "plain node-http", "verifying node-http"]) {
      runners.push([`ts ${client}`, async (filters) => {
        const out: number[] = [];
        for (const f of filters) {
          const start = performance.now();
          const page = await ts[client]!.queryPage(f);
          out.push(performance.now() - start);
          if (page.entries.length !== PAGE) throw new Error(`short page ${JSON.stringify(f)}`);
        }
        return out;
      }]);
      if (!client.includes(" ")) {
        runners.push([`py ${client}`, async (filters) => ask({ client, filters: filters.map(pythonFilters) }) as Promise<number[]>]);
      }
    }
    for (const kind of ["all", "stream"] as const) {
      const warm = pages(kind, 20);
      for (const [, run] of runners) await run(warm);
    }
    for (let round = 0; round < rounds; round++) {
      for (const kind of ["all", "stream"] as const) {
        const filters = pages(kind, requests);
        for (let i = 0; i < runners.length; i++) {
          const [name, run] = runners[(i + round) % runners.length]!;
          (times[`${kind} ${name}`] ??= []).push(...(await run(filters)));
        }
      }
    }
    console.log(`entries ${entries}, ${requests} requests x ${rounds} rounds per client and kind`);
    console.log("kind    client                   p50 ms   mean ms");
    for (const [key, xs] of Object.entries(times)) {
      console.log(`${key.padEnd(32)} ${percentile(xs, 50).toFixed(3).padStart(8)} ${mean(xs).toFixed(3).padStart(9)}`);
    }
    for (const kind of ["all", "stream"]) {
      for (const client of ["plain", "verifying", "plain node-http", "verifying node-http"]) {
        const t = times[`${kind} ts ${client}`]!;
        const p = times[`${kind} py ${client.split(" ")[0] as string}`]!;
        console.log(
          `${kind} ${client}: TypeScript / Python p50 ${(percentile(t, 50) / percentile(p, 50)).toFixed(3)}, ` +
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
