"""Checkpoints and proofs over loopback HTTP (uvicorn on 127.0.0.1), checked by a verifier this
file carries, written from RFC 9162 sections 2.1.3.2 and 2.1.4.2 alone, and by tlog_verify; the
served checkpoint checked with the published /checkpoint/key. Tampered proofs and notes are
refused by both verifiers."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nucleus_server import ServerSettings
from nucleus_server.client import RemoteLedger

from nucleus_core import Ledger, Record, RequestContext
from nucleus_core import tlog_verify as tv
from nucleus_core.checkpoint import NoteSigner, default_origin
from nucleus_core.errors import NotFoundError
from nucleus_core.tree import ConsistencyProof, InclusionProof

ALICE = "oid:tp:user:alice"
BOB = "oid:tp:user:bob"
N = 40
LEDGER = "http-test"
ORIGIN = default_origin(LEDGER)


# --- RFC 9162 2.1.3.2 and 2.1.4.2, written from the RFC alone ------------------------------
def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_leaf(entry_hash: bytes) -> bytes:
    return _h(b"\x00" + entry_hash)


def rfc_inclusion_ok(leaf_index: int, tree_size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _h(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def rfc_consistency_ok(first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]) -> bool:
    if first == second:
        return not path and first_hash == second_hash
    if not 0 < first < second or (not path and first & (first - 1)):
        return False
    if first & (first - 1) == 0:  # an exact power of 2
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _h(b"\x01" + c + fr), _h(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _h(b"\x01" + sr + c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_hash and sr == second_hash and sn == 0


def tv_inclusion_ok(leaf_index: int, tree_size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    try:
        tv.verify_inclusion(leaf, leaf_index, tree_size, path, root)
    except tv.VerificationError:
        return False
    return True


def tv_consistency_ok(first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]) -> bool:
    try:
        tv.verify_consistency(first, second, first_hash, second_hash, path)
    except tv.VerificationError:
        return False
    return True


def flipped(path: list[bytes], i: int) -> list[bytes]:
    out = list(path)
    out[i] = bytes([out[i][0] ^ 0x01]) + out[i][1:]
    return out


# --- the served ledger ---------------------------------------------------------------------
def dev(oid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev:{oid}"}


@pytest.fixture
def served(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> Iterator[tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]]]:
    signer = NoteSigner.generate(ORIGIN)
    ledger = open_ledger("ual", admins=[ALICE], checkpoint={"signers": (signer,), "key_env": None, "interval": 0})
    start = ledger.length()
    ctx = RequestContext(oid=ALICE, source="auth.dev")
    hashes: dict[int, str] = {}
    while ledger.length() < start + N:
        entry = ledger.append(
            Record(id=f"r{ledger.length()}", stream="notes", timestamp=1_700_000_000_000, payload={}), ctx
        )
        hashes[entry.seq] = entry.hash
    server = serve(ledger)
    with httpx.Client(base_url=server.url) as http:
        yield ledger, http, signer, hashes


def served_checkpoint(http: httpx.Client, size: int | None = None) -> tv.Checkpoint:
    vkeys = http.get("/checkpoint/key").text.splitlines()
    response = http.get("/checkpoint", params={} if size is None else {"size": size})
    assert response.status_code == 200 and response.headers["content-type"] == "text/plain; charset=utf-8"
    return tv.verify_checkpoint(response.text, [tv.parse_vkey(v) for v in vkeys], origin=ORIGIN)


def test_every_proof_served_verifies_and_tampered_ones_are_refused(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, _signer, _hashes = served
    size = ledger.length()
    head = served_checkpoint(http)  # no token: public
    assert head.size == size and head.root_hash == ledger.root_hash(size)
    roots = {n: ledger.root_hash(n) for n in range(1, size + 1)}
    checkers = (rfc_inclusion_ok, tv_inclusion_ok)
    # Every (seq, size) pair for the small trees, every seq for a few larger ones and the whole tree.
    for n in sorted({*range(1, 17), 31, 32, 33, size - 1, size}):
        for seq in range(1, n + 1):
            params = {"seq": seq, "size": n} if seq % 2 else {"hash": ledger.storage.get_by_seq(seq).hash, "size": n}
            response = http.get("/proof/inclusion", params=params, headers=dev(ALICE))
            assert response.status_code == 200, response.text
            doc = response.json()
            assert doc["leaf_index"] == seq - 1 and doc["tree_size"] == n
            path = [bytes.fromhex(h) for h in doc["hashes"]]
            entry_hash = bytes.fromhex(ledger.storage.get_by_seq(seq).hash)
            leaf = rfc_leaf(entry_hash)
            assert leaf == tv.leaf_hash(entry_hash)
            for ok in checkers:
                assert ok(seq - 1, n, leaf, path, roots[n]), (ok.__name__, seq, n)
                assert not ok(seq - 1, n, leaf, path, roots[n - 1] if n > 1 else b"\x00" * 32)
                for i in range(len(path)):
                    assert not ok(seq - 1, n, leaf, flipped(path, i), roots[n]), (seq, n, i)
                    assert not ok(seq - 1, n, leaf, path[:i] + path[i + 1:], roots[n]), (seq, n, i)
                if n > 1:
                    assert not ok(seq % n, n, leaf, path, roots[n]), (seq, n)  # another index
                for other in (n - 1, n + 1):  # another size, with that size's root
                    if seq <= other <= size:
                        assert not ok(seq - 1, other, leaf, path, roots[other]), (seq, n, other)
    pairs = [(m, n) for n in range(1, size + 1) for m in range(1, n + 1) if n <= 16 or m % 3 == 0 or n == size]
    for m, n in pairs:
        response = http.get("/proof/consistency", params={"from": m, "to": n})  # public
        assert response.status_code == 200, response.text
        doc = response.json()
        assert (doc["from"], doc["to"]) == (m, n)
        path = [bytes.fromhex(h) for h in doc["hashes"]]
        for check in (rfc_consistency_ok, tv_consistency_ok):
            assert check(m, n, roots[m], roots[n], path), (check.__name__, m, n)
            for i in range(len(path)):
                assert not check(m, n, roots[m], roots[n], flipped(path, i)), (m, n, i)
                assert not check(m, n, roots[m], roots[n], path[:i] + path[i + 1:]), (m, n, i)
            if m < n:
                assert not check(m, n, roots[n], roots[n], path) or m == n
                if n < size:
                    assert not check(m, n + 1, roots[m], roots[n + 1], path), (m, n)
                if m > 1:
                    assert not check(m - 1, n, roots[m - 1], roots[n], path), (m, n)


def test_the_checkpoint_verifies_with_the_published_key_and_tampering_is_refused(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, signer, _hashes = served
    [vkey] = http.get("/checkpoint/key").text.splitlines()
    assert vkey == signer.vkey
    note = http.get("/checkpoint").text
    # The signed-note rules with cryptography alone: the key hash, then the Ed25519 signature.
    name, key_hash, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 0x01 and hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() == key_hash
    text, _, signatures = note.partition("\n\n")
    [line] = signatures.splitlines()
    dash, sig_name, sig_b64 = line.split(" ")
    raw = base64.b64decode(sig_b64)
    assert dash == "\u2014" and sig_name == name and raw[:4].hex() == key_hash
    Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[4:], (text + "\n").encode())
    origin, size, root = text.split("\n")
    assert origin == ORIGIN and int(size) == ledger.length() and base64.b64decode(root) == ledger.root_hash()

    verifiers = [tv.parse_vkey(vkey)]
    assert tv.verify_checkpoint(note, verifiers).size == ledger.length()
    changed = note.replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1)
    other = NoteSigner.generate(ORIGIN)
    truncated = note[: note.rindex(" ") + 1] + base64.b64encode(raw[:-1]).decode() + "\n"
    for bad, error in (
        (changed, tv.InvalidSignatureError),
        (note, tv.UnverifiedNoteError),  # verified with an unknown key only
        (truncated, tv.NoteError),
    ):
        keys = [tv.parse_vkey(other.vkey)] if bad is note else verifiers
        with pytest.raises(error):
            tv.verify_checkpoint(bad, keys)
    # Earlier sizes stay retrievable (interval 0: every commit issued one); unknown sizes are 404.
    issued = [n for n in range(1, ledger.length() + 1) if http.get("/checkpoint", params={"size": n}).is_success]
    assert len(issued) >= N // 2 and issued[-1] == ledger.length()  # a commit is an entry and its audit record
    for n in issued:
        assert served_checkpoint(http, n).root_hash == ledger.root_hash(n)
    missing = http.get("/checkpoint", params={"size": ledger.length() + 5})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


BAD_REQUESTS = [
    ("/proof/inclusion", {"size": 3}),
    ("/proof/inclusion", {"seq": 1, "hash": "0" * 64, "size": 3}),
    ("/proof/inclusion", {"seq": 1}),
    ("/proof/inclusion", {"seq": "x", "size": 3}),
    ("/proof/inclusion", {"seq": 1, "size": 10_000}),
    ("/proof/inclusion", {"seq": 0, "size": 3}),
    ("/proof/inclusion", {"seq": 5, "size": 3}),
    ("/proof/inclusion", {"hash": "ABC", "size": 3}),
    ("/proof/inclusion", {"seq": 1, "size": 3, "extra": 1}),
    ("/proof/consistency", {"from": 3}),
    ("/proof/consistency", {"from": 4, "to": 3}),
    ("/proof/consistency", {"from": 0, "to": 3}),
    ("/proof/consistency", {"from": 1, "to": 10_000}),
    ("/proof/consistency", {"from": "-1", "to": 3}),
    ("/checkpoint", {"size": "1.5"}),
    ("/checkpoint", {"other": 1}),
    ("/checkpoint", {"cosigned": 1}),  # no witness is configured
    ("/checkpoint", {"cosigned": "-1"}),
]


def test_bad_parameters_are_400_in_the_error_shape(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    _ledger, http, _signer, _hashes = served
    for path, params in BAD_REQUESTS:
        response = http.get(path, params=params, headers=dev(ALICE))
        assert response.status_code == 400, (path, params, response.text)
        error = response.json()["error"]
        assert error["code"] == "malformed_request" and error["message"], (path, params)


def test_without_witnesses_a_checkpoint_has_no_cosignatures_and_no_witness_status(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    _ledger, http, signer, _hashes = served
    note = http.get("/checkpoint").text
    assert http.get("/checkpoint", params={"cosigned": 0}).text == note
    assert [s.name for s in tv.parse_note(note).signatures] == [signer.name]
    response = http.get("/checkpoint/witnesses")  # public, like the keys: 404, not 401
    assert response.status_code == 404 and "no witnesses configured" in response.json()["error"]["message"]


def test_an_inclusion_proof_is_refused_exactly_like_a_read(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, _signer, hashes = served
    seq = max(hashes)
    entry_hash = hashes[seq]
    size = ledger.length()
    read = http.get(f"/entries/{entry_hash}", headers=dev(BOB))
    assert read.status_code == 404
    unknown = "ab" * 32
    as_bob = [
        http.get("/proof/inclusion", params={"hash": entry_hash, "size": size}, headers=dev(BOB)),
        http.get("/proof/inclusion", params={"hash": unknown, "size": size}, headers=dev(BOB)),
        http.get("/proof/inclusion", params={"hash": unknown, "size": size}, headers=dev(ALICE)),
    ]
    for response in as_bob:
        assert (response.status_code, response.content) == (read.status_code, read.content)
    by_seq = http.get("/proof/inclusion", params={"seq": seq, "size": size}, headers=dev(BOB))
    nowhere = http.get("/proof/inclusion", params={"seq": size + 100, "size": size}, headers=dev(ALICE))
    assert by_seq.status_code == 404 and (by_seq.status_code, by_seq.content) == (nowhere.status_code, nowhere.content)
    anonymous = http.get("/proof/inclusion", params={"seq": 1, "size": size})
    assert anonymous.status_code == 401


def test_private_transparency_paths_when_configured(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    ledger = open_ledger(checkpoint={"signers": (signer,), "key_env": None})
    ledger.append(Record(id="x", stream="notes", timestamp=1, payload={}), RequestContext(oid=ALICE, source="dev"))
    server = serve(ledger, ServerSettings(public_paths=("/health",)))
    for path in ("/checkpoint", "/proof/consistency?from=1&to=1", "/checkpoint/key"):
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.get(server.url + path, headers=dev(ALICE)).status_code == 200


def test_remote_ledger_gives_the_in_process_results(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, _signer, hashes = served
    size = ledger.length()
    ctx = RequestContext(oid=ALICE, source="auth.dev")
    with RemoteLedger(str(http.base_url), token=f"dev:{ALICE}") as remote:
        assert remote.checkpoint() == ledger.checkpoint()
        assert remote.checkpoint(size - 2) == ledger.checkpoint(size - 2)  # each commit: an entry and its audit
        with pytest.raises(NotFoundError):
            remote.checkpoint(size + 1)
        seq = max(hashes)
        for target in (seq, hashes[seq]):
            got = remote.inclusion_proof(target, size)
            assert isinstance(got, InclusionProof) and got == ledger.inclusion_proof(target, size, ctx)
        consistency = remote.consistency_proof(3, size)
        assert isinstance(consistency, ConsistencyProof) and consistency == ledger.consistency_proof(3, size, ctx)
    with RemoteLedger(str(http.base_url), token=f"dev:{BOB}") as remote:
        assert remote.inclusion_proof(seq, size) is None
        assert remote.consistency_proof(1, size) == ledger.consistency_proof(1, size)


def test_the_servers_timer_signs_the_last_writes_of_a_quiet_ledger(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    ledger = open_ledger(checkpoint={"signers": (signer,), "key_env": None, "interval": 0.2})
    ctx = RequestContext(oid=ALICE, source="dev")
    serve(ledger, owns_ledger=False)
    issuer = ledger.checkpoint_issuer
    assert issuer is not None
    ledger.append(Record(id="a", stream="notes", timestamp=1, payload={}), ctx)
    ledger.append(Record(id="b", stream="notes", timestamp=1, payload={}), ctx)
    size = ledger.length()
    # Nobody asks for a checkpoint: the lifespan's timer issues the pending one once it is due.
    # (Polled; the generous bound only keeps a broken timer from hanging the suite.)
    for _ in range(1200):
        if issuer.at(size) is not None:
            break
        threading.Event().wait(0.05)
    assert issuer.due_in() is None
    assert tv.verify_checkpoint(issuer.at(size) or "", [signer.verifier]).size == size


def test_batch_inclusion_proofs_are_the_single_ones_in_order_and_refused_alike(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, _signer, hashes = served
    size = ledger.length()
    head = served_checkpoint(http)
    seqs = [size, 1, *sorted(hashes)[:5], size]  # out of order and repeated: answered as asked
    response = http.post("/proof/inclusion", json={"tree_size": size, "seqs": seqs}, headers=dev(ALICE))
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["tree_size"] == size and len(doc["proofs"]) == len(seqs)
    for seq, item in zip(seqs, doc["proofs"], strict=True):
        single = http.get("/proof/inclusion", params={"seq": seq, "size": size}, headers=dev(ALICE)).json()
        assert item == single
        path = [bytes.fromhex(h) for h in item["hashes"]]
        leaf = rfc_leaf(bytes.fromhex(ledger.storage.get_by_seq(seq).hash))
        assert rfc_inclusion_ok(seq - 1, size, leaf, path, head.root_hash)
    # By hash; an unknown hash and an entry the requester may not read are both null, the same bytes.
    known, unknown = hashes[max(hashes)], "ab" * 32
    as_alice = http.post("/proof/inclusion", json={"tree_size": size, "hashes": [known, unknown]}, headers=dev(ALICE))
    assert [p is None for p in as_alice.json()["proofs"]] == [False, True]
    as_bob = http.post("/proof/inclusion", json={"tree_size": size, "hashes": [known, unknown]}, headers=dev(BOB))
    nothing = http.post("/proof/inclusion", json={"tree_size": size, "hashes": [unknown, unknown]}, headers=dev(BOB))
    assert as_bob.status_code == 200 and as_bob.content == nothing.content
    assert as_bob.json()["proofs"] == [None, None]
    by_seq = http.post("/proof/inclusion", json={"tree_size": size, "seqs": [max(hashes)]}, headers=dev(BOB))
    assert by_seq.json()["proofs"] == [None]
    assert http.post("/proof/inclusion", json={"tree_size": size, "seqs": [1]}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"tree_size": 5, "seqs": list(range(1, 5)) * 251},  # 1004 entries, over the limit of 1000
        {"tree_size": 5, "seqs": []},
        {"tree_size": 5, "seqs": [1], "hashes": ["ab" * 32]},
        {"tree_size": 5},
        {"tree_size": 5, "seqs": [0]},
        {"tree_size": 5, "seqs": [6]},
        {"tree_size": 5, "seqs": [True]},
        {"tree_size": 5, "seqs": ["1"]},
        {"tree_size": 0, "seqs": [1]},
        {"tree_size": "5", "seqs": [1]},
        {"tree_size": 10**6, "seqs": [1]},
        {"tree_size": 5, "hashes": ["AB" * 32]},
        {"tree_size": 5, "seqs": [1], "extra": 1},
        [1, 2],
    ],
)
def test_batch_inclusion_proofs_refuse_bad_bodies_with_400(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]], body: object
) -> None:
    _ledger, http, _signer, _hashes = served
    response = http.post("/proof/inclusion", json=body, headers=dev(ALICE))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_request"


def test_batch_inclusion_proof_limit_is_exactly_1000(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, _signer, _hashes = served
    size = ledger.length()
    seqs = [1 + i % size for i in range(1000)]
    response = http.post("/proof/inclusion", json={"tree_size": size, "seqs": seqs}, headers=dev(ALICE))
    assert response.status_code == 200 and len(response.json()["proofs"]) == 1000
    over = http.post("/proof/inclusion", json={"tree_size": size, "seqs": [*seqs, 1]}, headers=dev(ALICE))
    assert over.status_code == 400 and "at most 1000" in over.json()["error"]["message"]


def test_a_query_page_carries_its_proof_when_asked(
    served: tuple[Ledger, httpx.Client, NoteSigner, dict[int, str]],
) -> None:
    ledger, http, _signer, _hashes = served
    head = served_checkpoint(http)
    for size in (head.size, head.size - 7):
        root = ledger.root_hash(size)
        response = http.post("/entries/query", json={"limit": 50, "proof_tree_size": size}, headers=dev(ALICE))
        assert response.status_code == 200, response.text
        doc = response.json()
        covered = [e for e in doc["entries"] if e["seq"] <= size]
        assert doc["proof"]["tree_size"] == size and doc["proof"]["seqs"] == [e["seq"] for e in covered]
        assert len(covered) < len(doc["entries"]) or size == head.size
        leaves = [tv.leaf_hash(bytes.fromhex(e["hash"])) for e in covered]
        hashes = [bytes.fromhex(h) for h in doc["proof"]["hashes"]]
        tv.verify_multi_inclusion(leaves, [e["seq"] - 1 for e in covered], size, hashes, root)
    plain = http.post("/entries/query", json={"limit": 5}, headers=dev(ALICE)).json()
    assert "proof" not in plain
    nothing = http.post("/entries/query", json={"proof_tree_size": head.size}, headers=dev(BOB)).json()
    assert nothing["entries"] == [] and nothing["proof"] == {"tree_size": head.size, "seqs": [], "hashes": []}
    for bad in (0, -1, "5", True, head.size + 1000):
        response = http.post("/entries/query", json={"proof_tree_size": bad}, headers=dev(ALICE))
        assert response.status_code == 400 and response.json()["error"]["field"] == "proof_tree_size", bad
