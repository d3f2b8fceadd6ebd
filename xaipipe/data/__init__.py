"""Data stage: raw sources (:mod:`.sources`, :mod:`.catalog`), readers, cleaning and preparation."""

from .catalog import CATALOG
from .sources import resolve

__all__ = ["CATALOG", "resolve"]
