"""Nucleus domain module ``proof``: attestations about a subject, issued and revoked."""

from .module import Issued, ProofInfo, ProofModule, ProofStatus, Revoked

__all__ = ["Issued", "ProofInfo", "ProofModule", "ProofStatus", "Revoked"]
