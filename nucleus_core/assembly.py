"""Opening a ledger: the one assembly step.

:class:`LedgerBuilder` builds the parts of a ledger in order and hands back a complete
:class:`~nucleus_core.ledger.Ledger`:

1. the plugin manager of the configured plugins, and the storage backend (built, not opened);
2. the storage, opened (creating it or not);
3. the stored chain and its Merkle tree, verified (or, without ``verify_on_open``, a persistent
   ledger is read-only); a ledger marked as holding an unfinished import is refused then (after
   the verification: a tampered chain is reported as such first); a writable open then builds the
   tree of entries written before it existed;
   a configured trusted checkpoint is verified and the stored tree must extend it (with
   ``verify_from_trusted_checkpoint`` that check comes first, and only what the checkpoint does not
   cover is verified: :func:`~nucleus_core.trusted_checkpoint.verify_after_checkpoint`);
4. the plugins the chain requires, checked against the enabled ones (:mod:`.required`);
5. the access policy, the token parsers and their registry;
6. the :class:`~nucleus_core.ledger.Ledger`, from those complete parts;
7. the modules, built and registered with a context naming the ledger; the policy bound to the
   ledger and its state compared with the chain; the modules initialized and started;
8. a new persistent ledger records its plugins; ``nucleus_ledger_opened`` runs.

A failure in steps 2 to 7 stops the modules already started and discards what this open created
(:class:`~nucleus_core.capabilities.DiscardableStorage`) or closes the storage; a failure in a
plugin's ``nucleus_ledger_opened`` closes the ledger, discarding what a creating open created.
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import Iterator

import attrs
import pluggy

from .access import AccessPolicy, AuthenticatedPolicy
from .auth import TokenRegistry, build_token_registry
from .capabilities import CheckpointStorage, CosignatureStore, DiscardableStorage, ReadOnlyStorage
from .checkpoints import CheckpointIssuer, CheckpointKeys
from .errors import ConfigurationError, IntegrityError, NucleusError, PluginError
from .import_state import refuse_unfinished_import
from .ledger import Ledger, LedgerConfig, plugin_context, storage_for_url, verify_chain
from .merkle import consistency_proof as merkle_consistency_proof
from .merkle import root_hash
from .modules import Module, ModuleContext, ModuleRegistry
from .observe import Verified
from .plugins import build_plugin_manager, call_registration
from .required import (
    ACCESS_CONTROL,
    MODULE,
    TOKEN_PARSER,
    RequiredPlugin,
    match_plugins,
    missing_plugins_error,
    recorded_plugins,
)
from .specs import AclProviderSpec, ModuleSpec, TokenParserSpec
from .storage import MemoryStorage, StorageBackend
from .tlog_verify import Checkpoint
from .tree import build_tree, tree_storage
from .trusted_checkpoint import check_trusted_checkpoint, load_verifiers, read_checkpoint_file, verify_after_checkpoint
from .witnessing import Witnessing

log = logging.getLogger("nucleus_core.ledger")

__all__ = ["LedgerBuilder", "LedgerParts", "RequiredState", "checkpoint_issuer", "checkpoint_witnessing"]


@attrs.frozen(kw_only=True)
class RequiredState:
    """What the opening ledger knows of the plugins its chain requires: the enabled plugins whose
    state lives in the chain, the list the chain records (``from_record``: read from a ``_ledger``
    record, not inferred from the streams) and the head seq at that read."""

    enabled: tuple[RequiredPlugin, ...]
    recorded: tuple[RequiredPlugin, ...]
    from_record: bool
    at: int


@attrs.frozen(kw_only=True)
class LedgerParts:
    """Everything a :class:`~nucleus_core.ledger.Ledger` is made of, each part complete: the storage
    is open (and verified when the configuration asks), the policy and the token parsers are built.
    ``modules`` is the registry the builder then registers the modules in."""

    config: LedgerConfig
    plugin_manager: pluggy.PluginManager
    storage: StorageBackend
    read_only: bool
    required: RequiredState
    policy: AccessPolicy
    token_parsers: tuple[TokenParserSpec, ...]
    auth: TokenRegistry
    modules: ModuleRegistry
    checkpoint_signing: CheckpointKeys
    """The checkpoint origin and signing keys, read before the storage was opened."""
    checkpoints: CheckpointIssuer | None = None
    """The issuer of the ledger's checkpoints: None without a signing key, or on storage that keeps
    no Merkle tree or no checkpoints (:func:`checkpoint_issuer`)."""
    witnessing: Witnessing | None = None
    """Submits the checkpoints to the configured witnesses (:func:`checkpoint_witnessing`; started
    once the ledger is open)."""
    verified: Verified | None = None
    """The verification run of this open (None: none ran), for the ledger's observers."""


