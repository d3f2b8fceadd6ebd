"""One decorator factory for the name -> implementation registries (explanation methods, distillation
losses, relevance rules, XDistillation student methods, XNet backbones)."""

from __future__ import annotations

from typing import Callable, TypeVar

from .errors import XaipipeError

T = TypeVar("T")


def registrar(table: dict[str, T], kind: str, set_name: bool = False) -> Callable[[str], Callable[[T], T]]:
    """``register(name)`` decorators that add to ``table``; a name registered twice is an error naming
    ``kind``. With ``set_name`` the registered class gets ``cls.name = name``."""
    def register(name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in table:
                raise XaipipeError(f"{kind} {name!r} registered twice")
            table[name] = obj
            if set_name:
                obj.name = name  # type: ignore[attr-defined]
            return obj
        return deco
    return register
