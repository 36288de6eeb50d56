// Module handles (`client.runtime`) against a real `nucleus serve --dev` with the UAL, the four
// domain modules and a third-party module (test/fixtures/python, `ts_memo`): the owner sees, a
// stranger sees nothing, a granted principal sees; unknown ids and wrong types are ModuleErrors;
// answers altered by a proxy are refused.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  AnswerMismatchError, InclusionProofError, IntegrityError, ModuleError, NucleusError, QueryError, TokenInvalidError,
  ValidationError, AssetHandle, ModuleHandle, ProofHandle, TokenHandle, ConnectGrantHandle, ProofStatus,
  canonicalBytes, createClient, entryHash,
  type Entry, type GenericHandle, type LedgerRecord, type NucleusClient,
} from "../src/index.js";
import { MODULES_SERVER, startProxy, startServer, type Answer, type Proxy, type Served } from "./support/server.js";

const ROOT = "oid:dev:user:root";
const ALICE = "oid:dev:user:alice"; // issuer of the proofs, assets and the token
const BOB = "oid:dev:user:bob"; // subject, owner, holder
const CAROL = "oid:dev:user:carol"; // holds tokens but has no grant: a stranger to everything
const DAVE = "oid:dev:user:dave"; // given an asset, granted reads
const APP = "oid:dev:app:wallet";
const T0 = 1_763_942_400_000;

let served: Served;
let proxy: Proxy;
let seqs: Record<string, number> = {};

const clientOf = (oid: string, url = served.url, verifying = true): NucleusClient =>
  createClient({ url, token: `dev:${oid}`, ...(verifying ? { verifierKeys: [served.vkey] } : {}) });

async function grant(by: string, grants: { kind: string; id: string; to: string; scope: string }[]): Promise<void> {
  const response = await fetch(`${served.url}/acl/grant`, {
    method: "POST",
    headers: { authorization: `Bearer dev:${by}`, "content-type": "application/json" },
    body: JSON.stringify({
      grants: grants.map((g) => ({ resource_kind: g.kind, resource_id: g.id, principal_oid: g.to, scope: g.scope })),
    }),
  });
  assert.equal(response.status, 201, await response.text());
}

let counter = 0;
async function append(by: string, id: string, stream: string, payload: LedgerRecord["payload"]): Promise<Entry> {
  const entry = await clientOf(by, served.url, false).append({ id, stream, timestamp: T0 + ++counter, payload });
  seqs[id] = entry.seq;
  return entry;
}

