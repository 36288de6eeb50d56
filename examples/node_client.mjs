// The TypeScript client (@nucleus-ledger/client) from Node.js: records appended by three
// principals under the UAL, then read back through the token and asset modules' handles, each
// principal seeing what it may read, every entry verified.
//
// A development server with access control and two modules (another terminal; one worker process:
// with several, a worker handling a grant can fall behind the modules' state, a known bug):
//
//     nucleus serve --dev --plugin ual,asset,token --admin oid:acme:user:root
//
// The client built and linked into ./node_modules, then this script (from the repository root):
//
//     (cd clients/typescript && npm ci && npm run build)
//     npm install --no-save ./clients/typescript
//     node examples/node_client.mjs http://127.0.0.1:8080
//
// clients/typescript/test/example.test.ts runs it so against a test server.
import { createClient, ModuleError } from "@nucleus-ledger/client";

const url = process.argv[2] ?? "http://127.0.0.1:8080";
const ROOT = "oid:acme:user:root"; // the server's --admin
const ALICE = "oid:acme:user:alice";
const BOB = "oid:acme:user:bob";
const CAROL = "oid:acme:user:carol";

// Development only: a real deployment hands its clients the verifier key out of band.
const vkey = (await (await fetch(`${url}/checkpoint/key`)).text()).trim();
const as = (oid) => createClient({ url, token: `dev:${oid}`, verifierKeys: [vkey] });
const [alice, bob, carol] = [as(ALICE), as(BOB), as(CAROL)];

// The TypeScript client has no access-control API: grants are one POST (docs/SERVER.md).
async function grant(by, grants) {
  const response = await fetch(`${url}/acl/grant`, {
    method: "POST",
    headers: { authorization: `Bearer dev:${by}`, "content-type": "application/json" },
    body: JSON.stringify({ grants }),
  });
  if (response.status !== 201) throw new Error(`grant refused: ${await response.text()}`);
}

const run = Date.now().toString(36); // fresh ids on every run
const gold = `gold-${run}`;
const car = `car-${run}`;
const at = 1_763_942_400_000;
const record = (id, stream, payload) => ({ id: `${id}-${run}`, stream, timestamp: at, payload });

await grant(ROOT, ["token", "asset"].map((kind) => ({ resource_kind: kind, resource_id: "*", principal_oid: ALICE, scope: "create" })));
await alice.appendBatch([
  record("created", "token", { type: "created", token_id: gold, issuer: ALICE, symbol: "GLD", decimals: 2, cap: 10_000 }),
  record("minted", "token", { type: "minted", token_id: gold, tx_id: `mint-${run}`, to: BOB, amount: 1000 }),
  record("issued", "asset", { type: "issued", asset_id: car, issuer: ALICE, owner: BOB, asset_type: "car" }),
]);
await grant(ALICE, [{ resource_kind: "token", resource_id: gold, principal_oid: BOB, scope: "write" }]); // Bob may spend
await bob.append(record("paid", "token", { type: "transferred", token_id: gold, tx_id: `pay-${run}`, from: BOB, to: CAROL, amount: 300 }));

const modules = await alice.runtime.listModules();
console.log("modules:", modules.map((m) => `${m.id} (${m.operations.map((o) => o.name).join(", ")})`).join("; "));

const tokens = await alice.runtime.getModule("token");
const info = await tokens.token(gold);
console.log(`alice: ${info.symbol} supply ${info.supply} of ${info.cap}, holders ${JSON.stringify(await tokens.holders(gold))}`);

const bobTokens = await bob.runtime.getModule("token");
const history = await bobTokens.history(gold, { holder: BOB });
console.log(`bob: balance ${await bobTokens.balance(gold, BOB)}, ${history.length} verified entries:`,
  history.map((e) => `${e.seq} ${e.record.payload.type} by ${e.appender}`).join(", "));
const paid = await bobTokens.transaction(`pay-${run}`); // a retry after an unknown outcome looks it up
console.log("bob: transaction", paid.record.id === `paid-${run}` ? "applied" : "missing", "at seq", paid.seq);

// Carol holds 300 but has no grant on the token: its handle answers as for an unknown token.
const carolTokens = await carol.runtime.getModule("token");
console.log(`carol: token ${await carolTokens.token(gold)}, balance ${await carolTokens.balance(gold, CAROL)}, history ${(await carolTokens.history(gold)).length}`);

const assets = await bob.runtime.getModule("asset");
console.log(`bob: owner of ${car.split("-")[0]} ${await assets.owner(car)}, carol: ${await (await carol.runtime.getModule("asset")).owner(car)}`);

try {
  await alice.runtime.getModule("proof");
} catch (err) {
  if (!(err instanceof ModuleError)) throw err;
  console.log("refused:", err.message);
}
