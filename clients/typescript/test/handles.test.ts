// Module handles (`client.runtime`) against a real `nucleus serve --dev` with the UAL, the four
// domain modules and a third-party module (`notes`, test/fixtures/python): the scenarios, data and
// expected answers of plugins/server/tests/test_handles.py (the owner sees, a stranger sees
// nothing, a granted principal sees), unknown ids and wrong types, and answers altered by a proxy
// or in the database behind the server, refused.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  AnswerMismatchError, InclusionProofError, IntegrityError, ModuleError, NucleusError, QueryError, TokenInvalidError,
  ValidationError, AssetHandle, ConnectGrantHandle, ModuleHandle, ProofHandle, TokenHandle, ProofStatus,
  canonicalBytes, createClient, entryHash,
  type Entry, type GenericHandle, type LedgerRecord, type ModuleRuntime, type NucleusClient,
} from "../src/index.js";
import { startProxy, startServer, tamperEntry, type Answer, type Proxy, type Served } from "./support/server.js";

const ROOT = "oid:hd:user:root";
const ALICE = "oid:hd:user:alice";
const BOB = "oid:hd:user:bob";
const CAROL = "oid:hd:user:carol";
const DAVE = "oid:hd:user:dave"; // given read grants by Alice
const EVE = "oid:hd:user:eve"; // a stranger: sees nothing
const APP = "oid:hd:app:calendar";
const AT = 1_700_000_000_000;

let served: Served;
let proxy: Proxy;

const clientOf = (oid: string, url = served.url, verifying = true): NucleusClient =>
  createClient({ url, token: `dev:${oid}`, ...(verifying ? { verifierKeys: [served.vkey] } : {}) });
const runtimeOf = (oid: string): ModuleRuntime => clientOf(oid).runtime;

type GrantDoc = { resource_kind: string; resource_id: string; principal_oid: string; scope: string };

async function grant(by: string, grants: GrantDoc[]): Promise<void> {
  const response = await fetch(`${served.url}/acl/grant`, {
    method: "POST",
    headers: { authorization: `Bearer dev:${by}`, "content-type": "application/json" },
    body: JSON.stringify({ grants }),
  });
  assert.equal(response.status, 201, await response.text());
}

const rec = (id: string, stream: string, payload: LedgerRecord["payload"]): LedgerRecord => ({ id, stream, timestamp: AT, payload });

async function append(by: string, ...records: LedgerRecord[]): Promise<void> {
  await clientOf(by, served.url, false).appendBatch(records);
}

/** plugins/server/tests/test_handles.py `populate`: the same records by the same principals, in the same order. */
async function populate(): Promise<void> {
  await grant(ROOT, ["proof", "asset", "connect_grant", "token", "note"].flatMap((kind) =>
    [ALICE, BOB].map((who) => ({ resource_kind: kind, resource_id: "*", principal_oid: who, scope: "create" }))));
  const issued = { type: "issued", issuer: ALICE, proof_type: "kyc", target: "account", data: { level: 2 } };
  await append(ALICE,
    rec("p1", "proof", { ...issued, subject: BOB }),
    rec("p2", "proof", { ...issued, subject: CAROL }),
    rec("p3", "proof", { ...issued, subject: CAROL, expires_at: AT + 1 }));
  await append(ALICE, rec("p2-revoked", "proof", { type: "revoked", proof_id: "p2", by: ALICE }));
  await append(BOB, rec("pb", "proof", { ...issued, issuer: BOB, subject: ALICE }));
  await append(ALICE,
    rec("a1-issued", "asset", { type: "issued", asset_id: "a1", issuer: ALICE, owner: ALICE, asset_type: "car" }),
    rec("a2-issued", "asset", { type: "issued", asset_id: "a2", issuer: ALICE, owner: ALICE }),
    rec("a1-moved", "asset", { type: "transferred", asset_id: "a1", to: BOB, from: ALICE }));
  await append(BOB, rec("ab-issued", "asset", { type: "issued", asset_id: "ab", issuer: BOB, owner: BOB }));
  await append(ALICE, rec("g1", "connect_grant", { type: "granted", subject: ALICE, app: APP, scopes: ["read", "write"] }));
  await append(BOB, rec("g2", "connect_grant", { type: "granted", subject: BOB, app: APP, scopes: ["read"] }));
  await append(ALICE,
    rec("t-created", "token", { type: "created", token_id: "EUR", issuer: ALICE, symbol: "EUR", decimals: 2, cap: 1000 }),
    rec("t-mint", "token", { type: "minted", token_id: "EUR", tx_id: "tx1", to: ALICE, amount: 100 }),
    rec("t-pay", "token", { type: "transferred", token_id: "EUR", tx_id: "tx2", to: BOB, amount: 30, from: ALICE }));
  await grant(ALICE, [{ resource_kind: "token", resource_id: "EUR", principal_oid: BOB, scope: "write" }]);
  await append(BOB, rec("t-bob", "token", { type: "transferred", token_id: "EUR", tx_id: "tx3", to: CAROL, amount: 10, from: BOB }));
  await append(ALICE,
    rec("n1", "notes", { author: ALICE, kind: "memo", tags: ["home", "work"], done: false }),
    rec("n2", "notes", { author: ALICE, kind: "todo", tags: ["work"], done: true }));
  await append(BOB, rec("n3", "notes", { author: BOB, kind: "todo", tags: ["x"], done: false }));
  const read = [["proof", "p1"], ["asset", "a2"], ["connect_grant", "g1"], ["token", "EUR"], ["note", "n1"]];
  await grant(ALICE, read.map(([kind, id]) => ({ resource_kind: kind as string, resource_id: id as string, principal_oid: DAVE, scope: "read" })));
}

