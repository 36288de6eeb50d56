"""The ledger: hash-chained records in named streams, on a pluggable storage backend."""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import pluggy
from blake3 import blake3

from .access import AccessPolicy, AclAdmin, AuthenticatedPolicy, DenyingPolicy
from .auth import TokenRegistry
from .capabilities import DiscardableStorage, MerkleEntryReadStorage, MerkleTreeStorage, ReadOnlyStorage
from .checkpoints import CheckpointConfig, CheckpointIssuer, CheckpointKeys, checkpoint_config
from .context import READ, SYSTEM_CONTEXT, VERIFY, WRITE, RequestContext, require_context, require_scope
from .errors import (
    AccessDeniedError,
    AuthorizationError,
    ConfigurationError,
    DuplicateRecordError,
    IntegrityError,
    LedgerClosedError,
    NotFoundError,
    NucleusError,
    PluginError,
    QueryError,
    ReadOnlyLedgerError,
    RecordTooLargeError,
    RecordValidationError,
    StorageError,
    ValidationError,
)
from .group_commit import (
    DEFAULT_GROUP_MAX_CALLS,
    DEFAULT_GROUP_MAX_ENTRIES,
    DEFAULT_GROUP_WINDOW,
    GroupCommitStats,
    GroupCommitter,
)
from .hashing import (
    FORMAT_VERSION,
    GENESIS_HASH,
    appender_block,
    entry_hash_with_prefix,
    is_hash,
    preimage_header_v2,
    preimage_prefix,
    validate_ledger_id,
)
from .merkle import FoundNodes, MerkleNodeStore, UpperNodeCache, inclusion_keys
from .merkle import consistency_proof as merkle_consistency_proof
from .merkle import inclusion_proof as merkle_inclusion_proof
from .merkle import inclusion_proofs as merkle_inclusion_proofs
from .merkle import multi_inclusion_proof as merkle_multi_inclusion_proof
from .merkle import root_hash as merkle_root_hash
from .modules import LedgerRuntime, ModuleRegistry
from .observe import AccessDenied, Appended, Closed, Observers, StorageFailed, SystemAppended, Verified
from .plugins import (
    ENTRY_POINT_GROUP,
    _entry_points,
    call_each,
    call_registration,
    load_entry_point_plugin,
    new_plugin_manager,
)
from .query import QueryFilters, QueryResult, filters_from, page
from .records import (
    _ID_FORBIDDEN,
    DEFAULT_MAX_RECORD_BYTES,
    Entry,
    Record,
    chained_entry,
    parsed_entry,
    validate_stream,
    validate_user_record_id,
)
from .requester_log import loggable_oid
from .required import (
    KNOWN_STATE_STREAMS,
    RequiredPlugin,
    match_plugins,
    merged,
    missing_plugins_error,
    plugins_record,
    recorded_plugins,
)
from .specs import PluginContext, StorageBackendSpec
from .storage import (
    MemoryStorage,
    SeqRangeStorage,
    StorageBackend,
    StorageQuery,
    WriteTransaction,
    entry_rows,
)
from .subscribe import DEFAULT_POLL_INTERVAL, MAX_POLL_INTERVAL, CommitSignal, Subscription, check_seconds
from .tokens import StatefulTokenParser
from .tree import ConsistencyProof, Frontier, InclusionProof, TreeCheck, extend_tree, tree_storage
from .verify import VerificationReport, verify_rows
from .verify_parallel import DEFAULT_PARALLEL_MIN_ENTRIES, default_workers, verify_parallel
from .verify_parallel import available as parallel_available
from .witnessing import Witnessing, WitnessStatus, cosigned_note

if TYPE_CHECKING:
    from .assembly import LedgerParts
    from .host import PluginLedger

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 10000
"""Most records one ``append_batch`` may carry."""

_canonical_of: Callable[[Record], bytes] = operator.attrgetter("canonical")

DEFAULT_SQLITE_FILE = "nucleus.db"
"""The embedded default: ``sqlite:///./nucleus.db`` in the working directory."""

DEVELOPMENT = "development"
PRODUCTION = "production"


def current_environment(value: str | None = None) -> str:
    """``"development"`` only when ``value`` (or ``NUCLEUS_ENV``) is exactly ``development``;
    anything else, unset included, is production."""
    raw = value if value is not None else os.environ.get("NUCLEUS_ENV")
    return DEVELOPMENT if raw == DEVELOPMENT else PRODUCTION


@attrs.frozen(kw_only=True)
class LedgerConfig:
    """Everything a ledger is opened with.

    ``storage``: a URL (``memory://``, ``sqlite:///path``, ``postgresql://...``), an unopened
    backend (e.g. ``sqlite_storage(path)``) or None for the embedded default. ``plugins``:
    entry-point names (or plugin objects) to enable, nothing else is loaded. ``settings``: per
    plugin / module settings keyed by name. ``verify_on_open``: verify the stored chain when
    opening (default); without it a persistent ledger opens read-only. ``admins``: principal OIDs
    an access-control provider treats as administrators. ``environment``: ``development`` or
    ``production`` (default from ``NUCLEUS_ENV``; unset means production). ``verify_workers``:
    processes that verify a chain of at least ``verify_parallel_min_entries`` entries on storage
    that supports it (SQLite, PostgreSQL; see :mod:`nucleus_core.verify_parallel`); None means
    ``min(CPUs, 4)``, 1 always verifies in this process. Smaller chains are verified serially
    (starting the processes costs more than it saves). ``checkpoint``: how checkpoints are signed
    (a :class:`~nucleus_core.checkpoints.CheckpointConfig` or a mapping of its fields: origin,
    key files, key variable, interval); its keys are read when the ledger opens. ``tree_progress``: called as
    ``(entries done, total)`` while a writable open builds the Merkle tree of entries written
    before it existed (:func:`~nucleus_core.tree.build_tree`; the CLI draws a progress bar).
    ``trusted_checkpoint``: the path of a signed checkpoint kept outside the database; opening
    verifies it with ``trusted_checkpoint_vkeys`` (vkey strings) and/or the keys in
    ``trusted_checkpoint_vkey_file`` (one per line), for ``trusted_checkpoint_origin`` (default:
    the origin of ``checkpoint``, itself by default :func:`~nucleus_core.checkpoint.default_origin`),
    and refuses a stored tree that does not extend it (:mod:`nucleus_core.trusted_checkpoint`).
    ``verify_from_trusted_checkpoint``: opening verifies only what the trusted checkpoint does not
    vouch for (the entries after it, the tree nodes they complete, the stored tree against the
    checkpoint's root), in a time independent of the ledger's size, instead of the whole chain
    (:func:`~nucleus_core.trusted_checkpoint.verify_after_checkpoint`; what it leaves unchecked:
    ``docs/TRANSPARENCY.md``); needs ``trusted_checkpoint``. :meth:`Ledger.verify` (``nucleus
    verify``) still checks everything.
    ``group_commit_max_calls``: most concurrent appends that share one transaction and its commit
    (:mod:`nucleus_core.group_commit`; default 64, 1 turns group commit off);
    ``group_commit_max_entries``: most records such a transaction takes (default 10000; a larger
    call still commits, alone); ``group_commit_window``: at most how long, in seconds (default
    0.001, 0 to 1), the next transaction waits for the calls that were in flight with the last one
    to queue again (a lone writer never waits).
    ``rebuild_state``: the rebuild mode, for finishing an import
    (:func:`~nucleus_core.importing.finish_import`) or a deliberate rebuild: the plugins that keep
    state derived from the chain (``ledger.rebuilding``) build it from the chain, logged, instead of
    refusing a state that does not match it; it also opens a ledger marked as holding an unfinished
    import, which an ordinary open refuses. Needs ``verify_on_open`` (a rebuild writes). A plugin
    that finds state of its own for the ledger that differs from the chain reports it as an ERROR
    naming what it replaces; with ``rebuild_refuses_differences`` (what
    :func:`~nucleus_core.importing.finish_import` sets) it refuses instead (IntegrityError, nothing
    changed): see :func:`~nucleus_core.import_state.rebuild_found_differences`.
    """

    id: str = attrs.field(validator=lambda _i, _a, v: validate_ledger_id(v))
    storage: str | StorageBackend | None = None
    plugins: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    settings: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    verify_on_open: bool = True
    max_record_bytes: int = attrs.field(default=DEFAULT_MAX_RECORD_BYTES)
    admins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    environment: str = attrs.field(default=None, converter=current_environment)
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)
    verify_workers: int | None = attrs.field(default=None)
    verify_parallel_min_entries: int = attrs.field(default=DEFAULT_PARALLEL_MIN_ENTRIES)
    checkpoint: CheckpointConfig = attrs.field(factory=CheckpointConfig, converter=checkpoint_config)
    tree_progress: Callable[[int, int], None] | None = attrs.field(default=None, eq=False)
    trusted_checkpoint: str | None = None
    trusted_checkpoint_vkeys: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    trusted_checkpoint_vkey_file: str | None = None
    trusted_checkpoint_origin: str | None = None
    verify_from_trusted_checkpoint: bool = attrs.field(default=False)
    group_commit_max_calls: int = attrs.field(default=DEFAULT_GROUP_MAX_CALLS)
    group_commit_max_entries: int = attrs.field(default=DEFAULT_GROUP_MAX_ENTRIES)
    group_commit_window: float = attrs.field(default=DEFAULT_GROUP_WINDOW)
    rebuild_state: bool = attrs.field(default=False)
    rebuild_refuses_differences: bool = attrs.field(default=False)

    @rebuild_refuses_differences.validator
    def _check_rebuild_refuses(self, _a: object, value: bool) -> None:
        if type(value) is not bool:
            raise ConfigurationError("rebuild_refuses_differences must be true or false")

    @rebuild_state.validator
    def _check_rebuild(self, _a: object, value: bool) -> None:
        if type(value) is not bool:
            raise ConfigurationError("rebuild_state must be true or false")
        if value and not self.verify_on_open:
            raise ConfigurationError("rebuild_state needs verify_on_open (rebuilding the plugins' state writes)")

    @group_commit_window.validator
    def _check_group_window(self, _a: object, value: float) -> None:
        if type(value) not in (int, float) or not 0 <= value <= 1:
            raise ConfigurationError("group_commit_window must be a number of seconds from 0 to 1")

    @group_commit_max_calls.validator
    def _check_group_calls(self, _a: object, value: int) -> None:
        if type(value) is not int or not 1 <= value <= 10000:
            raise ConfigurationError("group_commit_max_calls must be an integer from 1 (group commit off) to 10000")

    @group_commit_max_entries.validator
    def _check_group_entries(self, _a: object, value: int) -> None:
        if type(value) is not int or not 1 <= value <= 1_000_000:
            raise ConfigurationError("group_commit_max_entries must be an integer from 1 to 1000000")

    @verify_from_trusted_checkpoint.validator
    def _check_from_checkpoint(self, _a: object, value: bool) -> None:
        # attrs runs validators once every field is set: trusted_checkpoint is readable here.
        if type(value) is not bool:
            raise ConfigurationError("verify_from_trusted_checkpoint must be true or false")
        if value and self.trusted_checkpoint is None:
            raise ConfigurationError(
                "verify_from_trusted_checkpoint needs trusted_checkpoint (the signed checkpoint kept outside "
                "the database that the entries before it are taken from)"
            )

    @verify_workers.validator
    def _check_workers(self, _a: object, value: int | None) -> None:
        if value is not None and (type(value) is not int or not 1 <= value <= 64):
            raise ConfigurationError("verify_workers must be None or an integer from 1 to 64")

    @verify_parallel_min_entries.validator
    def _check_parallel_min(self, _a: object, value: int) -> None:
        if type(value) is not int or value < 1:
            raise ConfigurationError("verify_parallel_min_entries must be a positive integer")

    @max_record_bytes.validator
    def _check_max(self, _a: object, value: int) -> None:
        if type(value) is not int or not 64 <= value <= 64 * 1024 * 1024:
            raise ConfigurationError("max_record_bytes must be an integer from 64 to 64 MiB")


