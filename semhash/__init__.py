"""semhash: search documents by meaning with semantic hashing.

The library is usable without the CLI::

    from semhash import Index, SemanticHasher, build_index

Heavy modules load on first use, so ``import semhash`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Index", "SemanticHasher", "build_index", "__version__"]


def __getattr__(name: str):
    # Lazy: the query path must not import scikit-learn, which SemanticHasher needs.
    if name == "SemanticHasher":
        from semhash.hasher import SemanticHasher

        return SemanticHasher
    if name in ("Index", "build_index"):
        from semhash import api

        return getattr(api, name)
    raise AttributeError(f"module 'semhash' has no attribute {name!r}")