before(async () => {
  // The server's default of one worker per core: the handle answers hold whichever worker
  // serves them (each folds in what the others committed before it answers or writes).
  served = await startServer(
    ["--plugin", "ual,proof,asset,connect_grant,token,ts_notes", "--admin", ROOT], { fixturePlugins: true },
  );
  proxy = await startProxy(served.url);
  await populate();
});

after(async () => {
  await proxy?.close();
  await served?.stop();
});

const ids = (entries: readonly (Entry | null)[]): (string | null)[] => entries.map((e) => e?.record.id ?? null);
const present = (values: readonly unknown[]): boolean[] => values.map((v) => v !== null);
const each = async <T>(who: readonly string[], scenario: (runtime: ModuleRuntime) => Promise<T>): Promise<Record<string, T>> =>
  Object.fromEntries(await Promise.all(who.map(async (oid) => [oid, await scenario(runtimeOf(oid))] as const)));

test("listModules: every module with its handle types and operations, as the server lists them", async () => {
  const modules = await runtimeOf(EVE).listModules();
  assert.deepEqual(modules.map((m) => m.id).sort(), ["asset", "connect_grant", "notes", "proof", "token"]);
  const token = modules.find((m) => m.id === "token");
  assert.deepEqual(token?.handleTypes, [
    "nucleus_module_token.module.TokenModule", "nucleus_core.stateful.StatefulModule", "nucleus_core.module_base.Module",
  ]);
  assert.deepEqual([token?.streams, token?.resourceKind, token?.state], [["token"], "token", "started"]);
  assert.deepEqual(token?.operations.map((o) => o.name), ["balance", "history", "holders", "token", "transaction"]);
  assert.deepEqual(token?.operations.find((o) => o.name === "history"), {
    name: "history",
    summary: "The token's entries in seq order (only those involving ``holder`` if given), readable ones only.",
    path: "/modules/token/history",
    params: [
      { name: "token_id", required: true, schema: { type: "string" } },
      { name: "holder", required: false, schema: { type: "string" } },
    ],
    result: { type: "array", items: { $ref: "#/components/schemas/Entry" } },
  });
  const notes = modules.find((m) => m.id === "notes");
  assert.equal(notes?.handleTypes[0], "nucleus_ts_fixtures.notes.NotesModule");
  assert.deepEqual(notes?.operations.map((o) => o.name), ["by_author", "entry", "kinds", "note", "tag_counts"]);
  assert.deepEqual(await runtimeOf(EVE).list(), modules.map((m) => m.id));
});

