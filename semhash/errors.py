"""The library's typed errors: input the user can fix, each printed by the CLI as one
``Error: ...`` line (:data:`ERRORS` lists them all)."""

from __future__ import annotations

from semhash.corpus import CorpusError
from semhash.store import StoreError


class BuildError(ValueError):
    """The corpus cannot be indexed (empty, too small, ...)."""


class QueryError(ValueError):
    """The query cannot be answered (e.g. none of its words are in the vocabulary)."""


class EmptyQuery(QueryError):
    """The query has no word of the index vocabulary (only stop words, or words the
    index does not know): its code would mean nothing. ``semhash query`` treats it
    as "no hits" (exit status 1), not as an error."""


class DocumentNotFound(QueryError):
    """No document has this id in the index."""


class ModelMismatch(ValueError):
    """Model options given for an update differ from the model the index was built with."""


#: Every exception the library raises for input the user can fix; the CLI prints
#: them as one ``Error: ...`` line.
ERRORS = (BuildError, QueryError, ModelMismatch, StoreError, CorpusError)  # IndexLocked, EmptyQuery: subclasses
