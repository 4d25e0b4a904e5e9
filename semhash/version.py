"""The version of semhash, in a module of its own: the package's modules read it
without importing the package (whose ``__init__`` imports them lazily)."""

__version__ = "0.1.0"