test("proof scenario: issuer and subject see, Dave sees the proof he was granted, Eve nothing", async () => {
  const out = await each([ALICE, BOB, CAROL, DAVE, EVE], async (runtime) => {
    const h = await runtime.getModule("proof");
    assert.ok(h instanceof ProofHandle);
    return {
      get: await Promise.all(["p1", "p2", "p3", "pb", "nope"].map((id) => h.get(id))),
      status: await Promise.all(["p1", "p2", "p3", "nope"].map((id) => h.status(id, { now_ms: AT }))),
      status_later: await h.status("p3", { now_ms: 1_800_000_000_000 }),
      by_subject: await Promise.all([BOB, CAROL, ALICE].map((s) => h.by_subject(s))),
      by_issuer: await Promise.all([ALICE, BOB].map((i) => h.by_issuer(i))),
    };
  });
  const { [ALICE]: alice, [BOB]: bob, [DAVE]: dave, [EVE]: eve } = out;
  assert.deepEqual(alice?.get[0], {
    proof_id: "p1", subject: BOB, issuer: ALICE, proof_type: "kyc", target: "account", expires_at: null, revoked: false,
    seq: alice?.get[0]?.seq,
  });
  assert.deepEqual(alice?.get.map((p) => p?.proof_id ?? null), ["p1", "p2", "p3", "pb", null]);
  assert.deepEqual([alice?.get[1]?.revoked, alice?.get[2]?.expires_at], [true, AT + 1]);
  assert.deepEqual(alice?.status, [ProofStatus.ISSUED, ProofStatus.REVOKED, ProofStatus.ISSUED, null]);
  assert.equal(alice?.status_later, "expired");
  assert.deepEqual(alice?.by_issuer[0]?.map((p) => p.proof_id), ["p1", "p2", "p3"]);
  assert.deepEqual(eve, { get: Array(5).fill(null), status: Array(4).fill(null), status_later: null, by_subject: [[], [], []], by_issuer: [[], []] });
  assert.deepEqual(present(dave?.get ?? []), [true, false, false, false, false]);
  assert.deepEqual(bob?.by_subject[0]?.map((p) => p.proof_id), ["p1"]); // the subject may read it (seeded)
  assert.deepEqual(bob?.by_issuer[1]?.map((p) => p.proof_id), ["pb"]);
});

test("asset scenario: the issuer keeps reading, the new owner sees, Dave sees a2, Eve nothing", async () => {
  const out = await each([ALICE, BOB, DAVE, EVE], async (runtime) => {
    const h = await runtime.getModule("asset");
    assert.ok(h instanceof AssetHandle);
    return {
      get: await Promise.all(["a1", "a2", "ab", "nope"].map((id) => h.get(id))),
      owner: await Promise.all(["a1", "a2", "ab", "nope"].map((id) => h.owner(id))),
      history: await Promise.all(["a1", "a2", "nope"].map((id) => h.history(id))),
      assets_of: await Promise.all([ALICE, BOB].map((o) => h.assets_of(o))),
    };
  });
  const { [ALICE]: alice, [BOB]: bob, [DAVE]: dave, [EVE]: eve } = out;
  assert.deepEqual(alice?.owner, [BOB, ALICE, null, null]);
  assert.deepEqual(alice?.history.map(ids), [["a1-issued", "a1-moved"], ["a2-issued"], []]);
  assert.equal(alice?.history[0]?.[1]?.appender, ALICE);
  assert.deepEqual(bob?.owner, [BOB, null, BOB, null]);
  assert.deepEqual(bob?.assets_of[1]?.map((a) => a.asset_id), ["a1", "ab"]);
  assert.deepEqual(alice?.get[0], { asset_id: "a1", issuer: ALICE, owner: BOB, asset_type: "car", status: "active", seq: alice?.get[0]?.seq });
  assert.equal(alice?.get[1]?.asset_type, null);
  assert.deepEqual(dave?.owner, [null, ALICE, null, null]);
  assert.deepEqual(eve, { get: Array(4).fill(null), owner: Array(4).fill(null), history: [[], [], []], assets_of: [[], []] });
});