def checkpoint_clock() -> float:
    """The issuers' clock (seconds, monotonic); a test replaces it before opening a ledger."""
    return time.monotonic()


def checkpoint_issuer(
    config: LedgerConfig, storage: StorageBackend, keys: CheckpointKeys, witnessing: Witnessing | None = None
) -> CheckpointIssuer | None:
    """The :class:`~nucleus_core.checkpoints.CheckpointIssuer` of a ledger on ``storage`` signing
    with ``keys``: None when no key is configured or the storage keeps no tree or no checkpoints.
    It hands each checkpoint to ``witnessing`` (:func:`checkpoint_witnessing`)."""
    tree = tree_storage(storage)
    if not keys.signers or tree is None or not isinstance(storage, CheckpointStorage):
        return None
    return CheckpointIssuer(
        keys, storage.checkpoint_store(), lambda size: root_hash(tree.merkle_store(), size), tree.merkle_size,
        interval=config.checkpoint.interval, clock=checkpoint_clock,
        on_issue=None if witnessing is None else witnessing.submit,
    )


def checkpoint_witnessing(
    config: LedgerConfig, storage: StorageBackend, keys: CheckpointKeys, *, read_only: bool
) -> Witnessing | None:
    """The :class:`~nucleus_core.witnessing.Witnessing` of a ledger configured with witnesses
    (None without, and on a read-only ledger, which issues nothing: it still serves the
    cosignatures stored). :class:`~nucleus_core.errors.ConfigurationError` when witnesses are
    configured for a ledger that cannot sign checkpoints or keep cosignatures."""
    settings = config.checkpoint
    if not settings.witnesses:
        return None
    tree = tree_storage(storage)
    if not keys.signers:
        raise ConfigurationError(
            f"ledger {config.id!r}: witnesses are configured but no checkpoint signing key "
            "(configure [ledger.checkpoint] key_files or the key variable)"
        )
    store = storage.checkpoint_store() if isinstance(storage, CheckpointStorage) else None
    if tree is None or not isinstance(store, CosignatureStore):
        raise ConfigurationError(
            f"ledger {config.id!r}: witnesses are configured but storage {storage.url} keeps no Merkle tree, "
            "checkpoints or cosignatures"
        )
    if read_only:
        return None
    return Witnessing(
        settings.witnesses, settings.witness_quorum or 0, store,
        lambda old, new: merkle_consistency_proof(tree.merkle_store(), old, new),
        timeout=settings.witness_timeout,
    )