before(async () => {
  served = await startServer({ ...MODULES_SERVER, plugins: [...(MODULES_SERVER.plugins ?? []), "ts_memo"], fixturePlugins: true });
  proxy = await startProxy(served.url);
  seqs = {};
  await grant(ROOT, [
    ...["proof", "asset", "token"].map((kind) => ({ kind, id: "*", to: ALICE, scope: "create" })),
    ...["connect_grant", "memo"].map((kind) => ({ kind, id: "*", to: BOB, scope: "create" })),
  ]);
  // proof: p1 (level 2), p2 expiring 1 s after it was issued, p3 revoked; all about bob.
  await append(ALICE, "p1", "proof", { type: "issued", subject: BOB, issuer: ALICE, proof_type: "kyc", target: "passport", data: { level: 2 } });
  await append(ALICE, "p2", "proof", {
    type: "issued", subject: BOB, issuer: ALICE, proof_type: "kyc", target: "licence", data: {}, expires_at: T0 + 1000,
  });
  await append(ALICE, "p3", "proof", { type: "issued", subject: BOB, issuer: ALICE, proof_type: "age", target: "18+", data: {} });
  await append(ALICE, "p3-revoked", "proof", { type: "revoked", proof_id: "p3", by: ALICE, reason: "mistake" });
  await grant(ALICE, [{ kind: "proof", id: "p1", to: DAVE, scope: "read" }]);
  // asset: a1 and a2 issued to bob; bob gives a2 to dave.
  await append(ALICE, "a1-issued", "asset", { type: "issued", asset_id: "a1", issuer: ALICE, owner: BOB, asset_type: "car" });
  await append(ALICE, "a2-issued", "asset", { type: "issued", asset_id: "a2", issuer: ALICE, owner: BOB });
  await append(BOB, "a2-transferred", "asset", { type: "transferred", asset_id: "a2", from: BOB, to: DAVE });
  // connect_grant: bob grants the wallet g1 (active), g2 (revoked), g3 (expires 1 s after it was given).
  await append(BOB, "g1", "connect_grant", { type: "granted", subject: BOB, app: APP, scopes: ["profile:read", "wallet:sign"] });
  await append(BOB, "g2", "connect_grant", { type: "granted", subject: BOB, app: APP, scopes: ["profile:read"] });
  await append(BOB, "g2-revoked", "connect_grant", { type: "revoked", grant_id: "g2", by: BOB });
  await append(BOB, "g3", "connect_grant", { type: "granted", subject: BOB, app: APP, scopes: ["x"], expires_at: T0 + 1_000_000 });
  await grant(BOB, [{ kind: "connect_grant", id: "g1", to: APP, scope: "read" }]);
  // token: gold, 500 minted to bob, who sends 200 to carol and burns 50; dave may read it.
  await append(ALICE, "gold-created", "token", { type: "created", token_id: "gold", issuer: ALICE, symbol: "GLD", decimals: 2, cap: 1_000_000 });
  await append(ALICE, "gold-mint-1", "token", { type: "minted", token_id: "gold", tx_id: "mint-1", to: BOB, amount: 500 });
  await grant(ALICE, [
    { kind: "token", id: "gold", to: BOB, scope: "write" },
    { kind: "token", id: "gold", to: DAVE, scope: "read" },
  ]);
  await append(BOB, "gold-xfer-1", "token", { type: "transferred", token_id: "gold", tx_id: "xfer-1", from: BOB, to: CAROL, amount: 200 });
  await append(BOB, "gold-burn-1", "token", { type: "burned", token_id: "gold", tx_id: "burn-1", from: BOB, amount: 50 });
  // memo (the third-party module): two memos of bob, the second pinned.
  await append(BOB, "m1", "memo", { type: "memo", author: BOB, text: "hello" });
  await append(BOB, "m2", "memo", { type: "pinned", author: BOB, text: "read me" });
});

after(async () => {
  await proxy?.close();
  await served?.stop();
});

const ids = (entries: readonly Entry[]): string[] => entries.map((e) => e.record.id);

test("listModules: every module with its handle types and operations, as the server lists them", async () => {
  const modules = await clientOf(CAROL).runtime.listModules();
  assert.deepEqual(modules.map((m) => m.id).sort(), ["asset", "connect_grant", "memo", "proof", "token"]);
  const token = modules.find((m) => m.id === "token");
  assert.equal(token?.handleTypes[0], "nucleus_module_token.module.TokenModule");
  assert.deepEqual(token?.streams, ["token"]);
  assert.equal(token?.resourceKind, "token");
  assert.equal(token?.state, "started");
  assert.deepEqual(token?.operations.map((o) => o.name).sort(), ["balance", "history", "holders", "token", "transaction"]);
  const history = token?.operations.find((o) => o.name === "history");
  assert.deepEqual(history?.params.map((p) => [p.name, p.required]), [["token_id", true], ["holder", false]]);
  assert.equal(history?.path, "/modules/token/history");
  assert.deepEqual(await clientOf(CAROL).runtime.list(), modules.map((m) => m.id));
});

