"""semhash: search documents by meaning with semantic hashing.

The library is usable without the CLI::

    from semhash import Index, SemanticHasher, build_index

    index = Index.build(["corpora/20news-sample/train"], "sample.db")
    index.query("nasa shuttle launch orbit", k=3)
    index.add(["new-posts/"])            # encoded with the stored model, no retraining
    index.similar("sci.space/60804", k=3)

Heavy modules load on first use, so ``import semhash`` stays cheap.
"""

from __future__ import annotations

from semhash.version import __version__
_API = ("Index", "Hit", "build_index", "BuildError", "QueryError", "DocumentNotFound", "ModelMismatch")
__all__ = [*_API, "SemanticHasher", "__version__"]


def __getattr__(name: str):
    # Lazy: the query path must not import scikit-learn, which SemanticHasher needs.
    if name == "SemanticHasher":
        from semhash.hasher import SemanticHasher

        return SemanticHasher
    if name in _API:
        from semhash import api

        return getattr(api, name)
    raise AttributeError(f"module 'semhash' has no attribute {name!r}")