test("connect_grant scenario: each subject sees her grants, Dave the one he was granted, Eve nothing", async () => {
  const out = await each([ALICE, BOB, DAVE, EVE], async (runtime) => {
    const h = await runtime.getModule("connect_grant");
    assert.ok(h instanceof ConnectGrantHandle);
    return {
      get: await Promise.all(["g1", "g2", "nope"].map((id) => h.get(id))),
      for_subject: await Promise.all([ALICE, BOB].map((s) => h.active_for_subject(s))),
      for_app: await h.active_for_app(APP),
      for_app_later: await h.active_for_app(APP, { now_ms: 1_900_000_000_000 }),
    };
  });
  const { [ALICE]: alice, [BOB]: bob, [DAVE]: dave, [EVE]: eve } = out;
  assert.deepEqual(alice?.get[0], { grant_id: "g1", subject: ALICE, app: APP, scopes: ["read", "write"], expires_at: null, revoked: false, seq: alice?.get[0]?.seq });
  assert.deepEqual(alice?.for_app.map((g) => g.grant_id), ["g1"]);
  assert.deepEqual(bob?.for_app.map((g) => g.grant_id), ["g2"]);
  assert.deepEqual(alice?.for_subject.map((gs) => gs.map((g) => g.grant_id)), [["g1"], []]);
  assert.deepEqual(present(dave?.get ?? []), [true, false, false]);
  assert.deepEqual(eve, { get: Array(3).fill(null), for_subject: [[], []], for_app: [], for_app_later: [] });
});

test("token scenario: the issuer, the holder granted write and Dave granted read see the token, Eve nothing", async () => {
  const out = await each([ALICE, BOB, DAVE, EVE], async (runtime) => {
    const h = await runtime.getModule("token");
    assert.ok(h instanceof TokenHandle);
    return {
      token: await Promise.all(["EUR", "nope"].map((t) => h.token(t))),
      balance: await Promise.all([ALICE, BOB, CAROL, EVE].map((p) => h.balance("EUR", p))),
      holders: await h.holders("EUR"),
      history: await h.history("EUR"),
      history_bob: await h.history("EUR", { holder: BOB }),
      transaction: await Promise.all(["tx1", "tx3", "nope"].map((tx) => h.transaction(tx))),
    };
  });
  const { [ALICE]: alice, [BOB]: bob, [DAVE]: dave, [EVE]: eve } = out;
  assert.deepEqual(alice?.token[0], { token_id: "EUR", issuer: ALICE, symbol: "EUR", decimals: 2, cap: 1000, supply: 100, seq: alice?.history[0]?.seq });
  assert.deepEqual(alice?.balance, [70, 20, 10, 0]);
  assert.deepEqual(alice?.holders, { [ALICE]: 70, [BOB]: 20, [CAROL]: 10 });
  assert.deepEqual(ids(alice?.history ?? []), ["t-created", "t-mint", "t-pay", "t-bob"]);
  assert.deepEqual(ids(alice?.history_bob ?? []), ["t-pay", "t-bob"]);
  assert.deepEqual(ids(alice?.transaction ?? []), ["t-mint", "t-bob", null]);
  assert.deepEqual(alice?.transaction[0], alice?.history[1]); // the same verified entry
  assert.equal(alice?.transaction[1]?.appender, BOB);
  assert.deepEqual(dave?.balance, alice?.balance); // a read grant on the token
  assert.deepEqual(bob, alice);
  assert.deepEqual(eve, { token: [null, null], balance: [0, 0, 0, 0], holders: {}, history: [], history_bob: [], transaction: [null, null, null] });
});

/** The notes module's operations, as a TypeScript user of that module would declare them. */
interface NotesHandle {
  note(noteId: string): Promise<NoteInfo | null>;
  by_author(author: string, options?: { kind?: string; limit?: number; done?: boolean }): Promise<NoteInfo[]>;
  tag_counts(author: string): Promise<Record<string, number>>;
  entry(noteId: string): Promise<Entry | null>;
  kinds(): Promise<string[]>;
}
interface NoteInfo { note_id: string; author: string; kind: string; tags: string[]; done: boolean; seq: number }