test("token: the issuer and a granted principal see the token, a holder without a grant sees nothing", async () => {
  for (const who of [ALICE, BOB, DAVE]) {
    const tokens = await clientOf(who).runtime.getModule("token");
    assert.ok(tokens instanceof TokenHandle);
    assert.deepEqual(await tokens.token("gold"), {
      token_id: "gold", issuer: ALICE, symbol: "GLD", decimals: 2, cap: 1_000_000, supply: 450, seq: seqs["gold-created"],
    });
    assert.equal(await tokens.balance("gold", BOB), 250);
    assert.equal(await tokens.balance("gold", CAROL), 200);
    assert.equal(await tokens.balance("gold", DAVE), 0);
    assert.deepEqual(await tokens.holders("gold"), { [BOB]: 250, [CAROL]: 200 });
    const history = await tokens.history("gold");
    assert.deepEqual(ids(history), ["gold-created", "gold-mint-1", "gold-xfer-1", "gold-burn-1"]);
    assert.deepEqual(ids(await tokens.history("gold", { holder: CAROL })), ["gold-xfer-1"]);
    assert.deepEqual(ids(await tokens.history("gold", { holder: null })), ids(history));
    const tx = await tokens.transaction("xfer-1");
    assert.deepEqual(tx, history[2]);
    assert.equal(tx?.appender, BOB);
    assert.equal(await tokens.transaction("no-such-tx"), null);
    assert.equal(await tokens.token("no-such-token"), null);
  }
  const stranger = await clientOf(CAROL).runtime.getModule("token");
  assert.equal(await stranger.token("gold"), null);
  assert.equal(await stranger.balance("gold", CAROL), 0);
  assert.deepEqual(await stranger.holders("gold"), {});
  assert.deepEqual(await stranger.history("gold"), []);
  assert.equal(await stranger.transaction("xfer-1"), null);
});

test("proof: the issuer and the subject see the proofs, a principal granted one proof sees it, a stranger none", async () => {
  const p1 = { proof_id: "p1", subject: BOB, issuer: ALICE, proof_type: "kyc", target: "passport", expires_at: null, revoked: false, seq: seqs["p1"] };
  for (const who of [ALICE, BOB]) {
    const proofs = await clientOf(who).runtime.getModule("proof");
    assert.ok(proofs instanceof ProofHandle);
    assert.deepEqual(await proofs.get("p1"), p1);
    assert.deepEqual((await proofs.by_subject(BOB)).map((p) => p.proof_id), ["p1", "p2", "p3"]);
    assert.deepEqual((await proofs.by_issuer(ALICE)).map((p) => [p.proof_id, p.revoked]), [["p1", false], ["p2", false], ["p3", true]]);
    assert.equal(await proofs.status("p1"), ProofStatus.ISSUED);
    assert.equal(await proofs.status("p2"), "expired");
    assert.equal(await proofs.status("p2", { now_ms: T0 + 500 }), "issued");
    assert.equal(await proofs.status("p3"), "revoked");
    assert.equal(await proofs.status("no-such-proof"), null);
  }
  const dave = await clientOf(DAVE).runtime.getModule("proof");
  assert.deepEqual(await dave.by_subject(BOB), [p1]);
  assert.equal(await dave.get("p2"), null);
  const carol = await clientOf(CAROL).runtime.getModule("proof");
  assert.equal(await carol.get("p1"), null);
  assert.equal(await carol.status("p1"), null);
  assert.deepEqual(await carol.by_subject(BOB), []);
  assert.deepEqual(await carol.by_issuer(ALICE), []);
});

test("asset: the owner sees what she holds, the new owner what she was given, the issuer both, a stranger nothing", async () => {
  const bob = await clientOf(BOB).runtime.getModule("asset");
  assert.ok(bob instanceof AssetHandle);
  assert.deepEqual(await bob.get("a1"), { asset_id: "a1", issuer: ALICE, owner: BOB, asset_type: "car", status: "active", seq: seqs["a1-issued"] });
  assert.deepEqual((await bob.assets_of(BOB)).map((a) => a.asset_id), ["a1"]);
  assert.equal(await bob.get("a2"), null); // withdrawn by the transfer
  assert.deepEqual(ids(await bob.history("a1")), ["a1-issued"]);
  const dave = await clientOf(DAVE).runtime.getModule("asset");
  assert.equal(await dave.owner("a2"), DAVE);
  assert.deepEqual(ids(await dave.history("a2")), ["a2-issued", "a2-transferred"]);
  assert.deepEqual(await dave.assets_of(DAVE), [
    { asset_id: "a2", issuer: ALICE, owner: DAVE, asset_type: null, status: "active", seq: seqs["a2-issued"] },
  ]);
  const alice = await clientOf(ALICE).runtime.getModule("asset");
  assert.equal(await alice.owner("a2"), DAVE);
  assert.equal(await alice.owner("a1"), BOB);
  assert.deepEqual(ids(await alice.history("a2")), ["a2-issued", "a2-transferred"]);
  const carol = await clientOf(CAROL).runtime.getModule("asset");
  assert.equal(await carol.get("a1"), null);
  assert.equal(await carol.owner("a2"), null);
  assert.deepEqual(await carol.history("a2"), []);
  assert.deepEqual(await carol.assets_of(BOB), []);
});

