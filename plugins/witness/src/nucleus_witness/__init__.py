"""A C2SP tlog-witness: ``nucleus witness serve`` cosigns the checkpoints of the logs it is
configured for, each only when it is consistent with the latest one it cosigned for that log.

:class:`~nucleus_witness.witness.Witness` makes the decisions, :class:`~nucleus_witness.state.WitnessState`
keeps what it cosigned (SQLite), :class:`~nucleus_witness.app.WitnessApp` serves it over HTTP (ASGI,
run by uvicorn). The protocol's format and the log's side are in the core:
:mod:`nucleus_core.tlog_witness` and :mod:`nucleus_core.cosignature`.
"""

from __future__ import annotations

import logging

from .app import WitnessApp
from .config import WitnessConfig, load_config
from .state import Cosigned, WitnessState
from .witness import Witness, WitnessedLog, origin_hash

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Cosigned",
    "Witness",
    "WitnessApp",
    "WitnessConfig",
    "WitnessState",
    "WitnessedLog",
    "__version__",
    "load_config",
    "origin_hash",
]
