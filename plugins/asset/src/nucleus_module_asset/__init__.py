"""Nucleus domain module ``asset``: assets with an issuer and an owner; issued, transferred, revoked."""

from .module import AssetInfo, AssetModule, Issued, Revoked, Transferred

__all__ = ["AssetInfo", "AssetModule", "Issued", "Revoked", "Transferred"]