test("connect_grant: the subject sees her grants, the app granted one sees it, a stranger none", async () => {
  const bob = await clientOf(BOB).runtime.getModule("connect_grant");
  assert.ok(bob instanceof ConnectGrantHandle);
  const g1 = { grant_id: "g1", subject: BOB, app: APP, scopes: ["profile:read", "wallet:sign"], expires_at: null, revoked: false, seq: seqs["g1"] };
  assert.deepEqual(await bob.get("g1"), g1);
  assert.equal((await bob.get("g2"))?.revoked, true);
  assert.deepEqual((await bob.active_for_subject(BOB)).map((g) => g.grant_id), ["g1"]); // g3 expired
  assert.deepEqual((await bob.active_for_subject(BOB, { now_ms: T0 + 500_000 })).map((g) => g.grant_id), ["g1", "g3"]);
  assert.deepEqual((await bob.active_for_app(APP)).map((g) => g.grant_id), ["g1"]);
  assert.deepEqual((await bob.active_for_app(APP, { now_ms: T0 + 500_000 })).map((g) => g.grant_id), ["g1", "g3"]);
  const app = await clientOf(APP).runtime.getModule("connect_grant");
  assert.deepEqual(await app.active_for_app(APP, { now_ms: T0 + 500_000 }), [g1]);
  assert.equal(await app.get("g3"), null);
  const carol = await clientOf(CAROL).runtime.getModule("connect_grant");
  assert.equal(await carol.get("g1"), null);
  assert.deepEqual(await carol.active_for_subject(BOB), []);
  assert.deepEqual(await carol.active_for_app(APP), []);
});

interface MemoHandle {
  by_author(author: string, options?: { pinned?: boolean }): Promise<Entry[]>;
  stats(author: string): Promise<{ author: string; memos: number; pinned: number; last_seq: number | null }>;
  counts(): Promise<Record<string, number>>;
  latest(author: string): Promise<Entry | null>;
}

test("a third-party module: a generic handle from the operations the server lists, entries verified", async () => {
  const memo = await clientOf(BOB).runtime.getModule<MemoHandle & GenericHandle>("memo");
  assert.ok(memo instanceof ModuleHandle);
  assert.equal(memo.moduleId, "memo");
  assert.deepEqual(memo.operationNames.sort(), ["by_author", "counts", "latest", "stats"]);
  assert.equal(memo.moduleInfo.handleTypes[0], "nucleus_ts_fixtures.memo.MemoModule");
  const memos = await memo.by_author(BOB);
  assert.deepEqual(ids(memos), ["m1", "m2"]);
  assert.equal(memos[0]?.appender, BOB);
  assert.deepEqual(ids(await memo.by_author(BOB, { pinned: true })), ["m2"]);
  assert.deepEqual(ids(await memo.by_author(BOB, { pinned: false })), ["m1"]);
  assert.deepEqual(await memo.stats(BOB), { author: BOB, memos: 2, pinned: 1, last_seq: seqs["m2"] });
  assert.deepEqual(await memo.counts(), { [BOB]: 2 });
  assert.deepEqual(await memo.latest(BOB), memos[1]);
  assert.deepEqual(await memo.callOperation("latest", BOB), memos[1]);
  const carol = await clientOf(CAROL).runtime.getModule<MemoHandle>("memo");
  assert.deepEqual(await carol.by_author(BOB), []);
  assert.deepEqual(await carol.stats(BOB), { author: BOB, memos: 0, pinned: 0, last_seq: null });
  assert.deepEqual(await carol.counts(), {});
  assert.equal(await carol.latest(BOB), null);
  // The client refuses what the server's listing says is ill-typed, before sending anything.
  await assert.rejects(memo.callOperation("by_author", 5), (err: unknown) => err instanceof QueryError && err.field === "author");
  await assert.rejects(memo.callOperation("by_author", BOB, { pinned: "yes" }), (err: unknown) => err instanceof QueryError && err.field === "pinned");
  await assert.rejects(memo.callOperation("by_author", BOB, { limit: 3 }), (err: unknown) => err instanceof QueryError && err.field === "limit");
  await assert.rejects(memo.callOperation("by_author"), (err: unknown) => err instanceof ValidationError && err.field === "author");
  await assert.rejects(memo.callOperation("by_author", BOB, CAROL), ValidationError);
  await assert.rejects(memo.callOperation("delete_all"), (err: unknown) => {
    assert.ok(err instanceof ModuleError);
    assert.equal(err.message, "module 'memo': the server lists no handle operation 'delete_all' (it offers: by_author, counts, latest, stats)");
    return true;
  });
});

