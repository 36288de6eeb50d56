// The ledger explorer (explorer/, served by `nucleus serve` at /explorer) in a real headless
// Chromium (Debian's, /usr/bin/chromium, or $NUCLEUS_CHROMIUM) driven by playwright-core, against a
// real `nucleus serve --dev` with the UAL: sign in, browse, open an entry and see it verified; then
// change the SQLite database behind the server and see the failure. Also: the committed bundle is a
// fresh build of explorer/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { chromium, type Browser, type Page } from "playwright-core";

import { ed25519 } from "@noble/curves/ed25519.js";

import { base64Encode, concatBytes } from "../src/bytes.js";
import { createClient, keyId, parseNote, type Entry, type NucleusClient } from "../src/index.js";
import { makeWitness, startProxy, startServer, tamperEntry, type Answer, type Served } from "./support/server.js";

const ADMIN = "oid:dev:user:admin";
const ALICE = "oid:dev:user:alice";
const BOB = "oid:dev:user:bob";
const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));

let served: Served;
let browser: Browser;

before(async () => {
  served = await startServer(["--plugin", "ual", "--admin", ADMIN]);
  browser = await chromium.launch({
    executablePath: process.env["NUCLEUS_CHROMIUM"] || "/usr/bin/chromium",
    headless: true,
    // Root in CI: Chromium's sandbox needs an unprivileged user.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  await served?.stop();
});

function clientOf(oid: string): NucleusClient {
  return createClient({ url: served.url, token: `dev:${oid}`, verifierKeys: [served.vkey] });
}

/** A fresh browser page on the explorer, every CSP violation and page error collected. */
async function openExplorer(url = served.url): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (err) => problems.push(err.message));
  const response = await page.goto(`${url}/explorer`);
  assert.equal(response?.status(), 200);
  await page.getByTestId("signin").waitFor();
  return { page, problems };
}

/** The settled state (ok, bad, info) of the element with this data-testid, and its text. */
async function settled(page: Page, testId: string): Promise<{ state: string; text: string }> {
  const selector = `[data-testid="${testId}"]`;
  try {
    await page.waitForFunction(
      (sel) => {
        const node = document.querySelector<HTMLElement>(sel);
        return node !== null && ["ok", "bad", "info"].includes(node.dataset["state"] ?? "");
      },
      selector,
      { timeout: 30_000 },
    );
  } catch (err) {
    // Say what the page shows instead.
    throw new Error(`${testId} did not settle: ${(err as Error).message}\npage:\n${await page.locator("body").innerText()}`);
  }
  const node = page.locator(selector);
  return { state: (await node.getAttribute("data-state")) ?? "", text: (await node.textContent()) ?? "" };
}

/** Run `action`, then wait for the element's state it sets (the state before is cleared first). */
async function settledAfter(page: Page, testId: string, action: () => Promise<unknown>): Promise<{ state: string; text: string }> {
  await page.evaluate((id) => document.querySelector(`[data-testid="${id}"]`)?.removeAttribute("data-state"), testId);
  await action();
  return settled(page, testId);
}

async function signIn(page: Page, oid: string): Promise<void> {
  await page.getByTestId("token-input").fill(`dev:${oid}`);
  await page.getByTestId("signin-button").click();
  await page.getByTestId("whoami").filter({ hasText: oid }).waitFor();
}

async function listedIds(page: Page): Promise<string[]> {
  return page.getByTestId("entry-row").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-record-id") ?? ""));
}

