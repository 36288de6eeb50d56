"""``nucleus proof get`` writes an entry with its inclusion proof (the proof bundle) and the
checkpoint of that size; ``nucleus proof verify`` checks them with no access to the ledger, and
refuses a changed entry field, a changed proof hash, a proof for another size, a changed
checkpoint byte and a wrong key, each with its exit code. Real subprocesses on a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nucleus_core import Record, RequestContext, create_ledger
from nucleus_core.checkpoint import NoteSigner, default_origin
from nucleus_core.cli import EXIT_CHECKPOINT, EXIT_INVALID, EXIT_MISMATCH, EXIT_NOT_FOUND, EXIT_USAGE

LEDGER = "proved"
SIGNER = NoteSigner.generate(default_origin(LEDGER))
ALICE = "oid:test:user:alice"


def nucleus(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    return subprocess.run([sys.executable, "-m", "nucleus_core", *args], env=clean, capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ctx = RequestContext(oid=ALICE, source="dev")
    config = {"signers": (SIGNER,), "key_env": None, "interval": 0}
    with create_ledger(id=LEDGER, storage=url, checkpoint=config) as ledger:
        for start in range(0, 60, 20):  # checkpoints issued at 20, 40 and 60
            ledger.append_batch([
                Record(id=f"doc-{i}", stream="docs", timestamp=1_763_942_400_000 + i, payload={"i": i, "text": "kept"})
                for i in range(start, start + 20)
            ], ctx)
    return url


def get(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return nucleus("proof", "get", *args, "--ledger", url, "--ledger-id", LEDGER, "--as", ALICE)


def verify(checkpoint: Path, entry: Path, *extra: str, key: str = SIGNER.vkey) -> subprocess.CompletedProcess[str]:
    return nucleus("proof", "verify", "--checkpoint", str(checkpoint), "--key", key, "--entry", str(entry), *extra)


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_bundle_from_proof_get_verifies_offline(ledger_url: str, tmp_path: Path) -> None:
    bundle, checkpoint = tmp_path / "bundle.json", tmp_path / "checkpoint.txt"
    out = get(ledger_url, "17", "--size", "40", "-o", str(bundle), "--checkpoint-out", str(checkpoint))
    assert out.returncode == 0, out.stderr
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    assert set(doc) == {"ledger_id", "entry", "proof"} and doc["ledger_id"] == LEDGER
    assert doc["entry"]["seq"] == 17 and doc["proof"]["leaf_index"] == 16 and doc["proof"]["tree_size"] == 40
    ok = verify(checkpoint, bundle)
    assert ok.returncode == 0, ok.stderr
    origin = default_origin(LEDGER)
    assert f"entry 17 (docs/doc-16, hash {doc['entry']['hash']}) is included in {origin} at size 40" in ok.stdout
    as_json = json.loads(verify(checkpoint, bundle, "--json").stdout)
    assert as_json["ok"] and as_json["seq"] == 17 and as_json["checkpoint"]["size"] == 40
    # The two files the HTTP API answers (an entry, GET /proof/inclusion), without the bundle: the
    # ledger id then comes from the default origin (or --ledger-id).
    entry = write(tmp_path / "entry.json", doc["entry"])
    proof = write(tmp_path / "proof.json", doc["proof"])
    assert verify(checkpoint, entry, "--proof", str(proof)).returncode == 0
    assert verify(checkpoint, entry, "--proof", str(proof), "--ledger-id", LEDGER).returncode == 0
    wrong_id = verify(checkpoint, entry, "--proof", str(proof), "--ledger-id", "other")
    assert wrong_id.returncode == EXIT_MISMATCH and "another ledger's entry" in wrong_id.stderr


def test_proof_get_names_the_entry_by_hash_or_record_id_and_defaults_to_the_latest_checkpoint(
    ledger_url: str, tmp_path: Path
) -> None:
    by_seq = json.loads(get(ledger_url, "5").stdout)
    assert by_seq["proof"]["tree_size"] == 60  # the latest checkpoint's size
    by_hash = json.loads(get(ledger_url, by_seq["entry"]["hash"]).stdout)
    by_id = json.loads(get(ledger_url, "--id", "doc-4").stdout)
    assert by_seq == by_hash == by_id
    assert get(ledger_url, "61", "--size", "60").returncode != 0
    assert get(ledger_url, "--id", "missing").returncode == EXIT_NOT_FOUND
    assert get(ledger_url, "5", "--id", "doc-4").returncode == EXIT_USAGE
    assert get(ledger_url, "not-a-seq").returncode == EXIT_USAGE
    no_cp = get(ledger_url, "5", "--size", "33", "--checkpoint-out", str(tmp_path / "none.txt"))
    assert no_cp.returncode == EXIT_NOT_FOUND and "no checkpoint was issued at size 33" in no_cp.stderr
    assert not (tmp_path / "none.txt").exists()
    no_requester = nucleus("proof", "get", "5", "--ledger", ledger_url, "--ledger-id", LEDGER)
    assert no_requester.returncode == EXIT_USAGE and "--as" in no_requester.stderr


def test_proof_verify_refuses_what_was_changed(ledger_url: str, tmp_path: Path) -> None:
    bundle, checkpoint = tmp_path / "bundle.json", tmp_path / "checkpoint.txt"
    assert get(ledger_url, "17", "--size", "40", "-o", str(bundle), "--checkpoint-out", str(checkpoint)).returncode == 0
    doc = json.loads(bundle.read_text(encoding="utf-8"))

    def changed(name: str, edit: Any) -> Path:
        copy = json.loads(json.dumps(doc))
        edit(copy)
        return write(tmp_path / name, copy)

    # A field of the entry: its hash no longer follows from its fields.
    field = verify(checkpoint, changed("field.json", lambda d: d["entry"]["record"]["payload"].update(text="forged")))
    assert field.returncode == EXIT_MISMATCH and "entry 17 does not verify" in field.stderr
    # The hash itself changed to match nothing, and the fields left: refused the same way.
    hashed = verify(checkpoint, changed("hash.json", lambda d: d["entry"].update(hash="ab" * 32)))
    assert hashed.returncode == EXIT_MISMATCH
    # A proof hash.
    flip = changed("proof-hash.json", lambda d: d["proof"]["hashes"].__setitem__(0, "00" * 32))
    proof_hash = verify(checkpoint, flip)
    assert proof_hash.returncode == EXIT_MISMATCH and "is not included in the checkpoint" in proof_hash.stderr
    # Another leaf index.
    index = verify(checkpoint, changed("index.json", lambda d: d["proof"].update(leaf_index=17)))
    assert index.returncode == EXIT_MISMATCH and "not entry 17" in index.stderr
    # A proof for another tree size than the checkpoint's.
    other = tmp_path / "other-size.json"
    assert get(ledger_url, "17", "--size", "60", "-o", str(other)).returncode == 0
    size = verify(checkpoint, other)
    assert size.returncode == EXIT_MISMATCH
    assert "the proof is for the tree of 60 entries, the checkpoint covers 40" in size.stderr
    assert "--size 40" in size.stderr
    # One byte of the checkpoint.
    note = checkpoint.read_bytes()
    for at in (len(note) // 4, len(note) - 10):
        forged = tmp_path / f"forged-{at}.txt"
        forged.write_bytes(note[:at] + bytes([note[at] ^ 0x01]) + note[at + 1:])
        assert verify(forged, bundle).returncode == EXIT_CHECKPOINT, at
    # Another key.
    wrong = verify(checkpoint, bundle, key=NoteSigner.generate(default_origin(LEDGER)).vkey)
    assert wrong.returncode == EXIT_CHECKPOINT and "no trusted key signed" in wrong.stderr
    # Files that are not what they should be.
    assert verify(checkpoint, write(tmp_path / "junk.json", {"entry": 1})).returncode == EXIT_USAGE  # plain: --proof
    not_json = tmp_path / "not.json"
    not_json.write_text('{"a": 1, "a": 2}', encoding="utf-8")
    assert verify(checkpoint, not_json, "--proof", str(not_json)).returncode == EXIT_INVALID
    bad_proof = changed("bad-proof.json", lambda d: d["proof"].update(hashes=["xyz"]))
    assert verify(checkpoint, bad_proof).returncode == EXIT_INVALID
    both = verify(checkpoint, bundle, "--proof", str(bundle))
    assert both.returncode == EXIT_USAGE
    assert verify(checkpoint, bundle).returncode == 0  # the original still verifies


def test_a_proof_is_a_read_refused_like_nucleus_get(tmp_path: Path) -> None:
    # With access control (ual), a requester who may not read an entry gets no proof of it: the
    # same not-found as 'nucleus get', whether the entry exists or not.
    url = f"sqlite:///{tmp_path / 'acl.db'}"
    admin = "oid:test:user:root"
    config = tmp_path / "nucleus.toml"
    config.write_text(
        f'[ledger]\nid = "{LEDGER}"\nstorage = "{url}"\nadmins = ["{admin}"]\n\n[plugins.ual]\n', encoding="utf-8"
    )
    with create_ledger(id=LEDGER, storage=url, plugins=["ual"], admins=[admin],
                       checkpoint={"signers": (SIGNER,), "key_env": None, "interval": 0}) as ledger:
        entry = ledger.append(Record(id="secret-1", stream="docs", timestamp=1_763_942_400_000, payload={}),
                              RequestContext(oid=admin, source="dev"))
    as_admin = nucleus("proof", "get", str(entry.seq), "--config", str(config), "--as", admin)
    assert as_admin.returncode == 0, as_admin.stderr
    assert json.loads(as_admin.stdout)["entry"]["hash"] == entry.hash
    outsider = "oid:test:user:mallory"
    denied = nucleus("proof", "get", str(entry.seq), "--config", str(config), "--as", outsider)
    absent = nucleus("proof", "get", str(entry.seq + 100), "--size", str(entry.seq), "--config", str(config),
                     "--as", outsider)
    get = nucleus("get", entry.hash, "--config", str(config), "--as", outsider)
    assert denied.returncode == get.returncode == EXIT_NOT_FOUND, (denied.stderr, get.stderr)
    assert denied.stdout == "" and "secret-1" not in denied.stderr
    assert denied.stderr == absent.stderr