test("an unknown module id and a module of another class are ModuleErrors, as in Python", async () => {
  const runtime = clientOf(CAROL).runtime;
  await assert.rejects(runtime.getModule("nope"), (err: unknown) => {
    assert.ok(err instanceof ModuleError);
    assert.equal(err.message, "module 'nope': is not enabled on this ledger (known modules: asset, connect_grant, memo, proof, token)");
    assert.equal(err.moduleId, "nope");
    assert.equal(err.code, "module_error");
    return true;
  });
  await assert.rejects(runtime.getModule("memo", { handleType: "nucleus_module_token.module.TokenModule" }), (err: unknown) => {
    assert.ok(err instanceof ModuleError);
    assert.equal(err.message, "module 'memo': is a MemoModule, not a TokenModule");
    return true;
  });
  // Its base classes count, as isinstance does in Python.
  const base = await runtime.getModule("memo", { handleType: "nucleus_core.module_base.Module" });
  assert.equal(base.moduleId, "memo");
  // A server whose module "token" is another class.
  const other = await startServer({ plugins: ["ts_fake_token"], fixturePlugins: true });
  try {
    const client = createClient({ url: other.url, token: `dev:${CAROL}` });
    await assert.rejects(client.runtime.getModule("token"), (err: unknown) => {
      assert.ok(err instanceof ModuleError);
      assert.equal(err.message, "module 'token': is a NotATokenModule, not a TokenModule");
      assert.equal(err.moduleId, "token");
      return true;
    });
    await assert.rejects(client.runtime.getModule("proof"), /module 'proof': is not enabled on this ledger \(known modules: token\)/);
  } finally {
    await other.stop();
  }
});

test("the server's errors are rebuilt into their classes", async () => {
  const stranger = createClient({ url: served.url, token: "not-a-token" });
  await assert.rejects(stranger.runtime.listModules(), TokenInvalidError);
  // A listing altered to make a required argument optional: the server's own 422 comes back.
  rewriteJson("GET", "/modules", (doc) => ({
    modules: doc.modules.map((m: any) => ({
      ...m, operations: m.operations.map((o: any) => ({ ...o, params: o.params.map((p: any) => ({ ...p, required: false })) })),
    })),
  }));
  const memo = await clientOf(BOB, proxy.url).runtime.getModule("memo");
  proxy.rewrite = null;
  await assert.rejects(memo.callOperation("by_author", {}), (err: unknown) => {
    assert.ok(err instanceof QueryError);
    assert.equal(err.field, "author");
    assert.equal(err.status, 422);
    return true;
  });
});

function rewriteJson(method: string, path: string, change: (doc: any) => unknown): void {
  proxy.rewrite = (m, p, answer): Answer => {
    if (m !== method || p.split("?")[0] !== path || answer.status >= 400) return answer;
    return { ...answer, body: JSON.stringify(change(JSON.parse(answer.body))) };
  };
}