def create_ledger(**kwargs: Any) -> Ledger:
    """Open a ledger, creating its storage and the ledger when they do not exist yet. Keyword
    arguments are the fields of :class:`LedgerConfig`. A ledger that then fails to open leaves
    nothing behind that this call created (file, tables, the ledger's registration).

    The ledger is a context manager; leaving the block closes it.
    """
    from .assembly import LedgerBuilder  # it builds a Ledger, so it imports this module

    return LedgerBuilder(_config(kwargs), create=True).build()


def open_ledger(**kwargs: Any) -> Ledger:
    """Open an existing ledger; never creates storage or a ledger. Keyword arguments are the fields of
    :class:`LedgerConfig`. Storage that does not exist or does not hold the ledger raises
    :class:`~nucleus_core.errors.LedgerNotFoundError`, which lists the ledger ids it holds."""
    from .assembly import LedgerBuilder

    return LedgerBuilder(_config(kwargs), create=False).build()


def release_plugin(name: str, *, context: RequestContext, **kwargs: Any) -> list[RequiredPlugin]:
    """Release the plugin ``name`` (its entry point or spec name) from the plugins an existing ledger
    requires: an operator's decision, recorded in the chain (a ``_ledger`` record listing the rest,
    the released plugins and the requester) and logged. The ledger opens for this without that
    plugin (and must not enable it); every other required plugin must be enabled as usual. Keyword
    arguments are those of :func:`open_ledger`. Returns the plugins released."""
    ctx = require_scope(context, WRITE)
    from .assembly import LedgerBuilder

    with LedgerBuilder(_config(kwargs), create=False, release=name).build() as ledger:
        return ledger._release(name, ctx)


def _config(kwargs: dict[str, Any]) -> LedgerConfig:
    try:
        return LedgerConfig(**kwargs)
    except TypeError as err:
        raise ConfigurationError(str(err)) from None


def _resolve_storage_url(url: str | None) -> str:
    if url is None:
        return f"sqlite:///{DEFAULT_SQLITE_FILE}"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"storage must be a URL such as memory://, sqlite:///path or postgresql://...; got {url!r}"
        )
    return url


def plugin_context(config: LedgerConfig, storage: StorageBackend, name: str) -> PluginContext:
    """The context handed to the factory of the plugin or module called ``name``."""
    return PluginContext(
        ledger_id=config.id,
        environment=config.environment,
        settings=dict(config.settings.get(name, {})),
        storage=storage,
    )


def storage_for_url(
    url: str | None,
    options: Mapping[str, Any] | None = None,
    *,
    plugin_manager: pluggy.PluginManager | None = None,
) -> StorageBackend:
    """The storage backend for ``url`` (None: the embedded default SQLite file), built but not
    opened: what a ledger opening that URL would use, found the same way (a backend that a plugin
    of ``plugin_manager`` registers for the scheme, else the entry point the scheme names, and only
    it). No ledger plugin is loaded and nothing is connected to, so tools that work on the storage
    alone (``nucleus backup`` and ``restore``) need neither the ledger's plugins nor their secrets.
    ``options``: the backend's storage options (``storage_options`` of :func:`create_ledger`)."""
    default = url is None
    url = _resolve_storage_url(url)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryStorage(url)
    pm = plugin_manager if plugin_manager is not None else new_plugin_manager()
    specs = [s for s, _, _ in call_registration(pm, "nucleus_register_storage_backends", StorageBackendSpec)]
    matching = [s for s in specs if scheme in s.schemes]
    if not matching:
        # The storage URL names its backend: load the entry point named after its scheme (and only
        # it). A storage distribution declares one per scheme it serves, so the core knows no
        # backend and no alias (docs/PLUGINS.md, "Entry points").
        ep_name = scheme
        available = _entry_points(ENTRY_POINT_GROUP)
        if ep_name not in available:
            what = "the embedded default (SQLite)" if default else f"storage {scheme}://"
            raise ConfigurationError(
                f"{what} needs a storage plugin for {scheme}:// that is not installed: install the "
                f"distribution declaring the {ENTRY_POINT_GROUP!r} entry point {ep_name!r} "
                "(the plugin guide, docs/PLUGINS.md, lists the project's storage backends)"
            )
        load_entry_point_plugin(pm, ep_name, available=available)
        specs = [s for s, _, _ in call_registration(pm, "nucleus_register_storage_backends", StorageBackendSpec)]
        matching = [s for s in specs if scheme in s.schemes]
        if not matching:
            raise PluginError(f"registers no storage backend for {scheme}://", plugin_name=ep_name)
    if len(matching) > 1:
        raise ConfigurationError(f"several storage backends claim {scheme}://: {', '.join(s.name for s in matching)}")
    try:
        backend: object = matching[0].factory(url, dict(options or {}))
    except NucleusError:
        raise
    except (ValueError, TypeError, OSError) as err:
        raise ConfigurationError(f"storage {matching[0].name}: {err}") from err
    if not isinstance(backend, StorageBackend):
        raise PluginError("storage factory did not return a StorageBackend", plugin_name=matching[0].name)
    return backend