test("notes scenario: a third-party module's generic handle, built from the operations the server lists", async () => {
  const out = await each([ALICE, BOB, DAVE, EVE], async (runtime) => {
    const h = await runtime.getModule<NotesHandle & GenericHandle>("notes");
    assert.ok(h instanceof ModuleHandle);
    return {
      note: await Promise.all(["n1", "n2", "n3", "nope"].map((id) => h.note(id))),
      by_author: await h.by_author(ALICE),
      todo: await h.by_author(ALICE, { kind: "todo", done: true, limit: 5 }),
      first: await h.by_author(ALICE, { limit: 1 }),
      tags: await h.tag_counts(ALICE),
      entry: await h.entry("n1"),
      kinds: await h.kinds(),
    };
  });
  const { [ALICE]: alice, [DAVE]: dave, [EVE]: eve } = out;
  assert.deepEqual(alice?.by_author.map((n) => n.note_id), ["n1", "n2"]);
  assert.deepEqual(alice?.note[0], { note_id: "n1", author: ALICE, kind: "memo", tags: ["home", "work"], done: false, seq: alice?.entry?.seq });
  assert.deepEqual(alice?.todo.map((n) => n.note_id), ["n2"]);
  assert.deepEqual(alice?.first.map((n) => n.note_id), ["n1"]);
  assert.deepEqual(alice?.tags, { home: 1, work: 2 });
  assert.equal(alice?.entry?.record.id, "n1");
  assert.equal(alice?.entry?.hash.length, 64);
  assert.deepEqual(present(dave?.note ?? []), [true, false, false, false]);
  assert.deepEqual(eve, { note: Array(4).fill(null), by_author: [], todo: [], first: [], tags: {}, entry: null, kinds: ["memo", "todo"] });
});

test("refusals scenario: unknown id, wrong type, missing, unknown and misplaced arguments, no such operation", async () => {
  const runtime = runtimeOf(ALICE);
  const messages: string[] = [];
  for (const call of [
    () => runtime.getModule("nope"),
    () => runtime.getModule("nope", { handleType: "nucleus_module_token.module.TokenModule" }),
    () => runtime.getModule("token", { handleType: "nucleus_module_proof.module.ProofModule" }),
    () => runtime.getModule("notes", { handleType: "nucleus_module_token.module.TokenModule" }),
  ]) {
    await assert.rejects(call(), (err: unknown) => {
      assert.ok(err instanceof ModuleError);
      messages.push(err.message);
      return true;
    });
  }
  assert.deepEqual(messages, [
    "module 'nope': is not enabled on this ledger (known modules: asset, connect_grant, notes, proof, token)",
    "module 'nope': is not enabled on this ledger (known modules: asset, connect_grant, notes, proof, token)",
    "module 'token': is a TokenModule, not a ProofModule",
    "module 'notes': is a NotesModule, not a TokenModule",
  ]);
  // A base class of the module's counts, as isinstance does in Python.
  assert.equal((await runtime.getModule("notes", { handleType: "nucleus_core.module_base.Module" })).moduleId, "notes");
  const token = await runtime.getModule("token");
  const untyped = token as unknown as { callOperation(...args: unknown[]): Promise<unknown> };
  await assert.rejects(untyped.callOperation("balance", "EUR"), (err: unknown) => err instanceof ValidationError && err.field === "holder");
  await assert.rejects(untyped.callOperation("balance", "EUR", ALICE, { wallet: "x" }), (err: unknown) => err instanceof QueryError && err.field === "wallet");
  await assert.rejects(untyped.callOperation("history", "EUR", ALICE), ValidationError); // holder is an option
  await assert.rejects(untyped.callOperation("balance", "EUR", 7), (err: unknown) => err instanceof QueryError && err.field === "holder");
  assert.equal((token as unknown as Record<string, unknown>)["status"], undefined); // a ProofHandle's method
  await assert.rejects(token.callOperation("no_such_operation"), (err: unknown) => {
    assert.ok(err instanceof ModuleError);
    assert.equal(err.message, "module 'token': the server lists no handle operation 'no_such_operation' (it offers: balance, history, holders, token, transaction)");
    return true;
  });
  const notes = await runtime.getModule("notes");
  await assert.rejects(notes.callOperation("by_author", ALICE, { done: "yes" }), (err: unknown) => err instanceof QueryError && err.field === "done");
  await assert.rejects(notes.callOperation("by_author", ALICE, { limit: -1 }), (err: unknown) => err instanceof QueryError && err.field === "limit");
  await assert.rejects(notes.callOperation("by_author", ALICE, { limit: 2 ** 53 }), (err: unknown) => err instanceof QueryError && err.field === "limit");
  assert.equal(notes["not_an_operation"], undefined);
});