const forged = (entry: any, payload: object): any => ({ ...entry, record: { ...entry.record, payload } });

test("an entry altered in a handle answer is refused: its hash, or its proof, no longer matches", async () => {
  const plain = await clientOf(ALICE, proxy.url, false).runtime.getModule("token");
  const verifying = await clientOf(ALICE, proxy.url).runtime.getModule("token");
  const history = await verifying.history("gold");
  const mint = history[1] as Entry;
  const richer = { ...(mint.record.payload as object), amount: 5_000_000 };
  rewriteJson("GET", "/modules/token/history", (doc) => ({ result: doc.result.map((e: any) => (e.seq === mint.seq ? forged(e, richer) : e)) }));
  for (const tokens of [plain, verifying]) {
    await assert.rejects(tokens.history("gold"), (err: unknown) => err instanceof IntegrityError && err.reason === "hash mismatch");
  }
  // The hash recomputed over the altered record: in no trusted tree.
  const record = { ...mint.record, payload: richer };
  const hash = entryHash("default", mint.seq, mint.prevHash, canonicalBytes(record), 2, mint.appender, mint.authSource, mint.committedAt);
  rewriteJson("GET", "/modules/token/transaction", (doc) => ({ result: { ...forged(doc.result, richer), hash } }));
  await assert.rejects(verifying.transaction("mint-1"), InclusionProofError);
  assert.equal((await plain.transaction("mint-1"))?.hash, hash); // a client without verifier keys cannot tell
  // Genuine entries that are not the answer to the question asked.
  rewriteJson("GET", "/modules/token/transaction", (doc) => doc);
  const xfer = await verifying.transaction("xfer-1");
  rewriteJson("GET", "/modules/token/transaction", () => ({ result: rawEntry(history[3] as Entry) }));
  await assert.rejects(verifying.transaction("xfer-1"), AnswerMismatchError);
  const assetEntry = rawEntry((await (await clientOf(ALICE).runtime.getModule("asset")).history("a1"))[0] as Entry);
  rewriteJson("GET", "/modules/token/history", (doc) => ({ result: [...doc.result, assetEntry] }));
  await assert.rejects(verifying.history("gold"), AnswerMismatchError);
  rewriteJson("GET", "/modules/token/history", (doc) => ({ result: [...doc.result].reverse() }));
  await assert.rejects(verifying.history("gold"), AnswerMismatchError);
  rewriteJson("GET", "/modules/token/history", () => ({ result: [rawEntry(history[0] as Entry)] }));
  await assert.rejects(verifying.history("gold", { holder: CAROL }), AnswerMismatchError); // the created entry does not involve carol
  // A derived answer of the wrong type.
  rewriteJson("GET", "/modules/token/balance", () => ({ result: "lots" }));
  await assert.rejects(verifying.balance("gold", BOB), (err: unknown) => err instanceof NucleusError && /not an integer/.test(err.message));
  rewriteJson("GET", "/modules/token/token", (doc) => ({ result: { ...doc.result, owner: ALICE } }));
  await assert.rejects(verifying.token("gold"), /token\.token has a field "owner" its type does not have/);
  // The generic handle of the third-party module verifies its entries the same way.
  const memo = await clientOf(BOB, proxy.url).runtime.getModule("memo");
  rewriteJson("GET", "/modules/memo/latest", (doc) => ({ result: forged(doc.result, { type: "pinned", author: BOB, text: "send money" }) }));
  await assert.rejects(memo.callOperation("latest", BOB), (err: unknown) => err instanceof IntegrityError && err.reason === "hash mismatch");
  proxy.rewrite = null;
  assert.deepEqual(await verifying.transaction("xfer-1"), xfer);
  assert.equal((await memo.callOperation("latest", BOB) as Entry).record.id, "m2");
});

/** An entry as the server sends it. */
function rawEntry(entry: Entry): object {
  return {
    seq: entry.seq, hash: entry.hash, prev_hash: entry.prevHash, version: entry.version, appender: entry.appender,
    auth_source: entry.authSource, committed_at: entry.committedAt, record: entry.record,
  };
}