class Ledger:
    """A verifiable ledger. Create it with :func:`create_ledger`.

    Thread-safe: appends are serialized, and those that arrive while a commit is in flight share
    the next transaction (group commit, :mod:`nucleus_core.group_commit`); reads may run concurrently.
    """

    def __init__(self, parts: LedgerParts) -> None:
        """A ledger from complete parts: :class:`~nucleus_core.assembly.LedgerBuilder` makes them
        (open it with :func:`create_ledger` or :func:`open_ledger`)."""
        config = parts.config
        self.config = config
        self.id = config.id
        self._lock = threading.RLock()
        self._closed = False
        self._prefix = preimage_prefix(config.id)
        self._prefix_v2 = preimage_prefix(config.id, 2)
        # The entry format this ledger writes: always FORMAT_VERSION; tests and fixture generation
        # set 1 to write the entries of a ledger from before the appender was bound (a version-1 chain).
        self._format_version = FORMAT_VERSION
        self._read_only = parts.read_only
        self.plugin_manager: pluggy.PluginManager = parts.plugin_manager
        self._storage = parts.storage
        self._registry = parts.modules
        self._policy = parts.policy
        self.token_parsers = parts.token_parsers
        self.auth: TokenRegistry = parts.auth
        self.checkpoint_signing: CheckpointKeys = parts.checkpoint_signing
        """The checkpoint origin and signing keys (none configured: no signers)."""
        self.checkpoint_issuer: CheckpointIssuer | None = parts.checkpoints
        """Issues and keeps the signed checkpoints (None: no signing key, or storage without a tree
        or checkpoints); a server calls its ``flush()`` when ``due_in()`` says so."""
        self.witnessing: Witnessing | None = parts.witnessing
        """Submits the checkpoints to the configured witnesses and keeps their cosignatures (None:
        no witness configured, or a read-only ledger); :mod:`nucleus_core.witnessing`."""
        self.observers = Observers(past=() if parts.verified is None else (parts.verified,))
        """Who is told what this ledger does (appends, denials, verification (the run on open too),
        checkpoints, storage errors; its token parsers, witnesses and HTTP server report here too):
        :mod:`nucleus_core.observe`."""
        self.auth.observers = self.observers
        for emitter in (self.checkpoint_issuer, self.witnessing):
            if emitter is not None:
                emitter.observers = self.observers
        # The required plugins as last read from the chain, and the head seq at that read: each write
        # re-reads them (inside its transaction) when another writer moved the head since.
        required = parts.required
        self._enabled_required = required.enabled
        self._required: tuple[tuple[RequiredPlugin, ...], bool] = (required.recorded, required.from_record)
        self._required_at = required.at
        self._discard_on_close = False
        self._finalizer: weakref.finalize[Any, Any] | None = None
        # Only bench/ switches it off: the same build without the tree, as the baseline of its cost.
        self._keep_tree = True
        self._tree_storage = tree_storage(self._storage)
        # Reads an inclusion proof by seq and its entry together (one round trip), when it can.
        self._entry_and_nodes = (
            self._storage if self._tree_storage is not None and isinstance(self._storage, MerkleEntryReadStorage)
            else None
        )
        self._tree_size_seen = 0  # the largest tree size read so far: trees only grow (_tree_sizes)
        # The upper levels of the tree, read by every proof (merkle.UpperNodeCache; cleared when the
        # stored tree is found smaller than it was, see _tree_read). None kept over storage in memory.
        self._node_cache = UpperNodeCache(max_nodes=(1 << 16) if self._storage.persistent else 0)
        self._group = (
            GroupCommitter(
                self, max_calls=config.group_commit_max_calls, max_entries=config.group_commit_max_entries,
                window=config.group_commit_window,
            )
            if config.group_commit_max_calls > 1 else None
        )
        # The Merkle frontier after this ledger's last committed write: the next append extends it
        # without reading it back while it is still the stored tree's (extend_tree checks that).
        self._frontier: Frontier | None = None
        # Wakes subscriptions after each commit of this process (nucleus_core.subscribe).
        self._commits = CommitSignal()

    def _opened(self, *, discard_on_failure: bool) -> None:
        """The last step of opening (:class:`~nucleus_core.assembly.LedgerBuilder`), once the modules
        started: stop them and close the storage at garbage collection or exit, then tell the
        plugins. A plugin failing there closes the ledger (removing what a creating open created)."""
        self._finalizer = weakref.finalize(self, _shutdown, self._registry, self._storage, self.witnessing)
        try:
            self.plugin_manager.hook.nucleus_ledger_opened(ledger=self)
        except Exception:
            self._discard_on_close = discard_on_failure
            self.close()
            raise
        if self.witnessing is not None:
            self.witnessing.start()

    # construction ------------------------------------------------------------------------
    def plugin_context(self, name: str) -> PluginContext:
        """The context handed to the factory of the plugin or module called ``name``."""
        return plugin_context(self.config, self._storage, name)

    def _plugins_record(self, chain: _PendingChain) -> tuple[RequiredPlugin, ...] | None:
        """Inside a write transaction: add to ``chain`` the ``_ledger`` record (none when the chain's
        newest record lists every enabled plugin already); returns the list it records (None: no
        record). The newest record is re-read when another writer moved the head since the last
        read; a write is refused when it names a plugin this ledger has not enabled (another process
        put the ledger under it). Reads never get here: only writes, and the opening of a new ledger,
        record plugins."""
        if not self._storage.persistent:
            return None
        seq = chain.seq
        recorded, from_record = self._required
        if seq != self._required_at:
            recorded, from_record = recorded_plugins(self._storage)
        keys = {p.key for p in self._enabled_required}
        missing = [p for p in recorded if p.key not in keys]
        if missing:
            raise missing_plugins_error(self.id, missing, recorded=from_record, writing=True)
        if keys <= ({p.key for p in recorded} if from_record else set()):
            self._required, self._required_at = (recorded, from_record), seq
            return None
        plugins = merged(recorded, self._enabled_required)
        chain.add([plugins_record(plugins, seq=seq + 1, timestamp=time.time_ns() // 1_000_000)])
        return tuple(plugins)

    def _plugins_written(self, entries: Sequence[Entry], plugins: tuple[RequiredPlugin, ...] | None) -> None:
        """After a commit: what this ledger now knows of the chain's required plugins."""
        if plugins is not None:
            self._required = (plugins, True)
        if entries:
            self._required_at = entries[-1].seq

    def _pending(self, tx: WriteTransaction, ctx: RequestContext) -> _PendingChain:
        """The chain of one write transaction: its entries are appended by ``ctx``'s principal."""
        if self._format_version == 1:
            return _PendingChain(tx, self._prefix, None)
        return _PendingChain(tx, self._prefix_v2, ctx)

    @contextlib.contextmanager
    def _chain_write(self, ctx: RequestContext) -> Iterator[tuple[WriteTransaction, _PendingChain]]:
        """One storage write transaction and the chain it adds, appended by ``ctx``'s principal.
        Every path that writes entries goes through here, so that the Merkle tree's new nodes are
        written in the same transaction as the entries they cover, before it commits."""
        frontier = None
        with self._storage.write() as tx:
            chain = self._pending(tx, ctx)
            if chain.seq < self._tree_size_seen:
                self._saw_tree_size(chain.seq)  # the chain is shorter than a tree read before
            yield tx, chain
            if self._tree_storage is not None and self._keep_tree:
                frontier = extend_tree(self._tree_storage, tx, chain.added, self._frontier)
        if frontier is not None:  # committed: the next write may start from it
            self._frontier = frontier
        if chain.added:
            self._commits.notify()  # committed: subscriptions read the new entries

    def _record_plugins_now(self) -> None:
        with self._lock, self._chain_write(SYSTEM_CONTEXT) as (_tx, chain):
            plugins = self._plugins_record(chain)
        self._plugins_written(chain.added, plugins)

    def _release(self, name: str, ctx: RequestContext) -> list[RequiredPlugin]:
        """Write the ``_ledger`` record without the plugins ``name`` matches (see :func:`release_plugin`)."""
        with self._lock:
            self._check_writable()
            with self._chain_write(ctx) as (_tx, chain):
                recorded, _ = recorded_plugins(self._storage)
                released = match_plugins(recorded, name)
                if not released:
                    listed = ", ".join(f"{p.plugin or p.name}" for p in recorded) or "none"
                    raise ConfigurationError(
                        f"ledger {self.id!r} does not require a plugin named {name!r} (it requires: {listed}); "
                        "nothing was written"
                    )
                keys = {p.key for p in self._enabled_required}
                if any(p.key in keys for p in released):
                    raise ConfigurationError(
                        f"plugin {name!r} is enabled: release it with a configuration that does not enable it; "
                        "nothing was written"
                    )
                gone = {p.key for p in released}
                kept = [p for p in recorded if p.key not in gone]
                record = plugins_record(
                    kept, seq=chain.seq + 1, timestamp=time.time_ns() // 1_000_000, released=released, by=ctx.oid
                )
                entries = chain.add([record])
        self._plugins_written(entries, tuple(kept))
        log.warning(
            "ledger %r: %s released plugin(s) %s; the chain no longer requires them (seq %d)",
            self.id, loggable_oid(ctx.oid), ", ".join(p.plugin or p.name for p in released), entries[-1].seq,
        )
        return released

    # properties ---------------------------------------------------------------------------
    @property
    def storage(self) -> StorageBackend:
        """The storage backend (for plugins that keep their tables beside the ledger)."""
        return self._storage

    @property
    def modules(self) -> ModuleRegistry:
        """This ledger's module registry."""
        return self._registry

    @property
    def runtime(self) -> LedgerRuntime:
        """A read-only view of the modules: list and get only."""
        return self._registry.runtime()

    @property
    def policy(self) -> AccessPolicy:
        """The access policy in force (the ACL provider's, or any-authenticated-requester)."""
        return self._policy

    @property
    def acl(self) -> AclAdmin:
        """The access-control provider's administration API (:class:`~nucleus_core.access.AclAdmin`:
        grant, revoke, check, list; the UAL offers more). Raises :class:`ConfigurationError` when the
        ledger has no access-control provider, or one without that API."""
        policy = self._policy
        if isinstance(policy, AuthenticatedPolicy):
            raise ConfigurationError(
                f"ledger {self.id!r} has no access-control provider; enable one (e.g. plugins=['ual'])"
            )
        if not isinstance(policy, AclAdmin):
            raise ConfigurationError(f"ledger {self.id!r}: its access-control provider offers no grant API")
        return policy

    def group_commit_stats(self) -> GroupCommitStats | None:
        """What group commit did since the ledger opened (:class:`~nucleus_core.group_commit.GroupCommitStats`:
        transactions, calls, entries, the largest group); None when it is off (``group_commit_max_calls=1``)."""
        return self._group.stats() if self._group is not None else None

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def rebuilding(self) -> bool:
        """Opened in the rebuild mode (``rebuild_state``): plugins build their state from the chain."""
        return self.config.rebuild_state

    @property
    def commits(self) -> CommitSignal:
        """Notified after every commit this process makes, closed with the ledger
        (:class:`~nucleus_core.subscribe.CommitSignal`): what wakes :meth:`subscribe`'s iterators and
        the HTTP server's streams."""
        return self._commits

    @property
    def closed(self) -> bool:
        return self._closed

    # lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop modules (each exactly once, errors logged) and close storage. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._commits.close()  # subscriptions end
        # Each plugin is told on its own: one that fails is logged and the others still run.
        for error in call_each(self.plugin_manager, "nucleus_ledger_closing", ledger=self):
            log.error("%s", error, exc_info=error.__cause__)
        if self.witnessing is not None:
            self.witnessing.close()
        if self._discard_on_close and isinstance(self._storage, DiscardableStorage):
            # Opening failed in a plugin's nucleus_ledger_opened: remove what this open created.
            self._registry.stop_all()
            self._storage.discard()
        if self._finalizer is not None:
            self._finalizer()
        else:
            _shutdown(self._registry, self._storage)
        if self.observers:
            self.observers.emit(Closed())

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerClosedError(f"ledger {self.id!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            storage = self._storage
            if isinstance(storage, ReadOnlyStorage) and storage.read_only:
                why = storage.read_only_reason or "its storage refuses writes"
                raise ReadOnlyLedgerError(f"ledger {self.id!r} is read-only: storage {storage.url}: {why}")
            raise ReadOnlyLedgerError(
                f"ledger {self.id!r} was opened without verification and is read-only; "
                "open it with verify_on_open=True to write"
            )

    # writes -------------------------------------------------------------------------------
    def append(self, record: Record, context: RequestContext) -> Entry:
        """Append one record; returns its entry. See :meth:`append_batch`."""
        return self.append_batch([record], context)[0]

    def append_batch(self, records: Sequence[Record], context: RequestContext) -> list[Entry]:
        """Append records atomically, in order: all are committed or none is.

        Refused before anything is written: no requester, a requester without the ``write``
        scope, a record that is not a :class:`Record`, a system stream, an id reserved for system
        streams (starting with ``_``), a record over the size limit, ids repeated in the batch or
        already in the ledger, a module's refusal, access
        control's refusal.
        """
        if not self.observers:
            return self._append_batch(records, context)
        return self._observed_append(Appended, lambda: self._append_batch(records, context))

    def _observed_append(
        self, event: type[Appended] | type[SystemAppended], append: Callable[[], list[Entry]]
    ) -> list[Entry]:
        """``append()``, its outcome told to the observers as ``event`` (and its denial, its
        storage error)."""
        observers = self.observers
        began = time.perf_counter()
        try:
            entries = append()
        except NucleusError as err:
            observers.emit(event(0, time.perf_counter() - began, err.code))
            if isinstance(err, AuthorizationError):
                observers.emit(AccessDenied("append"))
            self._storage_failed("append", err)
            raise
        observers.emit(event(len(entries), time.perf_counter() - began))
        return entries

    def _storage_failed(self, operation: str, err: NucleusError) -> None:
        """Tell the observers of a storage error (a duplicate id is the caller's mistake: not one)."""
        if self.observers and isinstance(err, StorageError) and not isinstance(err, DuplicateRecordError):
            self.observers.emit(StorageFailed(operation, err.code))

    def _append_batch(self, records: Sequence[Record], context: RequestContext) -> list[Entry]:
        ctx = require_scope(context, WRITE)
        self._check_writable()
        batch = self._check_batch(records)
        # A Record's stream and id are valid already: only a leading "_" (system) is left to refuse.
        for record in batch:
            if not record.stream or not record.id or record.stream[0] == "_" or record.id[0] == "_":
                validate_stream(record.stream)
                validate_user_record_id(record.id)
        self._refuse_module_streams(batch)
        try:
            return self._write(batch, ctx, within=None)
        except DuplicateRecordError:
            self._refuse_unreadable_duplicate(batch, ctx)
            raise

    def _refuse_module_streams(self, batch: list[Record]) -> None:
        """A record in the stream of a known first-party module (``asset``, ``token``, ``proof``,
        ``connect_grant``) of a persistent ledger is refused while that module is not enabled: stored
        as plain data it would
        make its ledger require the module (the streams of ledgers without a ``_ledger`` record say
        which plugins they need) and bypass the module's rules."""
        if not self._storage.persistent:
            return
        keys = {p.key for p in self._enabled_required}
        for record in batch:
            owner = KNOWN_STATE_STREAMS.get(record.stream)
            if owner is not None and owner.key not in keys:
                raise PluginError(
                    f"stream {record.stream!r} belongs to the {owner.name!r} module, which this ledger has not "
                    f"enabled: enable it (--plugin {owner.plugin}, plugins=[\"{owner.plugin}\"]) or use another "
                    "stream name; nothing was written",
                    plugin_name=owner.plugin or owner.name,
                    distribution=owner.distribution,
                )

    def append_system(
        self,
        records: Sequence[Record],
        context: RequestContext,
        *,
        within: Callable[[WriteTransaction], None] | None = None,
    ) -> list[Entry]:
        """For plugins: append records to system streams (leading ``_``), calling ``within(tx)`` in the
        same storage transaction before commit. Access control, modules and scopes are not
        consulted: the calling plugin is responsible for its own checks (e.g.
        :func:`~nucleus_core.context.require_scope` with ``grant`` or ``keys`` at its entry points).
        Everything commits together or not at all. Observers are told :class:`~nucleus_core.observe.SystemAppended`."""
        if not self.observers:
            return self._append_system(records, context, within)
        return self._observed_append(SystemAppended, lambda: self._append_system(records, context, within))

    def _append_system(
        self, records: Sequence[Record], context: RequestContext, within: Callable[[WriteTransaction], None] | None
    ) -> list[Entry]:
        ctx = require_context(context)
        self._check_writable()
        batch = self._check_batch(records)
        for record in batch:
            if not record.stream.startswith("_"):
                raise RecordValidationError(f"{record.stream!r} is not a system stream", field="stream")
        return self._write(batch, ctx, within=within, system=True)

    def _refuse_unreadable_duplicate(self, batch: list[Record], ctx: RequestContext) -> None:
        """An id of the batch is stored already. When the requester may not read that entry, a
        ``duplicate_record`` answer would tell her it exists: refuse with the policy's denial
        instead, the very error a requester without the right to write gets (the transaction was
        rolled back already; this is the error path only)."""
        for record in batch:
            row = self._storage.get_by_id(record.id)
            if row is not None and not self._policy.can_read(row, ctx):
                if isinstance(self._policy, DenyingPolicy):
                    raise self._policy.denial(record) from None
                raise AccessDeniedError(f"record {record.id!r}: write access denied") from None

    def _check_batch(self, records: Sequence[Record]) -> list[Record]:
        if isinstance(records, (Record, str, bytes, Mapping)):
            raise ValidationError("append_batch takes a list of Record", field="records")
        batch = list(records)
        if not batch:
            raise ValidationError("a batch needs at least one record", field="records")
        if len(batch) > MAX_BATCH_SIZE:
            raise ValidationError(f"a batch holds at most {MAX_BATCH_SIZE} records, got {len(batch)}", field="records")
        limit = self.config.max_record_bytes
        # The common case in bulk (records of type Record, distinct ids, within the limit); the loop
        # below names what is wrong otherwise.
        if all(type(record) is Record for record in batch):
            ids = {record.id for record in batch}
            if len(ids) == len(batch) and max(map(len, map(_canonical_of, batch))) <= limit:
                return batch
        seen: set[str] = set()
        for i, record in enumerate(batch):
            if not isinstance(record, Record):
                raise ValidationError(f"item {i} is a {type(record).__name__}, not a Record", field="records")
            if record.id in seen:
                raise DuplicateRecordError(record.id)
            seen.add(record.id)
            if record.size > limit:
                raise RecordTooLargeError(
                    f"record {record.id!r} is {record.size} bytes canonical; this ledger allows {limit}", field="record"
                )
        return batch

    def _write(
        self,
        batch: list[Record],
        ctx: RequestContext,
        *,
        within: Callable[[WriteTransaction], None] | None,
        system: bool = False,
    ) -> list[Entry]:
        """The append pipeline, in one exclusive storage transaction. Its stages, in order:

        1. the head is read (:class:`_PendingChain`);
        2. (user appends) the access policy authorizes the batch; modules catch up and validate it;
        3. the ``_ledger`` record, when plugins were newly enabled (:meth:`_plugins_record`);
        4. the batch itself; then ``within(tx)`` (:meth:`append_system`);
        5. (user appends) the audit stage: the policy's records about the batch
           (:meth:`AccessPolicy.after_append <nucleus_core.access.AccessPolicy.after_append>`),
           checked by :meth:`_audit_records`.

        Each stage chains its records after the previous stage's; everything commits together or
        nothing does. After the commit, the modules fold in the batch (:meth:`ModuleRegistry.committed`).
        """
        if self._group is not None and within is None and not system and not self._group.leading_here():
            # Concurrent user appends share one transaction and its commit (nucleus_core.group_commit).
            return self._group.append(batch, ctx)
        with self._lock:
            self._check_writable()
            with self._chain_write(ctx) as (tx, chain):
                entries, plugins = self._stages(tx, chain, batch, ctx, within=within, system=system)
                # On leaving the block, _chain_write writes the Merkle tree's new nodes, then commits.
            self._checkpoint_after_commit()
        self._plugins_written(chain.added, plugins)
        self._registry.committed(entries, ctx)
        return entries

    def _stages(
        self,
        tx: WriteTransaction,
        chain: _PendingChain,
        batch: list[Record],
        ctx: RequestContext,
        *,
        within: Callable[[WriteTransaction], None] | None,
        system: bool,
        catch_up: bool = True,
        record_plugins: bool = True,
    ) -> tuple[list[Entry], tuple[RequiredPlugin, ...] | None]:
        """Stages 2-5 of :meth:`_write` for one call, inside the write transaction: its entries and
        the plugins list it recorded (None: none). A later call of a group commit's transaction
        (:mod:`nucleus_core.group_commit`) skips what an earlier call of it did already: the
        modules' ``catch_up``, recording the plugins."""
        # Record ids already stored are refused by the storage (DuplicateRecordError from
        # ``tx.insert`` or, where the backend writes the rows later, at the latest from the
        # commit: the storage contract), which rolls the whole transaction back: no separate look-up.
        if not system:
            self._policy.authorize_append(batch, ctx, tx)
        # Inside the exclusive transaction, after the head was re-read: modules first fold in
        # entries other writers committed, so validation sees the latest state. A system append
        # (access grants...) validates nothing, but catches up too: after the commit the modules
        # take its entries as following every applied one (ModuleRegistry.committed), which
        # would otherwise skip, for good, what other writers committed before it.
        if catch_up:
            self._registry.catch_up()
        if not system:
            self._registry.validate(batch, ctx)
        # Plugins newly enabled on this ledger are recorded in the same transaction, merged
        # with the chain's newest record; refused if that names a plugin not enabled here.
        plugins = self._plugins_record(chain) if record_plugins else None
        entries = chain.add(batch)
        if within is not None:
            within(tx)
        if not system:
            chain.add(self._audit_records(self._policy.after_append(entries, ctx, tx)))
        return entries, plugins

    def _checkpoint_after_commit(self) -> None:
        """Issue a checkpoint if one is due (:meth:`CheckpointIssuer.after_commit
        <nucleus_core.checkpoints.CheckpointIssuer.after_commit>`). The entries are committed: a
        failure here is logged and the next commit, :meth:`checkpoint` or a server's timer tries again."""
        issuer = self.checkpoint_issuer
        if issuer is None or not self._keep_tree:
            return
        try:
            issuer.after_commit()
        except Exception:
            log.exception("ledger %r: issuing a checkpoint after a commit failed (the entries are committed)", self.id)

    def _audit_records(self, records: Sequence[Record] | None) -> list[Record]:
        """The audit stage's records as the policy returned them (None or none: nothing to add):
        :class:`Record` objects in system streams, each within the size limit, ids not repeated."""
        if not records:
            return []
        out = list(records)
        seen: set[str] = set()
        limit = self.config.max_record_bytes
        for record in out:
            if not isinstance(record, Record) or not record.stream.startswith("_"):
                raise PluginError(
                    f"the access policy's audit stage returned {record!r}, not a Record in a system stream",
                    plugin_name=type(self._policy).__name__,
                )
            if record.id in seen:
                raise DuplicateRecordError(record.id)
            seen.add(record.id)
            if record.size > limit:
                raise RecordTooLargeError(
                    f"audit record {record.id!r} is {record.size} bytes canonical; this ledger allows {limit}",
                    field="record",
                )
        return out

    # reads --------------------------------------------------------------------------------
    def get(self, entry_hash: str, context: RequestContext) -> Entry | None:
        """The entry with this hash, or None when absent or not readable by the requester."""
        ctx = require_scope(context, READ)
        self._check_open()
        if not is_hash(entry_hash):
            raise ValidationError("must be 64 lowercase hex characters", field="hash")
        try:
            row = self._storage.get_by_hash(entry_hash)
        except StorageError as err:
            self._storage_failed("read", err)
            raise
        return self._readable(row, ctx)

    def get_by_id(self, record_id: str, context: RequestContext) -> Entry | None:
        """The entry of this record id, or None when absent or not readable by the requester."""
        ctx = require_scope(context, READ)
        self._check_open()
        if not isinstance(record_id, str) or not record_id:
            raise ValidationError("must be a non-empty string", field="record_id")
        if _ID_FORBIDDEN.search(record_id):
            raise ValidationError("record ids never contain control characters", field="record_id")
        try:
            row = self._storage.get_by_id(record_id)
        except StorageError as err:
            self._storage_failed("read", err)
            raise
        return self._readable(row, ctx)

    def query(self, filters: QueryFilters | Mapping[str, Any] | None, context: RequestContext) -> QueryResult:
        """Entries matching ``filters`` that the requester may read, a page at a time in seq order."""
        ctx = require_scope(context, READ)
        self._check_open()
        parsed = filters_from(filters)
        squery = parsed.to_storage_query()
        try:
            rows = self._policy.query(self._storage, squery, ctx)
        except StorageError as err:
            self._storage_failed("query", err)
            raise
        return page(rows, parsed.limit)

    def _readable(self, row: Entry | None, ctx: RequestContext) -> Entry | None:
        if row is None:
            return None
        if not self._policy.can_read(row, ctx):
            if self.observers:
                self.observers.emit(AccessDenied("read"))
            return None
        return parsed_entry(row)

    def iter_entries(self, context: RequestContext, *, from_seq: int = 1) -> Iterable[Entry]:
        """Every entry the requester may read, in seq order, streamed (for export). The requester
        and its ``read`` scope are checked here, before the first entry is asked for."""
        ctx = require_scope(context, READ)
        self._check_open()
        return self._iter_readable(ctx, from_seq)

    def subscribe(
        self,
        after_seq: int,
        filters: QueryFilters | Mapping[str, Any] | None,
        context: RequestContext,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Subscription:
        """Follow the entries after ``after_seq`` (0: from the start) that match ``filters`` (those of
        :meth:`query` but ``cursor``: ``stream``, ``record_ids``, ``since``, ``until``, and ``limit``
        as the page size, default 100) and that the requester may read: a
        :class:`~nucleus_core.subscribe.Subscription`, an iterator of :class:`Entry` in seq order
        that blocks until the next one is committed, by this process (woken at once) or by another
        (seen within ``poll_interval`` seconds, default 0.2).

        Every page is a query through the access policy, as :meth:`query` runs it, so each entry is
        delivered to exactly the requesters that may read it when its page is read (a grant revoked
        meanwhile takes effect from the next page). The iteration ends after ``timeout`` seconds
        without an entry (None: never), on ``Subscription.close()`` or when the ledger closes. The
        requester, its ``read`` scope and the filters are checked here, before anything is read."""
        ctx = require_scope(context, READ)
        self._check_open()
        if type(after_seq) is not int or after_seq < 0:
            raise ValidationError("must be a non-negative integer (a seq; 0: from the start)", field="after_seq")
        parsed = filters_from(filters)
        if parsed.cursor is not None:
            raise QueryError("a subscription starts after after_seq; it takes no cursor", field="cursor")
        idle = None if timeout is None else check_seconds(timeout, "timeout")
        interval = check_seconds(poll_interval, "poll_interval", most=MAX_POLL_INTERVAL)
        squery = attrs.evolve(parsed.to_storage_query(), limit=parsed.limit)

        def read_page(after: int) -> tuple[list[Entry], int]:
            return self._subscription_page(squery, ctx, after)

        return Subscription(read_page, self._commits, after_seq=after_seq, timeout=idle, poll_interval=interval)

    def _subscription_page(self, squery: StorageQuery, ctx: RequestContext, after: int) -> tuple[list[Entry], int]:
        """The readable entries of ``squery`` after seq ``after`` (at most its limit) and the seq up
        to which the read looked: the head read before the query when the page is not full (every
        entry up to it was considered), else the page's last entry. No query when the head is not
        past ``after``."""
        self._check_open()
        head = self._storage.head()
        top = head.seq if head is not None else 0
        if top <= after:
            return [], after
        rows = self._policy.query(self._storage, attrs.evolve(squery, after_seq=after), ctx)
        entries = list(map(parsed_entry, rows))
        last = entries[-1].seq if entries else after
        return entries, (last if len(rows) >= squery.limit else max(top, last))

    def _iter_readable(self, ctx: RequestContext, from_seq: int) -> Iterable[Entry]:
        for row in self._storage.iter_entries(from_seq):
            if self._policy.can_read(row, ctx):
                yield parsed_entry(row)

    # chain state --------------------------------------------------------------------------
    def length(self) -> int:
        """Number of entries (the seq of the latest entry), as committed in storage now."""
        self._check_open()
        head = self._storage.head()
        return head.seq if head else 0

    def latest_hash(self) -> str | None:
        """Hash of the latest entry, or None for an empty ledger."""
        self._check_open()
        head = self._storage.head()
        return head.hash if head else None

    def checkpoint_keys(self) -> tuple[str, ...]:
        """The verifier keys (vkeys) of the configured checkpoint signing keys, in order: public, what
        verifiers of this ledger's checkpoints are given (empty when no key is configured)."""
        return self.checkpoint_signing.vkeys

    def _issuer(self) -> CheckpointIssuer:
        self._check_open()
        issuer = self.checkpoint_issuer
        if issuer is None:
            if not self.checkpoint_signing.signers:
                raise ConfigurationError(
                    f"ledger {self.id!r} has no checkpoint signing key configured: no checkpoints "
                    "(configure [ledger.checkpoint] key_files or the key variable; "
                    "'nucleus checkpoint keygen' makes one)"
                )
            raise ConfigurationError(f"storage {self._storage.url} keeps no Merkle tree or no checkpoints")
        return issuer

    def checkpoint(self, size: int | None = None, *, cosigned: int | None = None) -> str:
        """A signed checkpoint (C2SP tlog-checkpoint in a signed note), as text, with the witnesses'
        cosignature lines stored for it after the ledger's signatures (c2sp.org/tlog-cosignature).

        Without ``size``: the latest, after issuing one when a write is waiting for one and the
        interval has passed, or when none covers the tree yet (a writable ledger). With ``size``:
        the one issued at that size, :class:`~nucleus_core.errors.NotFoundError` when none was.
        With ``cosigned`` (from 1 to the number of configured witnesses): only a checkpoint that
        that many of them cosigned, the latest such (or the one at ``size``, if it is one);
        :class:`~nucleus_core.errors.NotFoundError` when there is none. ``cosigned`` set to the
        policy's ``witness_quorum`` asks for the latest checkpoint that meets the policy.
        :class:`~nucleus_core.errors.ConfigurationError` when the ledger signs no checkpoints."""
        issuer = self._issuer()
        if size is not None and (type(size) is not int or size < 0):
            raise ValidationError(f"size must be a non-negative integer, not {size!r}", field="size")
        required = self._cosigned_count(cosigned)
        if required:
            witnesses = self.config.checkpoint.witness_vkeys
            store = issuer.cosignature_store
            if store is None:
                raise ConfigurationError(f"storage {self._storage.url} keeps no cosignatures")
            if size is None:
                size = store.latest_cosigned(witnesses, required)
                if size is None:
                    raise NotFoundError(
                        f"no checkpoint of ledger {self.id!r} is cosigned by {required} of its "
                        f"{len(witnesses)} witnesses yet"
                    )
            elif len(set(store.cosignatures(size)).intersection(witnesses)) < required:
                raise NotFoundError(f"no checkpoint cosigned by {required} of the witnesses was issued at size {size}")
        if size is not None:
            note = issuer.at(size)
            if note is None:
                raise NotFoundError(f"no checkpoint was issued at size {size}")
            return self._with_cosignatures(issuer, size, note)
        latest = issuer.latest()
        if not self._read_only and (latest is None or (latest[0] < self.tree_size() and issuer.due_in() is None)):
            # Nothing covers the tree and no write is waiting (entries from before this open, or
            # another process's writes): issue now rather than serve a stale or no checkpoint.
            latest = issuer.issue()
        if latest is None:
            raise NotFoundError(f"no checkpoint of ledger {self.id!r} was issued yet")
        return self._with_cosignatures(issuer, *latest)

    def witness_status(self) -> tuple[WitnessStatus, ...]:
        """What the ledger knows of each configured witness (:class:`~nucleus_core.witnessing.WitnessStatus`,
        in configured order): from its workers on a writable ledger; on a read-only one, the sizes
        stored (it sends nothing). Empty when no witness is configured."""
        self._check_open()
        if self.witnessing is not None:
            return self.witnessing.status()
        witnesses = self.config.checkpoint.witnesses
        if not witnesses:
            return ()
        store = self._issuer().cosignature_store
        sizes = {} if store is None else store.cosigned_sizes()
        return tuple(
            WitnessStatus(
                name=w.name or w.verifier.name, url=w.url, vkey=w.verifier.vkey,
                cosigned_size=sizes.get(w.verifier.vkey, 0), submitted_size=None, last_error=None,
            )
            for w in witnesses
        )

    def _cosigned_count(self, cosigned: int | None) -> int:
        """``cosigned`` checked against the configured witnesses (0: no requirement)."""
        if cosigned is None:
            return 0
        count = len(self.config.checkpoint.witnesses)
        if type(cosigned) is not int or not 0 <= cosigned <= count:
            if not count:
                raise ValidationError(f"ledger {self.id!r} has no witnesses configured", field="cosigned")
            raise ValidationError(
                f"cosigned must be an integer from 0 to {count} (the witnesses configured), not {cosigned!r}",
                field="cosigned",
            )
        return cosigned

    def _with_cosignatures(self, issuer: CheckpointIssuer, size: int, note: str) -> str:
        """``note`` with the cosignatures stored for ``size`` (the configured witnesses' first)."""
        store = issuer.cosignature_store
        if store is None:
            return note
        return cosigned_note(note, store.cosignatures(size), self.config.checkpoint.witness_vkeys)

    def issue_checkpoint(self) -> str:
        """Sign and store the checkpoint of the tree at its current size now (the stored one when
        that size was issued before), regardless of the interval; returns it."""
        issuer = self._issuer()
        self._check_writable()
        return issuer.issue()[1]

    # the Merkle tree ---------------------------------------------------------------------
    def _tree(self) -> MerkleTreeStorage:
        self._check_open()
        tree = self._tree_storage
        if tree is None:
            raise ConfigurationError(f"storage {self._storage.url} keeps no Merkle tree: no roots or proofs")
        return tree

    def tree_size(self) -> int:
        """How many entries (from seq 1) the stored Merkle tree covers: the head's seq, except on a
        ledger opened read-only before its tree was built (see :func:`~nucleus_core.tree.build_tree`)."""
        size = self._tree().merkle_size()
        self._saw_tree_size(size)  # a proof at this size reads no size
        return size

    def _saw_tree_size(self, size: int) -> None:
        """A tree size just read from storage (or a chain head: the tree covers it once committed).
        Trees only grow; one smaller than a size seen before means the database was put back under
        this ledger, and what the node cache holds may be another history's upper nodes: it is
        cleared, and the size seen goes back to this one. (A database put back and grown again by
        another process while this one reads nothing is not seen here: proofs through the cache
        then do not verify against the stored tree's checkpoints, and the next open refuses the
        database against any checkpoint issued before; ``docs/TRANSPARENCY.md``.)"""
        if size < self._tree_size_seen:
            self._node_cache.clear()
            self._tree_size_seen = size
        elif size > self._tree_size_seen:
            self._tree_size_seen = size

    def _tree_sizes(self, tree: MerkleTreeStorage, *sizes: tuple[str, object, int]) -> None:
        """Check each ``(name, value, lowest)``: an integer from ``lowest`` to the tree size.

        A committed tree only grows, so a size at most one already read needs no read (proofs are
        asked at checkpoint sizes, which the ledger read when it issued them): on PostgreSQL that
        is one round trip of the two or three a proof costs. A larger one reads the size again."""
        checked: list[tuple[str, int]] = []
        for name, value, lowest in sizes:
            if type(value) is not int:
                raise ValidationError(f"{name} must be an integer, not {type(value).__name__}", field=name)
            if value < lowest:
                raise ValidationError(f"{name} must be at least {lowest}, not {value}", field=name)
            checked.append((name, value))
        if max(value for _, value in checked) <= self._tree_size_seen:
            return
        self._saw_tree_size(tree.merkle_size())
        self._refuse_beyond(checked)

    def _refuse_beyond(self, sizes: Sequence[tuple[str, int]]) -> None:
        current = self._tree_size_seen
        for name, value in sizes:
            if value > current:
                raise ValidationError(
                    f"{name} {value} is larger than the Merkle tree ({current} entries)"
                    + ("" if current == self.length() else "; open the ledger writable once to build the rest"),
                    field=name,
                )

    @contextlib.contextmanager
    def _tree_read(self, tree: MerkleTreeStorage, **sizes: int) -> Iterator[None]:
        """Around a read of the tree at ``sizes`` checked by :meth:`_tree_sizes` from the size
        already seen: a node missing there means the stored tree is smaller than it was (a database
        put back under a running ledger), so the size is read again and a size beyond it refused as
        a fresh ledger would refuse it; a node missing inside the tree stays an IntegrityError."""
        try:
            yield
        except IntegrityError as err:
            if err.reason != "merkle_node_missing":
                raise
            self._node_cache.clear()
            self._tree_size_seen = tree.merkle_size()  # smaller than the size seen: set, not raised
            self._refuse_beyond(list(sizes.items()))
            raise

    def _nodes(self, tree: MerkleTreeStorage, size: int) -> MerkleNodeStore:
        """The stored nodes of the tree (of at least ``size`` leaves) for a read, through the cache
        of its upper levels."""
        return self._node_cache.over(tree.merkle_store(), size)

    def root_hash(self, size: int | None = None) -> bytes:
        """The RFC 9162 root hash (32 raw bytes) of the tree of the first ``size`` entries (default:
        the whole tree; 0 gives the hash of the empty tree)."""
        tree = self._tree()
        if size is None:
            size = tree.merkle_size()
            self._saw_tree_size(size)
        else:
            self._tree_sizes(tree, ("size", size, 0))
        with self._tree_read(tree, size=size):
            return merkle_root_hash(self._nodes(tree, size), size)

    def inclusion_proof(
        self, seq_or_hash: int | str, tree_size: int, context: RequestContext
    ) -> InclusionProof | None:
        """The RFC 9162 inclusion proof of the entry (by seq, or by its hex hash) in the tree of
        ``tree_size`` entries. A read of that entry: None when it is absent or the requester may not
        read it, exactly as :meth:`get` answers."""
        ctx = require_scope(context, READ)
        tree = self._tree()
        self._tree_sizes(tree, ("tree_size", tree_size, 1))
        if isinstance(seq_or_hash, str):
            if not is_hash(seq_or_hash):
                raise ValidationError("must be 64 lowercase hex characters", field="hash")
            row = self._storage.get_by_hash(seq_or_hash)
        elif type(seq_or_hash) is int:
            if seq_or_hash < 1:
                raise ValidationError(f"seq must be at least 1, not {seq_or_hash}", field="seq")
            if seq_or_hash <= tree_size and self._entry_and_nodes is not None:
                # The entry and the proof's nodes in one read; the nodes are used only once the
                # entry is known to exist and be readable, as below.
                index = seq_or_hash - 1
                cache = self._node_cache
                found, missing = cache.split(inclusion_keys(index, tree_size))
                row, read = self._entry_and_nodes.entry_and_merkle_nodes(seq_or_hash, missing)
                # The access decision of a read, without parsing the record a read would return.
                if row is None or not self._policy.can_read(row, ctx):
                    return None
                cache.keep(read, tree_size)
                found.update(read)
                with self._tree_read(tree, tree_size=tree_size):
                    hashes = merkle_inclusion_proof(FoundNodes(found), index, tree_size)
                return InclusionProof(leaf_index=index, tree_size=tree_size, hashes=tuple(hashes))
            row = self._storage.get_by_seq(seq_or_hash)
        else:
            raise ValidationError("give an entry's seq (an integer) or its hash (hex)", field="seq")
        # Readability first: an entry beyond the tree is refused only to whom may read it (None to
        # others, as for an absent entry).
        if self._readable(row, ctx) is None or row is None:
            return None
        if row.seq > tree_size:
            raise ValidationError(f"entry {row.seq} is not in the tree of {tree_size} entries", field="tree_size")
        with self._tree_read(tree, tree_size=tree_size):
            hashes = merkle_inclusion_proof(self._nodes(tree, tree_size), row.seq - 1, tree_size)
        return InclusionProof(leaf_index=row.seq - 1, tree_size=tree_size, hashes=tuple(hashes))

    def inclusion_proofs(
        self, targets: Sequence[int | str], tree_size: int, context: RequestContext
    ) -> list[InclusionProof | None]:
        """:meth:`inclusion_proof` of each entry of ``targets`` (all seqs, or all hex hashes), in
        order, from one read of the tree nodes they need: None for an entry that is absent or that
        the requester may not read, exactly as :meth:`get` answers. A seq outside ``1..tree_size``
        is refused (:class:`ValidationError`) before any entry is read; so is a readable entry
        found by hash past ``tree_size``, as :meth:`inclusion_proof` refuses it."""
        ctx = require_scope(context, READ)
        tree = self._tree()
        self._tree_sizes(tree, ("tree_size", tree_size, 1))
        items = list(targets)
        by_hash = bool(items) and isinstance(items[0], str)
        for item in items:
            if by_hash:
                if not isinstance(item, str) or not is_hash(item):
                    raise ValidationError("each is 64 lowercase hex characters", field="hashes")
            elif type(item) is not int or not 1 <= item <= tree_size:
                raise ValidationError(f"each is a seq from 1 to the tree size {tree_size}", field="seqs")
        rows = self._rows_of(items, by_hash=by_hash)
        # The access decision of a read, without parsing the record a read would return.
        policy = self._policy
        readable = [row if row is not None and policy.can_read(row, ctx) else None for row in rows]
        for row in readable:
            if row is not None and row.seq > tree_size:
                raise ValidationError(f"entry {row.seq} is not in the tree of {tree_size} entries", field="tree_size")
        found = [row for row in readable if row is not None]
        with self._tree_read(tree, tree_size=tree_size):
            store = self._nodes(tree, tree_size)
            paths = iter(merkle_inclusion_proofs(store, [row.seq - 1 for row in found], tree_size))
        return [
            None if row is None
            else InclusionProof(leaf_index=row.seq - 1, tree_size=tree_size, hashes=tuple(next(paths)))
            for row in readable
        ]

    def multi_inclusion_proof(
        self, entries: Sequence[int | Entry], tree_size: int, context: RequestContext
    ) -> list[bytes] | None:
        """One proof that ``entries`` (seqs, or entries this ledger returned, such as a query page;
        strictly increasing seqs from 1 to ``tree_size``) are in the tree of ``tree_size`` entries:
        their RFC 9162 audit paths with each hash once and those the entries give left out, checked
        by :func:`~nucleus_core.tlog_verify.verify_multi_inclusion` with leaf indices ``seq - 1``
        (about 2 log2(n) hashes for a page of consecutive entries). A read of every one of them
        (an entry given is not read again): None when one is absent or the requester may not read it."""
        ctx = require_scope(context, READ)
        tree = self._tree()
        self._tree_sizes(tree, ("tree_size", tree_size, 1))
        items = list(entries)
        seqs = [item.seq if isinstance(item, Entry) else item for item in items]
        for i, seq in enumerate(seqs):
            if type(seq) is not int or not 1 <= seq <= tree_size:
                raise ValidationError(f"each is a seq from 1 to the tree size {tree_size}", field="seqs")
            if i and seq <= seqs[i - 1]:
                raise ValidationError("the seqs are not strictly increasing", field="seqs")
        to_read = [seq for item, seq in zip(items, seqs, strict=True) if not isinstance(item, Entry)]
        read = iter(self._rows_of(to_read, by_hash=False))
        rows = [item if isinstance(item, Entry) else next(read) for item in items]
        policy = self._policy
        if any(row is None or not policy.can_read(row, ctx) for row in rows):
            return None
        with self._tree_read(tree, tree_size=tree_size):
            return merkle_multi_inclusion_proof(self._nodes(tree, tree_size), [seq - 1 for seq in seqs], tree_size)

    def _rows_of(self, items: Sequence[int | str], *, by_hash: bool) -> list[Entry | None]:
        """The stored row of each hash or seq of ``items`` (None when absent): seqs close together
        (a query page) in one range read, others one by one."""
        storage = self._storage
        if by_hash:
            return [storage.get_by_hash(str(item)) for item in items]
        seqs = [int(item) for item in items]
        if not seqs:
            return []
        low, high = min(seqs), max(seqs)
        if high - low + 1 > 2 * len(seqs) + 16:
            return [storage.get_by_seq(seq) for seq in seqs]
        by_seq = {row.seq: row for row in storage.range(low, high - low + 1)}
        return [by_seq.get(seq) for seq in seqs]

    def consistency_proof(
        self, old_size: int, new_size: int, context: RequestContext | None = None
    ) -> ConsistencyProof:
        """The RFC 9162 consistency proof from the tree of ``old_size`` entries to that of
        ``new_size`` (``1 <= old_size <= new_size <= tree_size()``). It reveals no record content:
        any requester with the ``read`` scope may ask, and so may an anonymous caller (None: the
        HTTP server's public ``/proof/consistency``)."""
        if context is not None:
            require_scope(context, READ)
        tree = self._tree()
        self._tree_sizes(tree, ("old_size", old_size, 1), ("new_size", new_size, 1))
        if old_size > new_size:
            raise ValidationError(f"old_size {old_size} is larger than new_size {new_size}", field="old_size")
        with self._tree_read(tree, old_size=old_size, new_size=new_size):
            hashes = merkle_consistency_proof(self._nodes(tree, new_size), old_size, new_size)
        return ConsistencyProof(first=old_size, second=new_size, hashes=tuple(hashes))

    def has_storage(self) -> bool:
        """True when entries outlive the process (a persistent backend)."""
        return bool(self._storage.persistent)

    def verify(
        self, *, progress: Callable[[int], None] | None = None, context: RequestContext | None = None
    ) -> VerificationReport:
        """Re-check the whole stored chain, streaming, in constant memory. A chain of at least
        ``verify_parallel_min_entries`` entries on storage that supports it is checked in
        ``verify_workers`` processes (:mod:`nucleus_core.verify_parallel`), with the same report.

        ``context``: the requester when one asks on its own behalf (the HTTP ``/verify`` route); it
        needs the ``verify`` scope. Without it the call is the operator's (opening the ledger, the
        CLI, which works on the storage directly)."""
        if context is not None:
            require_scope(context, VERIFY)
        if self._closed:
            raise LedgerClosedError(f"ledger {self.id!r} is closed")
        if not self.observers:
            return self._verify(progress)
        began = time.perf_counter()
        try:
            report = self._verify(progress)
        except NucleusError as err:
            self._storage_failed("verify", err)
            raise
        self.observers.emit(Verified(report.ok, report.entries_checked, time.perf_counter() - began))
        return report

    def _verify(self, progress: Callable[[int], None] | None) -> VerificationReport:
        report = verify_chain(self.config, self._storage, progress=progress)
        if not report.ok:
            return report
        problem = self._policy.check_consistency()
        if problem is not None:
            return attrs.evolve(report, ok=False, reason=f"access control state: {problem}")
        # Token parsers keeping state beside the ledger (API keys) compare it with the chain too.
        for name, parser in self.auth:
            problems = parser.check_consistency() if isinstance(parser, StatefulTokenParser) else ()
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                return attrs.evolve(report, ok=False, reason=f"{name} state: {problems[0]}{more}")
        return report

    def verify_storage(self) -> VerificationReport:
        """:meth:`verify`, then check that storage's head matches the last verified entry."""
        report = self.verify()
        if not report.ok:
            return report
        head = self._storage.head()
        if (head.hash if head else None) != report.head_hash:
            return VerificationReport(
                ok=False,
                entries_checked=report.entries_checked,
                first_bad_seq=(head.seq if head else 1),
                reason="storage head does not match the verified chain",
                head_hash=report.head_hash,
            )
        return report


class _PendingChain:
    """The entries one write transaction adds, chained in order after the head read inside it:
    each stage of an append (:meth:`Ledger._write`) adds its records with :meth:`add`, which
    chains and inserts them.

    With a requester (format version 2) every entry binds its principal, its source and one
    ``committed_at`` for the whole transaction: now, or the head's ``committed_at`` when the clock
    reads earlier, so the times never decrease along the chain. Without one it writes version 1.
    """

    __slots__ = ("_appender", "_committed_at", "_header", "_prefix", "_source", "_tx", "added", "hash", "seq")

    def __init__(self, tx: WriteTransaction, prefix: bytes, ctx: RequestContext | None) -> None:
        head = tx.head()
        self._prefix = prefix
        self._tx = tx
        self.seq = head.seq if head else 0
        self.hash = head.hash if head else GENESIS_HASH
        self.added: list[Entry] = []
        # Version 2: the preimage header's packer and the appender block (bind).
        self._header: tuple[Callable[..., bytes], bytes] | None = None
        self._appender: str | None = None
        self._source: str | None = None
        self._committed_at: int | None = None
        if ctx is not None:
            now = time.time_ns() // 1_000_000
            last = head.committed_at if head is not None else None
            self._committed_at = now if last is None or last < now else last
            self.bind(ctx)

    def bind(self, ctx: RequestContext) -> None:
        """Chain what follows as appended by ``ctx``'s principal (group commit: each call of a
        shared transaction is its own requester's; the ``committed_at`` stays the transaction's)."""
        committed = self._committed_at
        if committed is None:  # format version 1: no appender
            return
        self._appender, self._source = ctx.oid, ctx.source
        block = appender_block(committed, ctx.oid, ctx.source)
        self._header = (preimage_header_v2(self._prefix, block).pack, block)

    def mark(self) -> tuple[int, str, int]:
        """Where the chain stands, for :meth:`reset` (group commit: before a call's savepoint)."""
        return self.seq, self.hash, len(self.added)

    def reset(self, mark: tuple[int, str, int]) -> None:
        """Forget what was added since ``mark`` (its savepoint rolled back)."""
        self.seq, self.hash, added = mark
        del self.added[added:]

    def add(self, records: Sequence[Record]) -> list[Entry]:
        """Chain ``records`` after the entries added so far and insert them; returns their entries."""
        if not records:
            return []
        seq, prev, prefix = self.seq, self.hash, self._prefix
        out: list[Entry] = []
        if self._header is None:
            for record in records:
                seq += 1
                h = entry_hash_with_prefix(prefix, seq, prev, record.canonical)
                out.append(chained_entry(seq, h, prev, record, 1, None, None, None))
                prev = h
        else:
            pack, block = self._header
            appender, source, committed = self._appender, self._source, self._committed_at
            prev_digest = bytes.fromhex(prev)
            append = out.append
            for record in records:
                seq += 1
                canonical = record.canonical
                digest = blake3(pack(prefix, seq, prev_digest, block, len(canonical)) + canonical).digest()
                h = digest.hex()
                append(chained_entry(seq, h, prev, record, 2, appender, source, committed))
                prev, prev_digest = h, digest
        self._tx.insert(out)
        self.seq, self.hash = seq, prev
        self.added.extend(out)
        return out


def verify_chain(
    config: LedgerConfig, storage: StorageBackend, *, progress: Callable[[int], None] | None = None
) -> VerificationReport:
    """Verify the chain ``storage`` holds for the ledger ``config`` describes: in
    ``config.verify_workers`` processes when it has at least ``config.verify_parallel_min_entries``
    entries and the storage supports it (:mod:`nucleus_core.verify_parallel`), else streaming here.
    The chain alone: :meth:`Ledger.verify` then compares the plugins' state with it."""
    tree = tree_storage(storage)
    # The stored tree's size is read before the entries: the check covers no more than they hold.
    check = TreeCheck(storage, tree) if tree is not None else None
    report = verify_stored_entries(config, storage, progress=progress, tree_check=check)
    if not report.ok or check is None:
        return report
    # The stored Merkle tree against the verified entries (in this process, streaming; fed by the
    # serial verification's own pass, else reading the entry hashes now).
    check.feed_all()
    problem = check.finish(report.entries_checked)
    if problem is not None:
        return attrs.evolve(
            report, ok=False, entries_checked=problem.seq - 1, first_bad_seq=problem.seq, reason=problem.reason
        )
    return report


def verify_stored_entries(
    config: LedgerConfig,
    storage: StorageBackend,
    *,
    progress: Callable[[int], None] | None = None,
    tree_check: TreeCheck | None = None,
) -> VerificationReport:
    """The entries' part of :func:`verify_chain`: every hash, link and derived column of the stored
    chain (in ``config.verify_workers`` processes for a long chain on storage that supports it),
    not the Merkle tree (:func:`~nucleus_core.tree.check_tree`, which ``nucleus audit`` reports
    on its own). ``tree_check``: fed the entry hashes when this process reads the entries."""
    count = storage.count()
    workers = config.verify_workers or default_workers()
    opener = None
    if (
        workers > 1
        and count >= config.verify_parallel_min_entries
        and isinstance(storage, SeqRangeStorage)
        and parallel_available()
    ):
        opener = storage.read_only_opener()
    if opener is not None:
        report = verify_parallel(config.id, opener, count, workers=workers, progress=progress)
    else:
        rows = entry_rows(storage, 1)
        report = verify_rows(
            config.id, tree_check.tap(rows) if tree_check is not None else rows, expected_count=count,
            progress=progress,
        )
    return report


def _shutdown(registry: ModuleRegistry, storage: StorageBackend, witnessing: Witnessing | None = None) -> None:
    try:
        if witnessing is not None:
            witnessing.close()  # its workers write cosignatures to the storage: stopped before it closes
        registry.stop_all()
    finally:
        try:
            storage.close()
        except Exception:
            log.exception("closing storage failed")


if TYPE_CHECKING:

    def _ledger_is_a_plugin_ledger(ledger: Ledger) -> PluginLedger:
        """mypy checks here that :class:`Ledger` offers plugins all of :class:`PluginLedger`."""
        return ledger
