"""Nucleus domain module ``connect_grant``: consent a subject gives an application, and its revocation."""

from .module import ConnectGrantModule, Granted, GrantInfo, Revoked

__all__ = ["ConnectGrantModule", "GrantInfo", "Granted", "Revoked"]