test("a built-in id whose module is another class on the server is a ModuleError", async () => {
  const other = await startServer(["--plugin", "ts_fake_token"], { fixturePlugins: true });
  try {
    const client = createClient({ url: other.url, token: `dev:${EVE}` });
    await assert.rejects(client.runtime.getModule("token"), (err: unknown) => {
      assert.ok(err instanceof ModuleError);
      assert.equal(err.message, "module 'token': is a NotATokenModule, not a TokenModule");
      assert.equal(err.moduleId, "token");
      assert.equal(err.code, "module_error");
      return true;
    });
    assert.deepEqual(await client.runtime.list(), ["token"]);
  } finally {
    await other.stop();
  }
});

function rewriteJson(method: string, path: string, change: (doc: any) => unknown): void {
  proxy.rewrite = (m, p, answer): Answer => {
    if (m !== method || p.split("?")[0] !== path || answer.status >= 400) return answer;
    return { ...answer, body: JSON.stringify(change(JSON.parse(answer.body))) };
  };
}

test("the server's errors are rebuilt into their classes", async () => {
  await assert.rejects(createClient({ url: served.url, token: "not-a-token" }).runtime.listModules(), TokenInvalidError);
  // A listing altered to make every argument optional: the server's own 422 comes back.
  rewriteJson("GET", "/modules", (doc) => ({
    modules: doc.modules.map((m: any) => ({
      ...m, operations: m.operations.map((o: any) => ({ ...o, params: o.params.map((p: any) => ({ ...p, required: false })) })),
    })),
  }));
  const notes = await clientOf(ALICE, proxy.url).runtime.getModule("notes");
  proxy.rewrite = null;
  await assert.rejects(notes.callOperation("by_author", {}), (err: unknown) => {
    assert.ok(err instanceof QueryError);
    assert.deepEqual([err.field, err.status, err.message], ["author", 422, "author: is required by by_author"]);
    return true;
  });
});

const forged = (entry: any, payload: object): any => ({ ...entry, record: { ...entry.record, payload } });

/** An entry as the server sends it. */
const rawEntry = (entry: Entry): object => ({
  seq: entry.seq, hash: entry.hash, prev_hash: entry.prevHash, version: entry.version, appender: entry.appender,
  auth_source: entry.authSource, committed_at: entry.committedAt, record: entry.record,
});

