"""Nucleus domain module ``token``: fungible tokens with balances derived from the chain."""

from .module import Burned, Created, Minted, TokenEvent, TokenInfo, TokenModule, Transferred

__all__ = ["Burned", "Created", "Minted", "TokenEvent", "TokenInfo", "TokenModule", "Transferred"]