class LedgerBuilder:
    """Opens the ledger ``config`` describes (see the module docstring for the steps).

    ``create``: create the storage and the ledger when missing (:func:`~nucleus_core.create_ledger`)
    or refuse (:func:`~nucleus_core.open_ledger`). ``release``: the plugin being released
    (:func:`~nucleus_core.release_plugin`), which the chain may require without it being enabled.
    """

    def __init__(self, config: LedgerConfig, *, create: bool, release: str | None = None) -> None:
        self.config = config
        self.create = create
        self.release = release
        self.verified: Verified | None = None
        """The verification run of the open, once it passed (:meth:`_verify`)."""

    def build(self) -> Ledger:
        """The open ledger; raises what the failing step raised, leaving nothing this open created."""
        config = self.config
        if config.trusted_checkpoint is not None and not config.verify_on_open:
            # The checkpoint is compared with the stored tree; only verification ties that tree to
            # the entries, so without it a rewritten chain beside an untouched tree would pass.
            raise ConfigurationError(
                f"ledger {config.id!r}: a trusted checkpoint needs verify_on_open (the stored tree is "
                "checked against the entries only by verification); nothing was opened"
            )
        # First: a key file that cannot be read, or others may read, stops the open before anything.
        checkpoint_signing = config.checkpoint.load(config.id)
        pm = build_plugin_manager(config.plugins)
        storage = self._storage(pm)
        registry = ModuleRegistry(storage)
        try:
            self._open(storage)
            # Opening from the trusted checkpoint: the stored tree is checked against it first, then
            # only what it does not vouch for is verified. Otherwise the whole chain is verified, then
            # the stored tree (built up to the head if needed) must extend the checkpoint.
            trusted = self._trusted_checkpoint(storage) if config.verify_from_trusted_checkpoint else None
            # Read-only when opened without verification, or when the storage refuses writes (a
            # read replica): no tree building, checkpoint issuing or witnessing, appends refused first.
            read_only = self._verify(storage, trusted) or (isinstance(storage, ReadOnlyStorage) and storage.read_only)
            if not config.rebuild_state:
                # After the chain's verification: a tampered chain is reported as such, whatever mark
                # someone with write access to the database left beside it.
                refuse_unfinished_import(storage, config.id)
            if not read_only:
                # A ledger written before the tree existed gets it now (resumable, in chunks).
                build_tree(storage, progress=config.tree_progress)
            if config.trusted_checkpoint is not None and trusted is None:
                self._trusted_checkpoint(storage)
            required = self._required(pm, storage)
            policy = self._policy(pm, storage)
            parsers = tuple(self._token_parsers(pm))
            auth = build_token_registry(parsers, lambda name: plugin_context(config, storage, name))
            witnessing = checkpoint_witnessing(config, storage, checkpoint_signing, read_only=read_only)
            ledger = Ledger(
                LedgerParts(
                    config=config, plugin_manager=pm, storage=storage, read_only=read_only, required=required,
                    policy=policy, token_parsers=parsers, auth=auth, modules=registry,
                    checkpoint_signing=checkpoint_signing,
                    checkpoints=checkpoint_issuer(config, storage, checkpoint_signing, witnessing),
                    witnessing=witnessing, verified=self.verified,
                )
            )
            for module, spec in self._modules(pm, storage):
                context = ModuleContext(
                    # A weak proxy: a module keeping its context must not keep an unclosed ledger alive
                    # (the finalizer that stops modules at garbage collection or exit would never run early).
                    ledger=weakref.proxy(ledger),
                    settings=dict(config.settings.get(spec.id, {})),
                    logger=logging.getLogger(f"nucleus.module.{spec.id}"),
                )
                registry.register(module, context)
            policy.bind(ledger)
            problem = policy.check_consistency()
            if problem is not None and config.verify_on_open:
                raise IntegrityError(f"ledger {config.id!r}: access control state does not match the chain: {problem}")
            registry.init_all()
            registry.start_all()
            if self.create and required.enabled and storage.persistent and not read_only and storage.head() is None:
                # A new ledger records its plugins at once, before anyone can write without them.
                ledger._record_plugins_now()
        except BaseException:
            registry.stop_all()
            # What this open created (file, tables, the ledger's row) goes again: a ledger that fails
            # to open leaves nothing behind.
            if self.create and isinstance(storage, DiscardableStorage):
                storage.discard()
            else:
                storage.close()
            raise
        ledger._opened(discard_on_failure=self.create)
        return ledger

    # the steps ----------------------------------------------------------------------------
    def _storage(self, pm: pluggy.PluginManager) -> StorageBackend:
        storage = self.config.storage
        if storage is not None and not isinstance(storage, str):
            if not isinstance(storage, StorageBackend):
                raise ConfigurationError(f"storage {type(storage).__name__} is not a StorageBackend")
            return storage
        return storage_for_url(storage, self.config.storage_options, plugin_manager=pm)

    def _open(self, storage: StorageBackend) -> None:
        ledger_id = self.config.id
        # A ``memory://`` URL names storage that this ledger makes and that ends with it: there is no
        # existing ledger to look for and nothing that could be left behind.
        if self.create or (isinstance(self.config.storage, str) and isinstance(storage, MemoryStorage)):
            storage.open(ledger_id, read_only=False)
            return
        if "create" not in inspect.signature(storage.open).parameters:
            raise ConfigurationError(
                f"storage {storage.url} cannot open an existing ledger without creating one "
                "(its backend's open() takes no 'create' argument)"
            )
        storage.open(ledger_id, read_only=False, create=False)

    def _trusted_checkpoint(self, storage: StorageBackend) -> Checkpoint:
        """The configured trusted checkpoint, verified, once the stored tree has its root at its size."""
        config = self.config
        if config.trusted_checkpoint is None:  # not reached: the callers check (and LedgerConfig's validator)
            raise ConfigurationError(f"ledger {config.id!r}: no trusted checkpoint is configured")
        return check_trusted_checkpoint(
            config.id, tree_storage(storage), read_checkpoint_file(config.trusted_checkpoint),
            load_verifiers(config.trusted_checkpoint_vkeys, config.trusted_checkpoint_vkey_file),
            origin=(
                config.trusted_checkpoint_origin
                if config.trusted_checkpoint_origin is not None
                else config.checkpoint.origin
            ),
            where=f"the trusted checkpoint {config.trusted_checkpoint!r}",
        )

    def _verify(self, storage: StorageBackend, trusted: Checkpoint | None = None) -> bool:
        """Verify the stored chain (only the part after ``trusted``, a checkpoint the stored tree
        extends, when given); returns whether the ledger opens read-only."""
        config = self.config
        if not storage.persistent:
            return False
        if not config.verify_on_open:
            log.warning("ledger %r opened without verification: read-only", config.id)
            return True
        began = time.perf_counter()
        if trusted is not None:
            report = verify_after_checkpoint(config.id, storage, trusted)
        else:
            report = verify_chain(config, storage)
        self.verified = Verified(report.ok, report.entries_checked, time.perf_counter() - began)
        if not report.ok:
            raise IntegrityError(
                f"ledger {config.id!r} does not verify at entry {report.first_bad_seq}: {report.reason}",
                seq=report.first_bad_seq,
                reason=report.reason,
            )
        return False

    def _required(self, pm: pluggy.PluginManager, storage: StorageBackend) -> RequiredState:
        """Refuse to open without a plugin whose state the chain holds (see :mod:`.required`), except
        the one being released (which must then not be enabled)."""
        recorded, from_record = recorded_plugins(storage)
        enabled = tuple(_enabled_state_plugins(pm))
        keys = {p.key for p in enabled}
        release = self.release
        released = {p.key for p in match_plugins(recorded, release)} if release is not None else set()
        missing = [p for p in recorded if p.key not in keys and p.key not in released]
        if missing:
            raise missing_plugins_error(self.config.id, missing, recorded=from_record)
        head = storage.head()
        return RequiredState(enabled=enabled, recorded=tuple(recorded), from_record=from_record,
                             at=head.seq if head else 0)

    def _policy(self, pm: pluggy.PluginManager, storage: StorageBackend) -> AccessPolicy:
        specs = call_registration(pm, "nucleus_register_acl_providers", AclProviderSpec)
        if not specs:
            return AuthenticatedPolicy()
        if len(specs) > 1:
            names = ", ".join(s.name for s, _, _ in specs)
            raise ConfigurationError(f"at most one access-control provider per ledger; enabled: {names}")
        spec = specs[0][0]
        policy = spec.factory(plugin_context(self.config, storage, spec.name))
        if not isinstance(policy, AccessPolicy):
            raise PluginError("factory did not return an AccessPolicy", plugin_name=spec.name)
        return policy

    def _token_parsers(self, pm: pluggy.PluginManager) -> list[TokenParserSpec]:
        specs = [s for s, _, _ in call_registration(pm, "nucleus_register_token_parsers", TokenParserSpec)]
        names = [s.name for s in specs]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigurationError(f"token parser(s) registered twice: {', '.join(sorted(dupes))}")
        return specs

    def _modules(self, pm: pluggy.PluginManager, storage: StorageBackend) -> Iterator[tuple[Module, ModuleSpec]]:
        """Each enabled module, built by its spec's factory, in registration order (lazily: a module
        is registered before the next one is built)."""
        for spec, plugin_name, _ in call_registration(pm, "nucleus_register_modules", ModuleSpec):
            try:
                module = spec.factory(plugin_context(self.config, storage, spec.id))
            except NucleusError:
                raise
            except Exception as err:
                raise PluginError(
                    f"module {spec.id!r} factory failed: {type(err).__name__}: {err}", plugin_name=plugin_name
                ) from err
            if not isinstance(module, Module):
                raise PluginError(f"module {spec.id!r} factory did not return a Module", plugin_name=plugin_name)
            if module.id != spec.id:
                raise PluginError(
                    f"module spec {spec.id!r} built a module with id {module.id!r}", plugin_name=plugin_name
                )
            yield module, spec


def _enabled_state_plugins(pm: pluggy.PluginManager) -> list[RequiredPlugin]:
    """The enabled plugins whose state lives in the chain: the ACL provider, token parsers declaring
    system streams, modules."""
    found: list[RequiredPlugin] = []

    def entry(kind: str, name: str, plugin_name: str, dist: str | None) -> RequiredPlugin:
        return RequiredPlugin(kind=kind, name=name, plugin=plugin_name if dist else None, distribution=dist)

    for acl, plugin_name, dist in call_registration(pm, "nucleus_register_acl_providers", AclProviderSpec):
        found.append(entry(ACCESS_CONTROL, acl.name, plugin_name, dist))
    for parser, plugin_name, dist in call_registration(pm, "nucleus_register_token_parsers", TokenParserSpec):
        if parser.streams:
            found.append(entry(TOKEN_PARSER, parser.name, plugin_name, dist))
    for module, plugin_name, dist in call_registration(pm, "nucleus_register_modules", ModuleSpec):
        found.append(entry(MODULE, module.id, plugin_name, dist))
    return found