/** Let `oid` create entries in `stream` (the admin grants it). */
async function grant(oid: string, stream: string): Promise<void> {
  const answer = await fetch(`${served.url}/acl/grant`, {
    method: "POST",
    headers: { authorization: `Bearer dev:${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ grants: [{ resource_kind: `stream:${stream}`, resource_id: "*", principal_oid: oid, scope: "create" }] }),
  });
  assert.equal(answer.status, 201, await answer.text());
}

/** A checkpoint verifier key of no server (a signed note key, type 0x01). */
function foreignVkey(): string {
  const material = concatBytes([new Uint8Array([0x01]), ed25519.getPublicKey(ed25519.utils.randomPrivateKey())]);
  return `elsewhere+${keyId("elsewhere", material).toString(16).padStart(8, "0")}+${base64Encode(material)}`;
}

test("the committed bundle is a fresh build of explorer/ (npm run build:explorer)", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["scripts/build-explorer.mjs", "--check"], { cwd: PACKAGE });
  assert.match(stdout, /fresh build/);
});

test("sign in, browse, open an entry verified; tampered entries in the database are shown failed", async () => {
  const admin = clientOf(ADMIN);
  await admin.ledgerId();
  const grant = await fetch(`${served.url}/acl/grant`, {
    method: "POST",
    headers: { authorization: `Bearer dev:${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({
      grants: [[ALICE, "notes"], [BOB, "notes"], [ALICE, "bulk"]].map(([oid, stream]) => ({
        resource_kind: `stream:${stream}`, resource_id: "*", principal_oid: oid, scope: "create",
      })),
    }),
  });
  assert.equal(grant.status, 201, await grant.text());
  const [first, second, third] = await clientOf(ALICE).appendBatch(
    ["a-1", "a-2", "a-3"].map((id, i) => ({ id, stream: "notes", timestamp: 1_763_942_400_000 + i, payload: { n: i } })),
  ) as [Entry, Entry, Entry];
  const secret = await clientOf(BOB).append({ id: "b-secret", stream: "notes", timestamp: 1_763_942_400_100, payload: { s: 1 } });

  const { page, problems } = await openExplorer();

  // A wrong token: a clear sign-in error, nothing else shown.
  await page.getByTestId("token-input").fill("dev:not-a-token");
  await page.getByTestId("signin-button").click();
  const error = page.getByTestId("signin-error");
  await error.waitFor();
  assert.match((await error.textContent()) ?? "", /Sign-in failed: the server refused this token/);
  assert.equal(await page.getByTestId("whoami").isVisible(), false);

  // Alice lists her entries only, the page verified; Bob's is not listed.
  const firstPage = await settledAfter(page, "page-status", () => signIn(page, ALICE));
  assert.equal(firstPage.state, "ok", firstPage.text);
  assert.equal(await error.isVisible(), false);
  assert.deepEqual(await listedIds(page), ["a-1", "a-2", "a-3"]);
  assert.match(await page.getByTestId("streams").innerText(), /notes/);

  // More entries in another stream: filtered by stream, paged (50 a page), each page verified.
  await clientOf(ALICE).appendBatch(
    Array.from({ length: 60 }, (_, i) => ({ id: `bulk-${i}`, stream: "bulk", timestamp: 1_763_942_500_000 + i, payload: { i } })),
  );
  await page.getByTestId("stream-filter").fill("bulk");
  const bulk = await settledAfter(page, "page-status", () => page.getByTestId("filter-button").click());
  assert.equal(bulk.state, "ok", bulk.text);
  const firstBulk = await listedIds(page);
  assert.deepEqual(firstBulk, Array.from({ length: 50 }, (_, i) => `bulk-${i}`));
  const next = await settledAfter(page, "page-status", () => page.getByTestId("next-page").click());
  assert.equal(next.state, "ok", next.text);
  assert.deepEqual(await listedIds(page), Array.from({ length: 10 }, (_, i) => `bulk-${50 + i}`));
  assert.equal(await page.getByTestId("next-page").isDisabled(), true);
  assert.deepEqual(
    await page.getByTestId("stream-link").evaluateAll((links) => links.map((link) => link.getAttribute("data-stream"))),
    ["bulk", "notes"],
  );
  await page.getByTestId("stream-filter").fill("notes");
  await settledAfter(page, "page-status", () => page.getByTestId("filter-button").click());
  assert.deepEqual(await listedIds(page), ["a-1", "a-2", "a-3"]);
  assert.match(await page.getByTestId("key-source").innerText(), /fetched from this server/);

  // Open an entry: verified, every check green.
  const opened = await settledAfter(page, "entry-status", () => page.locator('[data-record-id="a-2"] [data-testid="entry-link"]').click());
  assert.deepEqual(opened, { state: "ok", text: "verified" });
  for (const name of ["entry", "hash", "checkpoint", "inclusion", "client"]) {
    assert.equal(await page.getByTestId(`check-${name}`).getAttribute("data-state"), "ok", name);
  }
  assert.match(await page.getByTestId("entry-record").innerText(), /"id": "a-2"/);
  assert.match(await page.getByTestId("check-witnesses-detail").innerText(), /no witnesses configured/);

  // Bob's entry, opened by its hash: not readable, so nothing is shown verified.
  const refused = await settledAfter(page, "entry-status", () => page.goto(`${served.url}/explorer#/entry/${secret.hash}`));
  assert.equal(refused.state, "bad");
  assert.match(refused.text, /could not be read/);
  assert.doesNotMatch(await page.getByTestId("entry-record").innerText(), /b-secret/);

  // The checkpoint history: what this browser verified, each extending the one before.
  const history = await settledAfter(page, "history-status", () => page.getByTestId("tab-checkpoints").click());
  assert.equal(history.state, "ok", history.text);
  // Two checkpoints at least (before and after the bulk entries), the newer extending the older.
  assert.ok((await page.getByTestId("history-row").count()) >= 2);
  assert.match(await page.getByTestId("history-rows").innerText(), /signed; extends the checkpoint of \d+ entries/);
  assert.match(await page.getByTestId("latest-note").innerText(), /^nucleus\.invalid\/default\n/);

  // Pinned keys: a malformed one is refused; the server's own key pinned verifies as before.
  await page.getByTestId("keys").locator("summary").click();
  await page.getByTestId("pinned-keys").fill("not a key");
  await page.getByTestId("pin-keys").click();
  assert.match(await page.getByTestId("keys-error").innerText(), /not a checkpoint verifier key/);
  // A pinned key that is not the server's: red, the key source and the entry's checkpoint check.
  await page.getByTestId("pinned-keys").fill(foreignVkey());
  const foreign = await settledAfter(page, "entry-status", async () => {
    await page.getByTestId("pin-keys").click();
    await page.goto(`${served.url}/explorer#/entry/${second.hash}`);
  });
  assert.equal(foreign.state, "bad");
  assert.equal(await page.getByTestId("key-source").getAttribute("data-state"), "bad");
  assert.match(await page.getByTestId("key-source").innerText(), /NOT the ones the server says/);
  assert.equal(await page.getByTestId("check-checkpoint").getAttribute("data-state"), "bad");
  assert.equal(await page.getByTestId("check-hash").getAttribute("data-state"), "ok");
  // The server's own key pinned: verified again.
  await page.getByTestId("pinned-keys").fill(served.vkey);
  const pinned = await settledAfter(page, "entry-status", () => page.getByTestId("pin-keys").click());
  assert.deepEqual(pinned, { state: "ok", text: "verified" });
  await page.getByTestId("key-source").filter({ hasText: "pinned key" }).waitFor();
  assert.equal(await page.getByTestId("key-source").getAttribute("data-state"), "ok");

  // The record of entry a-1 changed in the database, its stored hash kept: the hash check fails.
  await tamperEntry(served, first, { n: 99 }, false);
  // Opened by its URL in a reloaded page: the token is still in the tab's session storage.
  await page.goto(`${served.url}/explorer#/entry/${first.hash}`);
  await page.reload();
  const changed = await settled(page, "entry-status");
  assert.equal(changed.state, "bad");
  assert.match(changed.text, /verification FAILED: hash mismatch/);
  assert.equal(await page.getByTestId("check-hash").getAttribute("data-state"), "bad");
  assert.equal(await page.getByTestId("check-client").getAttribute("data-state"), "bad");
  assert.match(await page.getByTestId("check-client-detail").innerText(), /IntegrityError/);

  // Entry a-3 changed with its hash recomputed: that hash is in no signed tree.
  await tamperEntry(served, third, { n: 98 }, true);
  const rehashed = (await (await fetch(`${served.url}/records/a-3`, { headers: { authorization: `Bearer dev:${ALICE}` } })).json()) as { hash: string };
  assert.notEqual(rehashed.hash, third.hash);
  const forged = await settledAfter(page, "entry-status", () => page.goto(`${served.url}/explorer#/entry/${rehashed.hash}`));
  assert.equal(forged.state, "bad");
  assert.match(forged.text, /inclusion proof/);
  assert.equal(await page.getByTestId("check-hash").getAttribute("data-state"), "ok");
  assert.equal(await page.getByTestId("check-inclusion").getAttribute("data-state"), "bad");
  assert.match(await page.getByTestId("check-client-detail").innerText(), /InclusionProofError/);

  // The list of entries: its page fails to verify now, in red.
  const listed = await settledAfter(page, "page-status", () => page.getByTestId("tab-entries").click());
  assert.equal(listed.state, "bad");
  assert.match(listed.text, /this page failed to verify/);

  // Sign out: the token leaves the tab's session storage.
  await page.getByTestId("signout-button").click();
  await page.getByTestId("signin").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.getByTestId("signin").waitFor();
  assert.equal(await page.getByTestId("whoami").isVisible(), false);

  // No Content-Security-Policy violation or script error along the way (the 401 and 404 answers
  // above are logged by Chromium as failed loads, nothing else).
  assert.deepEqual(problems.filter((p) => !/status of (401|404)/.test(p)), []);
});

test("the witnesses' cosignatures of the checkpoint an entry is proven in, a bad one shown failed", async () => {
  // A proxy in front of the server (the explorer with it: the page talks to where it came from)
  // lists two witnesses and adds their cosignature lines to every checkpoint it serves.
  const proxy = await startProxy(served.url);
  const [good, idle] = [makeWitness("w1.example"), makeWitness("w2.example")];
  let cosign = (note: string): string => note + good.cosignLine(parseNote(note).text, 1_700_000_000);
  let quorum = 1;
  proxy.rewrite = (method, path, answer): Answer => {
    const bare = path.split("?")[0];
    if (method === "GET" && bare === "/checkpoint/witnesses") {
      const witnesses = [good, idle].map((w, i) => ({
        name: `w${i + 1}`, url: `https://w${i + 1}.example/`, vkey: w.vkey, cosigned_size: i ? 0 : 5, submitted_size: 5,
        last_error: i ? "connection refused" : null,
      }));
      return { status: 200, contentType: "application/json", body: JSON.stringify({ quorum, witnesses }) };
    }
    if (method === "GET" && bare === "/checkpoint" && answer.status === 200) return { ...answer, body: cosign(answer.body) };
    return answer;
  };
  try {
    await grant(ALICE, "notes");
    const entry = await clientOf(ALICE).append({ id: "w-1", stream: "notes", timestamp: 1_763_942_400_200, payload: {} });
    const { page } = await openExplorer(proxy.url);
    await settledAfter(page, "page-status", () => signIn(page, ALICE));
    const opened = await settledAfter(page, "entry-status", () => page.goto(`${proxy.url}/explorer#/entry/${entry.hash}`));
    assert.deepEqual(opened, { state: "ok", text: "verified" });
    assert.match(
      await page.getByTestId("check-witnesses-detail").innerText(),
      /^1 of 2 witnesses cosigned the checkpoint \(quorum 1: the witness policy the server states: its claim/,
    );
    const rows = await page.getByTestId("witness-row").allInnerTexts();
    assert.equal(rows.length, 2);
    assert.match(rows[0] as string, /w1\s+cosigned the checkpoint\s+cosigned up to 5/);
    assert.match(rows[1] as string, /w2\s+no cosignature on the checkpoint.*last error: connection refused/s);

    // The server states a quorum of 2: one cosignature is short, red naming the shortfall.
    quorum = 2;
    const short = await settledAfter(page, "entry-status", () => page.reload());
    assert.equal(short.state, "bad");
    assert.match(await page.getByTestId("check-checkpoint-detail").innerText(), /cosignatures by 1 of the 2 trusted witnesses; the policy requires 2/);
    assert.match(await page.getByTestId("check-witnesses-detail").innerText(), /quorum not met/);
    assert.equal(await page.getByTestId("entry-shown").getAttribute("data-state"), "bad");

    // A pinned witness policy (1 of w1's key) is checked instead of the server's claim: green.
    await page.getByTestId("witness-keys").locator("summary").click();
    await page.getByTestId("pinned-witnesses").fill(good.vkey);
    await page.getByTestId("witness-quorum").fill("1");
    const pinnedOk = await settledAfter(page, "entry-status", () => page.getByTestId("pin-witnesses").click());
    assert.deepEqual(pinnedOk, { state: "ok", text: "verified" });
    assert.match(await page.getByTestId("check-witnesses-detail").innerText(), /quorum 1: your pinned witness policy/);
    // A pinned witness that did not cosign: red.
    await page.getByTestId("pinned-witnesses").fill(idle.vkey);
    const pinnedBad = await settledAfter(page, "entry-status", () => page.getByTestId("pin-witnesses").click());
    assert.equal(pinnedBad.state, "bad");
    await page.getByTestId("unpin-witnesses").click();
    quorum = 1;

    // The second witness's line is a cosignature of another checkpoint: red, naming it.
    cosign = (note) => note + idle.cosignLine(parseNote(note).text.replace(/\n\d+\n/, "\n0\n"), 1_700_000_000);
    const bad = await settledAfter(page, "entry-status", () => page.reload());
    assert.equal(bad.state, "bad");
    assert.match(await page.getByTestId("check-checkpoint-detail").innerText(), /cosignature of the trusted witness w2\.example.*does not verify/);
    const history = await settledAfter(page, "history-status", () => page.getByTestId("tab-checkpoints").click());
    assert.equal(history.state, "bad");
    assert.match(history.text, /w2\.example.*does not verify/);
  } finally {
    await proxy.close();
  }
});

test("what is shown comes from verified reads: a record rewritten in transit, another entry answered, HTML in records", async () => {
  await grant(ALICE, "fresh");
  const html = `<img src=x onerror="document.title='pwned'">`;
  const [one, two, big] = await clientOf(ALICE).appendBatch([
    { id: "f-1", stream: "fresh", timestamp: 1_763_942_400_300, payload: { n: 1 } },
    { id: "f-2", stream: "fresh", timestamp: 1_763_942_400_301, payload: { n: 2 } },
    { id: html, stream: "fresh", timestamp: Number.MAX_SAFE_INTEGER, payload: { html } },
  ]) as [Entry, Entry, Entry];
  const proxy = await startProxy(served.url);
  try {
    const { page, problems } = await openExplorer(proxy.url);
    await settledAfter(page, "page-status", () => signIn(page, ALICE));
    await page.getByTestId("stream-filter").fill("fresh");
    const listed = await settledAfter(page, "page-status", () => page.getByTestId("filter-button").click());
    assert.equal(listed.state, "ok", listed.text);
    // HTML in a record id is text; a timestamp beyond Date's range is shown as its number.
    assert.deepEqual(await listedIds(page), ["f-1", "f-2", html]);
    assert.equal(await page.locator("img").count(), 0);
    assert.match(await page.getByTestId("entry-rows").innerText(), /9007199254740991 \(ms\)/);
    const opened = await settledAfter(page, "entry-status", () => page.goto(`${proxy.url}/explorer#/entry/${big.hash}`));
    assert.deepEqual(opened, { state: "ok", text: "verified" });
    assert.ok((await page.getByTestId("entry-record").innerText()).includes(JSON.stringify(html)));
    assert.equal(await page.locator("img").count(), 0);
    assert.notEqual(await page.title(), "pwned");

    // The list's answer with a record rewritten in transit: red, and the rewritten record is not shown.
    proxy.rewrite = (method, path, answer): Answer =>
      method === "POST" && path === "/entries/query" ? { ...answer, body: answer.body.replace('"n":2', '"n":666') } : answer;
    const tampered = await settledAfter(page, "page-status", () => page.getByTestId("tab-entries").click());
    assert.equal(tampered.state, "bad");
    assert.match(tampered.text, /failed to verify/);
    assert.equal(await page.getByTestId("entry-row").count(), 0);
    assert.doesNotMatch(await page.locator("body").innerText(), /666/);

    // GET /entries/<f-1> answered with f-2 (a genuine entry): red, f-2 not shown as f-1.
    proxy.rewrite = (method, path, answer): Answer => path === `/entries/${one.hash}` ? { ...answer, body: JSON.stringify(rawOf(two)) } : answer;
    const swapped = await settledAfter(page, "entry-status", () => page.goto(`${proxy.url}/explorer#/entry/${one.hash}`));
    assert.equal(swapped.state, "bad");
    assert.match(await page.getByTestId("check-entry-detail").innerText(), /the server answered entry/);
    assert.doesNotMatch(await page.getByTestId("entry-record").innerText(), /f-2/);

    // An error message with HTML in it is text.
    proxy.rewrite = (method, path, answer): Answer => path === "/whoami"
      ? { status: 401, contentType: "application/json", body: JSON.stringify({ error: { code: "token_invalid", message: html } }) }
      : answer;
    await page.getByTestId("signout-button").click();
    await page.getByTestId("token-input").fill(`dev:${ALICE}`);
    await page.getByTestId("signin-button").click();
    await page.getByTestId("signin-error").filter({ hasText: "onerror" }).waitFor();
    assert.equal(await page.locator("img").count(), 0);
    assert.deepEqual(problems.filter((p) => !/status of (401|404)/.test(p)), []);
  } finally {
    await proxy.close();
  }
});

/** The server's JSON of an entry. */
function rawOf(entry: Entry): Record<string, unknown> {
  return {
    seq: entry.seq, hash: entry.hash, prev_hash: entry.prevHash, version: entry.version, appender: entry.appender,
    auth_source: entry.authSource, committed_at: entry.committedAt, record: entry.record,
  };
}

test("a configured origin set by the user, no public transparency paths, a ledger renamed in transit", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nucleus-explorer-"));
  const config = join(dir, "nucleus.toml");
  await writeFile(config, '[ledger.checkpoint]\norigin = "example.org/log"\n');
  const other = await startServer(["--config", config, "--public-path", "/health"]);
  const proxy = await startProxy(other.url);
  try {
    await createClient({ url: other.url, token: `dev:${ALICE}` }).append({ id: "o-1", stream: "notes", timestamp: 1, payload: {} });
    const { page } = await openExplorer(proxy.url);
    // Sign-in works though /checkpoint/key etc. need the token; the default origin is not the configured one: red.
    const wrong = await settledAfter(page, "page-status", () => signIn(page, ALICE));
    assert.equal(wrong.state, "bad", wrong.text);
    assert.match(wrong.text, /origin|nucleus\.invalid\/default/);
    await page.getByTestId("keys").locator("summary").click();
    await page.getByTestId("origin-input").fill("example.org/log");
    await page.getByTestId("pin-origin").click();
    const right = await settled(page, "page-status");
    assert.equal(right.state, "ok", right.text);
    assert.deepEqual(await listedIds(page), ["o-1"]);

    // The server now says it is another ledger: red, not a fresh start.
    proxy.rewrite = (method, path, answer): Answer =>
      path === "/ledger" ? { ...answer, body: answer.body.replace('"ledger_id":"default"', '"ledger_id":"renamed"') } : answer;
    const renamed = await settledAfter(page, "page-status", () => page.reload());
    assert.equal(renamed.state, "bad");
    assert.match(renamed.text, /the server now says it is another ledger/);
    assert.equal(await page.getByTestId("identity-status").isVisible(), true);
  } finally {
    await proxy.close();
    await other.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
