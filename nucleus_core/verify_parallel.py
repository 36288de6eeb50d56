"""Verifying a large stored chain in several processes.

The seq range ``1..count`` is cut into chunks. Each chunk is checked by a worker process that opens
the storage read-only by itself (:class:`~nucleus_core.storage.SeqRangeStorage`) and runs the
serial :func:`~nucleus_core.verify.verify_rows` over its rows, starting from the ``prev_hash`` of
its first row: hashes, links inside the chunk, the strict parse and the derived columns. The parent
checks what no worker can see, the link across each chunk boundary, and takes the reports in chunk
order, so the outcome is exactly the serial one: a failure in chunk k counts only once chunks
before k passed, and every reason, seq and count reads as the serial verify words it.

Why it is exact, boundary by boundary (chunk k covers ``lo..hi``; chunk k-1 passed, so serial
verification would arrive at row ``lo`` expecting seq ``lo`` after hash H, the last hash of chunk
k-1):

* the worker starts with the same state: expected seq ``lo`` and, when its first row has seq
  ``lo``, that row's ``prev_hash`` as the previous hash; the parent then compares that value with
  H before anything else of the chunk counts (the serial order of checks: seq, then link);
* a first row with another seq is reported by the worker as the serial loop does ("entry lo is
  missing ...");
* rows missing at the end of a chunk: the worker, having checked every row up to ``hi``, looks up
  the next stored seq after ``hi`` and words the gap as the serial loop would, or as the serial
  count check when nothing follows; the last chunk reads to the end of the stream and runs the
  count check itself.

Memory stays constant (each worker streams its chunk; the parent holds one small result per
chunk). Workers are fresh interpreters (``spawn`` in :mod:`multiprocessing`'s terms: a process
that holds database connections and threads is never forked), started with :mod:`subprocess`
rather than a multiprocessing context because those re-run the caller's main script in every
worker, which breaks any script that opens a ledger outside an ``if __name__ == "__main__"``
guard. Tasks and answers travel pickled over the workers' stdin and stdout.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import cast

import attrs

from .errors import StorageError
from .hashing import GENESIS_HASH
from .records import appender_problem
from .storage import SeqRangeStorage
from .verify import START_STATE, ChainState, VerificationReport, transition_problem, verify_rows

DEFAULT_PARALLEL_MIN_ENTRIES = 200_000
"""Below this many entries a ledger verifies in its own process: starting a worker (a fresh
interpreter importing Nucleus and the storage plugin) costs about as much as verifying some
100,000 entries."""

MAX_DEFAULT_WORKERS = 4
"""Workers when none are configured: ``min(usable CPUs, 4)``."""

MIN_CHUNK = 20_000
"""Fewest entries per chunk (opening the storage in a worker costs a few milliseconds)."""

CHUNKS_PER_WORKER = 4
"""Chunks per worker: enough that a slow chunk does not leave the other workers idle for long."""


def default_workers() -> int:
    """``min(CPUs this process may run on, 4)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def available() -> bool:
    """True when worker processes can be started: this interpreter has a program to run again
    (not so in some embedded or frozen interpreters, which then verify serially)."""
    return bool(sys.executable)


