"""Distillation losses: moved to :mod:`xaipipe.losses` (the one registry of loss terms); the names stay
importable from here until every study reads its objective from there."""

from __future__ import annotations

from ..losses import TERMS as LOSSES
from ..losses import register_term as register_loss
from ..losses.kd import hinton_loss, kd_loss

__all__ = ["LOSSES", "hinton_loss", "kd_loss", "register_loss"]
