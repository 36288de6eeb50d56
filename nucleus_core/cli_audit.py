"""``nucleus audit``, ``nucleus proof get`` and ``nucleus proof verify``: checks for auditors.

``nucleus audit`` checks a ledger it can only read (a database, opened read-only, or a running
``nucleus serve`` at ``--url``) against a checkpoint the auditor kept (:mod:`nucleus_core.audit`).
``nucleus proof get`` writes an entry with its inclusion proof (one JSON file, the *proof bundle*);
``nucleus proof verify`` checks such a file against a signed checkpoint without any access to the
ledger. docs/TRANSPARENCY.md ("Auditing") walks through both and documents the files.

Exit codes beyond the CLI's usual ones (:data:`~nucleus_core.cli.EXIT_CODES`): 11 the checkpoint
given does not verify (malformed, no given key signed it, a bad signature, another origin); 12 the
ledger, or the entry with its proof, does not match the checkpoint (fewer entries, another root, a
failing consistency or inclusion proof); 8 the ledger does not verify on its own (an entry's hash
or link, the stored tree); 10 over ``--url``, the token could not read every entry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .audit import FAILED, AuditReport, audit_reader, audit_storage, open_read_only
from .audit_http import HttpLedgerReader
from .capabilities import CheckpointStorage
from .checkpoint import DEFAULT_ORIGIN_HOST, default_origin
from .cli import (
    EXIT_USAGE,
    CommandError,
    LedgerOptions,
    _echo_json,
    exit_code_for,
    fail,
    ledger_options,
)
from .errors import (
    CheckpointMismatchError,
    CheckpointRefusedError,
    NotFoundError,
    NucleusError,
    ValidationError,
)
from .hashing import is_hash, validate_ledger_id
from .records import entry_row_from_dict, loads_strict
from .tlog_verify import (
    Checkpoint,
    VerificationError,
    leaf_hash,
    parse_checkpoint,
    parse_note,
    verify_checkpoint,
    verify_inclusion,
)
from .tree import InclusionProof
from .trusted_checkpoint import load_verifiers, read_checkpoint_file
from .verify import verify_rows

ENV_TOKEN = "NUCLEUS_TOKEN"  # noqa: S105 - the variable's name, not a token
"""The environment variable ``--token`` falls back to (a bearer token for ``--url``)."""

BUNDLE_KEYS = frozenset({"ledger_id", "entry", "proof"})
"""The keys of a proof bundle (``nucleus proof get``'s output)."""

_STATUS = {"ok": "ok  ", "failed": "FAIL", "skipped": "skip", "warning": "warn"}


def _run(as_json: bool, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(...)``, a Nucleus error turned into the command's error (its exit code)."""
    try:
        return fn(*args, **kwargs)
    except NucleusError as err:
        raise CommandError.from_error(err, as_json=as_json) from err


def _storage_url(target: LedgerOptions, ledger: str | None) -> str:
    """The storage to audit: DB (a URL, or a SQLite file's path), which replaces the configuration
    file's storage; with --ledger (or its variable) as well, a usage error."""
    if ledger is None:
        return target.storage_url
    if click.get_current_context().get_parameter_source("ledger_url") in _GIVEN:
        fail("give the database either as DB or with --ledger, not both", exit_code=EXIT_USAGE, code="usage")
    return ledger if "://" in ledger else f"sqlite:///{Path(ledger).resolve()}"


_GIVEN = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


_token_option = click.option(
    "--token", envvar=ENV_TOKEN, metavar="TOKEN",
    help=f"Bearer token for --url reads of entries and proofs [env {ENV_TOKEN}]; never printed.",
)


# -- nucleus audit -------------------------------------------------------------------------------


@click.command("audit")
@click.argument("ledger", metavar="[DB]", required=False)
@click.option("--checkpoint", "checkpoint_file", required=True, type=click.Path(dir_okay=False),
              help="The signed checkpoint you kept (the note exactly as served).")
@click.option("--key", "vkeys", multiple=True, metavar="VKEY", help="A verifier key of the ledger; repeatable.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="A file of verifier keys, one per line.")
@click.option("--origin", help="The origin the checkpoints must carry (default: the configured [ledger.checkpoint] "
                               "origin, else nucleus.invalid/<ledger id>; with --url: the kept checkpoint's).")
@click.option("--url", help="Audit a running nucleus serve at this http(s) address instead of a database.")
@_token_option
@ledger_options(requester=False)
def audit_command(
    target: LedgerOptions,
    as_json: bool,
    ledger: str | None,
    checkpoint_file: str,
    vkeys: tuple[str, ...],
    key_file: str | None,
    origin: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Check a ledger you can only read against a checkpoint you kept.

    DB is a storage URL (sqlite:///PATH, postgresql://...) or a SQLite file (default: --ledger);
    it is opened read-only and never written, and no plugin is loaded (--plugin is not used).
    Checked: the checkpoint's signature and origin, every entry's hash and link, the stored Merkle
    tree against the entries, that the ledger extends the checkpoint (RFC 9162 consistency proof)
    and that its own latest checkpoint agrees.

    With --url: the server's checkpoint and the consistency proof from the kept size (public: what
    an auditor without read rights can check); with --token, also every entry's hash and link and
    that they rebuild the checkpoints' Merkle root.

    Exit codes: 0 ok; 11 the kept checkpoint does not verify; 12 the ledger does not match it;
    8 the ledger does not verify on its own; 10 (--url) the token cannot read every entry;
    2 usage; 3 configuration (keys, files); 6 no such ledger; 9 storage or server unreachable.
    """
    given = click.get_current_context().get_parameter_source
    if url is not None and (ledger is not None or given("ledger_url") in _GIVEN):
        fail("give either a database (DB, --ledger) or --url, not both", exit_code=EXIT_USAGE, code="usage")
    if url is None and token is not None and given("token") == _GIVEN[0]:
        fail("--token goes with --url", exit_code=EXIT_USAGE, code="usage")
    verifiers = _run(as_json, load_verifiers, vkeys, key_file)
    note = _run(as_json, read_checkpoint_file, checkpoint_file)
    if url is not None:
        reader = _run(as_json, HttpLedgerReader, url, token=token)
        # The ledger id (part of every entry hash) is the server's: a wrong one fails every hash.
        report = _run(as_json, audit_reader, reader, kept_note=note, verifiers=verifiers, origin=origin)
    else:
        storage_url = _storage_url(target, ledger)
        expected = origin or target.checkpoint.get("origin") or default_origin(target.ledger_id)
        # No plugin is loaded (an auditor needs the core and the storage's distribution only): the
        # backend is the entry point named after the URL's scheme, as for 'nucleus backup'.
        storage = _run(as_json, open_read_only, storage_url, target.ledger_id, target.storage_options)
        try:
            report = _run(as_json, _audit_with_progress, storage, target.ledger_id, note, verifiers, expected, as_json)
        finally:
            storage.close()
    _show(report, checkpoint_file, as_json)


def _audit_with_progress(
    storage: Any, ledger_id: str, note: bytes, verifiers: Any, origin: str, as_json: bool
) -> AuditReport:
    """:func:`~nucleus_core.audit.audit_storage`, with a progress bar on a terminal."""
    if as_json or not sys.stderr.isatty():
        return audit_storage(storage, ledger_id=ledger_id, kept_note=note, verifiers=verifiers, origin=origin)
    with click.progressbar(length=storage.count(), label="auditing", file=sys.stderr, show_pos=True) as bar:
        done = 0

        def progress(seq: int) -> None:
            nonlocal done
            bar.update(seq - done)
            done = seq

        return audit_storage(storage, ledger_id=ledger_id, kept_note=note, verifiers=verifiers, origin=origin,
                             progress=progress)


def _show(report: AuditReport, checkpoint_file: str, as_json: bool) -> None:
    code = 0 if report.error is None else exit_code_for(report.error)
    if as_json:
        _echo_json({**report.to_dict(), "exit_code": code})
        if code:
            raise click.exceptions.Exit(code)
        return
    name = f"ledger {report.ledger_id!r} at {report.source}" if report.ledger_id else report.source
    click.echo(f"audit of {name} against the checkpoint {checkpoint_file}")
    for check in report.checks:
        where = f" [entry {check.seq}]" if check.seq is not None and check.status == FAILED else ""
        click.echo(f"  {_STATUS.get(check.status, check.status)}  {check.name}: {check.detail}{where}")
    if report.error is None:
        click.echo(f"ok: the ledger ({report.size} entries) extends the kept checkpoint")
        return
    fail(str(report.error), exit_code=code, code=report.error.code)


# -- nucleus proof -------------------------------------------------------------------------------


@click.group("proof")
def proof_group() -> None:
    """Inclusion proofs for auditors: write an entry with its proof, verify one offline."""


@proof_group.command("get")
@click.argument("entry", metavar="SEQ|HASH", required=False)
@click.option("--id", "record_id", metavar="RECORD_ID", help="Name the entry by its record id instead.")
@click.option("--size", type=click.IntRange(min=1),
              help="The tree size of the proof: that of the checkpoint it is checked against "
                   "[default: the ledger's latest checkpoint].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the proof bundle here (default stdout).")
@click.option("--checkpoint-out", type=click.Path(dir_okay=False),
              help="Also write the signed checkpoint issued at that size to this file.")
@click.option("--url", help="Read from a running nucleus serve at this http(s) address instead of a database.")
@_token_option
@ledger_options(requester=True)
def proof_get_command(
    target: LedgerOptions,
    as_json: bool,
    entry: str | None,
    record_id: str | None,
    size: int | None,
    output: str | None,
    checkpoint_out: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Write the entry SEQ (or HASH, or --id RECORD_ID) with its inclusion proof in the tree of
    --size entries, as one JSON file: {"ledger_id", "entry", "proof"} (docs/TRANSPARENCY.md,
    "Auditing"). The entry is read like 'nucleus get' (--as; over --url, with --token), so a proof
    is given only to whoever may read the entry. Over --url name the entry by HASH or --id."""
    if (entry is None) == (record_id is None):
        fail("give the entry as SEQ or HASH, or --id RECORD_ID", exit_code=EXIT_USAGE, code="usage")
    if url is not None:
        if entry is not None and not is_hash(entry):
            fail("over --url, name the entry by its HASH or --id RECORD_ID", exit_code=EXIT_USAGE, code="usage")
        reader = _run(as_json, HttpLedgerReader, url, token=token)
        bundle, note = _run(as_json, _bundle_http, reader, entry, record_id, size, checkpoint_out is not None)
    else:
        by: int | str = entry or ""
        if entry is not None and entry.isascii() and entry.isdigit():
            by = int(entry)
        elif entry is not None and not is_hash(entry):
            fail(f"{entry!r} is neither a seq nor a 64-character hex hash", exit_code=EXIT_USAGE, code="usage")
        ctx = target.context()
        bundle, note = _run(as_json, _bundle_db, target, ctx, by, record_id, size, checkpoint_out is not None)
    text = json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
    if checkpoint_out is not None and note is not None:
        Path(checkpoint_out).write_bytes(note)
    if output is not None and not as_json:
        proof = bundle["proof"]
        click.echo(f"wrote entry {proof['leaf_index'] + 1} with its proof at size {proof['tree_size']} to {output}",
                   err=True)


def _bundle_db(target: LedgerOptions, ctx: Any, by: int | str, record_id: str | None, size: int | None,
               want_note: bool) -> tuple[dict[str, Any], bytes | None]:
    with target.open(verify=False) as ledger:
        if record_id is not None:
            found = ledger.get_by_id(record_id, ctx)
            if found is None:
                raise NotFoundError(f"no entry with record id {record_id!r} is visible to the requester")
            by = found.seq
        store = ledger.storage.checkpoint_store() if isinstance(ledger.storage, CheckpointStorage) else None
        if size is None:
            latest = store.latest() if store is not None else None
            size = latest[0] if latest is not None else ledger.tree_size()
        note = None
        if want_note:
            text = store.get(size) if store is not None else None
            if text is None:
                raise NotFoundError(f"no checkpoint was issued at size {size}")
            note = text.encode("utf-8")
        proof = ledger.inclusion_proof(by, size, ctx)
        if proof is None:
            kind = "seq" if isinstance(by, int) else "hash"
            raise NotFoundError(f"no entry with this {kind} is visible to the requester")
        row = ledger.storage.get_by_seq(proof.leaf_index + 1)
        readable = None if row is None else ledger.get(row.hash, ctx)
        if readable is None:
            raise NotFoundError("the entry is no longer visible to the requester")
        return {"ledger_id": ledger.id, "entry": readable.to_dict(), "proof": proof.to_json()}, note


def _bundle_http(reader: HttpLedgerReader, entry_hash: str | None, record_id: str | None, size: int | None,
                 want_note: bool) -> tuple[dict[str, Any], bytes | None]:
    doc = reader.entry(entry_hash=entry_hash, record_id=record_id)
    seq = entry_row_from_dict(doc, what="the entry the server sent")[0]
    if size is None:
        size = _note_checkpoint(reader.checkpoint(), "the server's checkpoint").size
    note = reader.checkpoint(size) if want_note else None
    proof = reader.inclusion_proof(seq, size)
    return {"ledger_id": reader.ledger_id(), "entry": doc, "proof": proof.to_json()}, note


def _note_checkpoint(note: bytes, what: str) -> Checkpoint:
    """The checkpoint in ``note``, parsed but not verified (only to learn a size)."""
    try:
        return parse_checkpoint(parse_note(note).text)
    except VerificationError as err:
        raise ValidationError(f"{what} is not a checkpoint: {err}") from None


@proof_group.command("verify")
@click.option("--checkpoint", "checkpoint_file", required=True, type=click.Path(dir_okay=False),
              help="The signed checkpoint the entry must be included in.")
@click.option("--key", "vkeys", multiple=True, metavar="VKEY", help="A verifier key of the ledger; repeatable.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="A file of verifier keys, one per line.")
@click.option("--entry", "entry_file", required=True, type=click.Path(dir_okay=False),
              help="A proof bundle ('nucleus proof get'), or an entry as the HTTP API returns it (then --proof).")
@click.option("--proof", "proof_file", type=click.Path(dir_okay=False),
              help="The inclusion proof as GET /proof/inclusion returns it (when --entry is a plain entry).")
@click.option("--ledger-id", help="The ledger's id, part of the entry hash [default: the bundle's, else from a "
                                  "nucleus.invalid/<id> origin].")
@click.option("--origin", help="The origin the checkpoint must carry [default: any, the keys decide].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output; errors become a JSON object on stderr.")
def proof_verify_command(
    checkpoint_file: str,
    vkeys: tuple[str, ...],
    key_file: str | None,
    entry_file: str,
    proof_file: str | None,
    ledger_id: str | None,
    origin: str | None,
    as_json: bool,
) -> None:
    """Check, without any access to the ledger, that an entry is included in a signed checkpoint:
    the checkpoint's signature, the entry's hash recomputed from its fields, a proof for the
    checkpoint's size and the entry's seq, and the RFC 9162 inclusion of the entry's leaf.

    Exit codes: 0 included; 11 the checkpoint does not verify; 12 the entry or its proof does not
    match the checkpoint (a changed field, a changed proof, a proof for another size);
    5 a file is not an entry, a proof or a bundle; 2 usage; 3 keys or files unreadable."""
    verifiers = _run(as_json, load_verifiers, vkeys, key_file)
    note = _run(as_json, read_checkpoint_file, checkpoint_file)
    doc = _run(as_json, _read_json, entry_file, "--entry")
    bundle_id: object = None
    if isinstance(doc, dict) and set(doc) == BUNDLE_KEYS:
        if proof_file is not None:
            fail("--entry is a proof bundle, which holds its proof: no --proof", exit_code=EXIT_USAGE, code="usage")
        entry_doc, proof_doc, bundle_id = doc["entry"], doc["proof"], doc["ledger_id"]
    else:
        if proof_file is None:
            fail("--entry is a plain entry: give its inclusion proof with --proof", exit_code=EXIT_USAGE, code="usage")
        entry_doc, proof_doc = doc, _run(as_json, _read_json, proof_file, "--proof")
    try:
        checkpoint = verify_checkpoint(note, verifiers, origin=origin)
    except VerificationError as err:
        _raise(CheckpointRefusedError(f"the checkpoint {checkpoint_file!r} does not verify: {err}"), as_json)
    row = _run(as_json, entry_row_from_dict, entry_doc, what="--entry")
    proof = _run(as_json, InclusionProof.from_json, proof_doc)
    lid = _run(as_json, _ledger_id_for, ledger_id, bundle_id, checkpoint)
    seq, entry_hash = row[0], row[1]
    result = verify_rows(lid, [row], first_seq=seq, start_hash=row[2])
    if not result.ok:
        _raise(CheckpointMismatchError(
            f"entry {seq} does not verify for ledger {lid!r}: {result.reason} (a field of the entry was changed, "
            "or this is another ledger's entry)", seq=seq), as_json)
    if proof.leaf_index != seq - 1:
        _raise(CheckpointMismatchError(
            f"the proof is for leaf {proof.leaf_index} (entry {proof.leaf_index + 1}), not entry {seq}", seq=seq),
            as_json)
    if proof.tree_size != checkpoint.size:
        _raise(CheckpointMismatchError(
            f"the proof is for the tree of {proof.tree_size} entries, the checkpoint covers {checkpoint.size}: "
            f"get the proof at the checkpoint's size (nucleus proof get {seq} --size {checkpoint.size})", seq=seq),
            as_json)
    try:
        verify_inclusion(leaf_hash(bytes.fromhex(entry_hash)), proof.leaf_index, proof.tree_size,
                         proof.hashes, checkpoint.root_hash)
    except VerificationError as err:
        _raise(CheckpointMismatchError(
            f"entry {seq} is not included in the checkpoint ({checkpoint.origin}, size {checkpoint.size}): {err}",
            seq=seq), as_json)
    record = entry_doc["record"]
    if as_json:
        _echo_json({
            "ok": True, "ledger_id": lid, "seq": seq, "hash": entry_hash,
            "record_id": record.get("id"), "stream": record.get("stream"),
            "checkpoint": {
                "origin": checkpoint.origin, "size": checkpoint.size, "root_hash": checkpoint.root_hash.hex(),
            },
        })
        return
    click.echo(f"ok: entry {seq} ({record.get('stream')}/{record.get('id')}, hash {entry_hash}) is included in "
               f"{checkpoint.origin} at size {checkpoint.size}")


def _raise(error: NucleusError, as_json: bool) -> None:
    raise CommandError.from_error(error, as_json=as_json)


def _read_json(path: str, option: str) -> Any:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ValidationError(f"{option} {path!r} cannot be read ({type(err).__name__})") from None
    return loads_strict(data, what=f"{option} {path!r}")


def _ledger_id_for(given: str | None, bundled: object, checkpoint: Checkpoint) -> str:
    if given is not None:
        return validate_ledger_id(given)
    if bundled is not None:
        if not isinstance(bundled, str):
            raise ValidationError("the bundle's ledger_id is not a string")
        return validate_ledger_id(bundled)
    prefix = f"{DEFAULT_ORIGIN_HOST}/"
    if checkpoint.origin.startswith(prefix):
        return validate_ledger_id(checkpoint.origin[len(prefix):])
    raise ValidationError(f"the ledger id (part of the entry hash) is not known from the origin "
                          f"{checkpoint.origin!r}: give --ledger-id")


COMMANDS: tuple[click.Command, ...] = (audit_command, proof_group)
"""The commands of this module, registered by :mod:`nucleus_core.cli`."""