def chunk_bounds(count: int, workers: int, chunk_size: int | None = None) -> list[tuple[int, int | None]]:
    """``(lo, hi)`` seq ranges covering ``1..count``; the last one has ``hi`` None (to the end)."""
    size = chunk_size or max(MIN_CHUNK, -(-count // (workers * CHUNKS_PER_WORKER)))
    bounds: list[tuple[int, int | None]] = [(lo, lo + size - 1) for lo in range(1, max(count, 1) + 1, size)]
    bounds[-1] = (bounds[-1][0], None)
    return bounds


ChunkResult = tuple[
    tuple[int, object] | None, VerificationReport | None, ChainState | None, ChainState | None
]
"""What a worker returns: ``(seq, prev_hash)`` of its chunk's first row (None: no row), the
report of its rows (None: the first row's prev_hash is not a hash, so it cannot link), the
``(version, committed_at)`` the first row must not go back from the previous chunk's (None when
its version columns are malformed, which the report names) and that of the chunk's last row (None
unless the report is ok)."""


def _state_of(row: tuple[object, ...]) -> ChainState | None:
    """The chain state of a row when its version columns are well formed enough to compare with the
    entry before it, in the order the serial loop checks them; else None (the worker's report says why)."""
    version, committed = row[6], row[9]
    if version == 1 and type(version) is int:
        return START_STATE
    if version == 2 and type(version) is int and appender_problem(committed, row[7], row[8]) is None:
        return (2, cast(int, committed))
    return None


def check_chunk(
    opener: Callable[[], SeqRangeStorage], ledger_id: str, lo: int, hi: int | None, count: int
) -> ChunkResult:
    """Verify the entries ``lo..hi`` (``hi`` None: to the end) in this process. See the module text."""
    storage = opener()
    storage.open(ledger_id, read_only=True, create=False)
    try:
        rows = storage.iter_entry_rows(lo, hi)
        first_row = next(rows, None)
        first: tuple[int, object] | None = None
        start = GENESIS_HASH
        first_state: ChainState | None = None
        if first_row is not None:
            first = (first_row[0], first_row[2])
            first_state = _state_of(first_row)
            if lo > 1 and first_row[0] == lo:
                start = first_row[2]
                if type(start) is not str or len(start) != 64 or not _is_lower_hex(start):
                    return first, None, None, None  # cannot equal the verified hash before it: the parent says so
            rows = itertools.chain((first_row,), rows)
        # The first row's state is compared with the previous chunk's by the parent.
        report = verify_rows(
            ledger_id, rows, expected_count=count if hi is None else None, first_seq=lo, start_hash=start,
            start_state=first_state or START_STATE,
        )
        if report.ok and hi is not None and report.entries_checked < hi:
            # Rows missing at the end of the chunk: word it as the serial loop does at the next row.
            gap = report.entries_checked + 1
            after = next(storage.iter_entry_rows(hi + 1, None), None)
            if after is not None:
                reason = f"entry {gap} is missing (next stored entry is {after[0]})"
            else:
                reason = f"storage counts {count} entries but the chain has {gap - 1}"
            report = VerificationReport(
                ok=False, entries_checked=gap - 1, first_bad_seq=gap, reason=reason, head_hash=report.head_hash
            )
        last_state: ChainState | None = None
        if report.ok and report.entries_checked >= lo:
            last_row = next(storage.iter_entry_rows(report.entries_checked, report.entries_checked), None)
            last_state = _state_of(last_row) if last_row is not None else None
        return first, report, first_state, last_state
    finally:
        storage.close()


def _is_lower_hex(text: str) -> bool:
    try:
        return bytes.fromhex(text).hex() == text
    except ValueError:
        return False


_BOOT = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
    "from nucleus_core.verify_parallel import _serve; _serve()"
)
"""A worker's program: take the parent's import path, then serve chunks (see :func:`_serve`)."""


def _serve() -> None:
    """A worker's loop: read pickled ``(opener, ledger_id, lo, hi, count)`` tasks from stdin until it
    closes, answer each with a pickled ``("ok", ChunkResult)`` or ``("error", exception)``."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed in this process must not land in the answer stream
    while True:
        try:
            task = pickle.load(stdin)  # noqa: S301 - written by the parent process that started this one
        except EOFError:
            return
        try:
            answer: tuple[str, object] = ("ok", check_chunk(*task))
        except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
            answer = ("error", err)
        try:
            data = pickle.dumps(answer)
        except Exception as err:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps(("error", RuntimeError(f"{type(err).__name__} in a verify worker: {answer[1]}")))
        stdout.write(data)
        stdout.flush()


class _Worker:
    """One worker process, started as a fresh interpreter (never a fork of this process, which may
    hold database connections and threads) and fed one chunk at a time over its stdin."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed program
            [sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:  # not reached: both are pipes
            raise StorageError("verify worker: no pipes")
        self.stdin, self.stdout = stdin, stdout
        pickle.dump(list(sys.path), self.stdin)
        self.stdin.flush()

    def run(self, task: tuple[object, ...]) -> ChunkResult:
        pickle.dump(task, self.stdin)
        self.stdin.flush()
        try:
            kind, value = pickle.load(self.stdout)  # noqa: S301 - written by our own worker process
        except EOFError:
            code = self.process.wait()
            raise StorageError(f"a verify worker process ended unexpectedly (exit code {code})") from None
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()


def verify_parallel(
    ledger_id: str,
    opener: Callable[[], SeqRangeStorage],
    count: int,
    *,
    workers: int,
    chunk_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerificationReport:
    """Verify the chain of ``count`` entries (storage's count, read before) in ``workers`` processes;
    the same report as :func:`~nucleus_core.verify.verify_rows` over the whole stream with
    ``expected_count=count``. ``progress(seq)`` is called as each chunk, in order, has passed.

    One thread per worker process takes the next chunk, hands it over and waits; this thread takes
    the answers in chunk order and stops handing out chunks at the first failure.
    """
    bounds = chunk_bounds(count, workers, chunk_size)
    answers: dict[int, tuple[bool, object]] = {}
    done = threading.Condition()
    next_chunk = iter(range(len(bounds)))
    stop = threading.Event()

    def feed(worker: _Worker) -> None:
        try:
            for index in next_chunk:  # a shared iterator: each chunk goes to one thread
                if stop.is_set():
                    return
                lo, hi = bounds[index]
                try:
                    answer: tuple[bool, object] = (True, worker.run((opener, ledger_id, lo, hi, count)))
                except BaseException as err:  # noqa: BLE001 - re-raised in order by the caller
                    answer = (False, err)
                with done:
                    answers[index] = answer
                    done.notify_all()
                if not answer[0]:
                    return
        finally:
            worker.stop()

    pool = [_Worker() for _ in range(min(workers, len(bounds)))]
    threads = [threading.Thread(target=feed, args=(w,), name="nucleus-verify-feed", daemon=True) for w in pool]
    for thread in threads:
        thread.start()
    try:
        head: str | None = None
        state: ChainState = START_STATE
        report = VerificationReport(ok=True, entries_checked=0)
        for index, (lo, hi) in enumerate(bounds):
            with done:
                while index not in answers:
                    if not any(t.is_alive() for t in threads):
                        raise StorageError("verify workers stopped before every chunk was checked")
                    done.wait(timeout=1.0)
                ok, value = answers.pop(index)
            if not ok:
                raise value  # type: ignore[misc]
            first, chunk_report, first_state, last_state = cast(ChunkResult, value)
            if lo > 1 and first is not None and first[0] == lo and first[1] != head:
                return VerificationReport(
                    ok=False, entries_checked=lo - 1, first_bad_seq=lo,
                    reason=f"prev_hash does not link to entry {lo - 1}", head_hash=head,
                )
            if lo > 1 and first is not None and first[0] == lo and first_state is not None:
                why = transition_problem(lo, state, first_state)
                if why is not None:
                    return VerificationReport(
                        ok=False, entries_checked=lo - 1, first_bad_seq=lo, reason=why, head_hash=head
                    )
            if chunk_report is None:  # not reached: such a first prev_hash cannot equal head (checked above)
                raise StorageError(f"verify worker: no report for the chunk from entry {lo}")
            if not chunk_report.ok:
                if chunk_report.head_hash is None:
                    chunk_report = attrs.evolve(chunk_report, head_hash=head)
                return chunk_report
            report = chunk_report
            state = last_state if last_state is not None else state
            head = report.head_hash if report.head_hash is not None else head
            if progress is not None:
                progress(hi if hi is not None else report.entries_checked)
        return attrs.evolve(report, head_hash=head)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