test("an entry altered in a handle answer by a proxy is refused, and so is one that does not answer the question", async () => {
  const plain = await clientOf(ALICE, proxy.url, false).runtime.getModule("token");
  const verifying = await clientOf(ALICE, proxy.url).runtime.getModule("token");
  const history = await verifying.history("EUR");
  const mint = history[1] as Entry;
  const richer = { ...(mint.record.payload as object), amount: 900 };
  rewriteJson("GET", "/modules/token/history", (doc) => ({ result: doc.result.map((e: any) => (e.seq === mint.seq ? forged(e, richer) : e)) }));
  for (const tokens of [plain, verifying]) {
    await assert.rejects(tokens.history("EUR"), (err: unknown) => err instanceof IntegrityError && err.reason === "hash mismatch");
  }
  // The hash recomputed over the altered record: in no trusted tree.
  const record = { ...mint.record, payload: richer };
  const hash = entryHash("default", mint.seq, mint.prevHash, canonicalBytes(record), 2, mint.appender, mint.authSource, mint.committedAt);
  rewriteJson("GET", "/modules/token/transaction", (doc) => ({ result: { ...forged(doc.result, richer), hash } }));
  await assert.rejects(verifying.transaction("tx1"), InclusionProofError);
  assert.equal((await plain.transaction("tx1"))?.hash, hash); // a client without verifier keys cannot tell
  // Genuine entries that do not answer the question asked (a verifying client checks).
  rewriteJson("GET", "/modules/token/transaction", () => ({ result: rawEntry(history[3] as Entry) }));
  await assert.rejects(verifying.transaction("tx1"), AnswerMismatchError);
  const assetEntry = rawEntry((await (await runtimeOf(ALICE).getModule("asset")).history("a1"))[0] as Entry);
  rewriteJson("GET", "/modules/token/history", (doc) => ({ result: [...doc.result, assetEntry] }));
  await assert.rejects(verifying.history("EUR"), AnswerMismatchError);
  rewriteJson("GET", "/modules/token/history", (doc) => ({ result: [...doc.result].reverse() }));
  await assert.rejects(verifying.history("EUR"), AnswerMismatchError);
  rewriteJson("GET", "/modules/token/history", () => ({ result: [rawEntry(history[0] as Entry)] }));
  await assert.rejects(verifying.history("EUR", { holder: BOB }), AnswerMismatchError); // the created entry does not involve Bob
  // Derived answers of the wrong shape.
  rewriteJson("GET", "/modules/token/balance", () => ({ result: "lots" }));
  await assert.rejects(verifying.balance("EUR", BOB), /the server's answer to token\.balance is not an integer/);
  rewriteJson("GET", "/modules/token/token", (doc) => ({ result: { ...doc.result, owner: ALICE } }));
  await assert.rejects(verifying.token("EUR"), /token\.token has a field "owner" its type does not have/);
  rewriteJson("GET", "/modules/token/holders", () => ({ answer: {} }));
  await assert.rejects(verifying.holders("EUR"), NucleusError);
  // The generic handle of the third-party module checks its answers and entries the same way.
  const notes = await clientOf(ALICE, proxy.url).runtime.getModule("notes");
  rewriteJson("GET", "/modules/notes/entry", (doc) => ({ result: forged(doc.result, { ...doc.result.record.payload, done: true }) }));
  await assert.rejects(notes.callOperation("entry", "n1"), (err: unknown) => err instanceof IntegrityError && err.reason === "hash mismatch");
  rewriteJson("GET", "/modules/notes/note", (doc) => ({ result: { ...doc.result, kind: "secret" } }));
  await assert.rejects(notes.callOperation("note", "n1"), /notes\.note\.kind is not one of memo, todo/);
  proxy.rewrite = null;
  assert.deepEqual(await verifying.transaction("tx1"), mint);
  assert.equal(((await notes.callOperation("entry", "n1")) as Entry).record.id, "n1");
});

test("an entry changed in the database behind the server is refused in handle answers, with or without its hash recomputed", async () => {
  // Last in this file: it leaves the server's ledger tampered with.
  const verifying = await runtimeOf(ALICE).getModule("token");
  const plain = await clientOf(ALICE, served.url, false).runtime.getModule("token");
  const honest = await verifying.history("EUR");
  const mint = honest[1] as Entry;
  assert.deepEqual(await verifying.transaction("tx1"), mint);
  const richer = { ...(mint.record.payload as object), amount: 900 };
  await tamperEntry(served, mint, richer, false);
  for (const tokens of [verifying, plain]) {
    await assert.rejects(tokens.history("EUR"), (err: unknown) => err instanceof IntegrityError && err.reason === "hash mismatch");
    await assert.rejects(tokens.transaction("tx1"), (err: unknown) => err instanceof IntegrityError && err.reason === "hash mismatch");
  }
  await tamperEntry(served, mint, richer, true);
  await assert.rejects(verifying.history("EUR"), InclusionProofError);
  await assert.rejects(verifying.transaction("tx1"), InclusionProofError);
  assert.equal(((await plain.transaction("tx1"))?.record.payload as { amount: number }).amount, 900); // only a proof tells
  assert.equal(await verifying.balance("EUR", ALICE), 70); // derived state, no entry in the answer
});
