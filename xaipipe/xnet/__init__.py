"""XNet: training explainable neurons with the drop-loss regulariser (David & Liu,
002_8ecab4f1e6369166.txt).

Modules: :mod:`.models` (XNet, the X-layer, backbones), :mod:`.droploss` (Eqs. 1-2, batched),
:mod:`.matching` (Algorithms 1-2), :mod:`.data` (tasks with auxiliary categories; the CelebA file spec),
:mod:`.train` (the training loop and stage entry), :mod:`.figures` (Figures 1, 2, 7, 8 and Table 1).
"""

from .data import CELEBA, XNET_DATASETS, XData, XSplit, fetch_celeba, load_xnet_data
from .droploss import REDUCTIONS, DropLosses, drop_losses, droploss_term, example_drop_losses, xnet_objective
from .figures import PUBLISHED_TABLE1, table1, write_report
from .matching import MATCHINGS, compute_droplosses, identity_assignment, match
from .models import BACKBONES, XLayer, XNet, load_xnet, save_xnet
from .train import evaluate, output_paths, run_variant, train_xnet

__all__ = [
    "BACKBONES", "CELEBA", "MATCHINGS", "PUBLISHED_TABLE1", "REDUCTIONS", "XNET_DATASETS", "DropLosses", "XData",
    "XLayer", "XNet", "XSplit", "compute_droplosses", "drop_losses", "droploss_term", "evaluate",
    "example_drop_losses", "fetch_celeba", "identity_assignment", "load_xnet", "load_xnet_data", "match",
    "output_paths", "run_variant", "save_xnet", "table1", "train_xnet", "write_report", "xnet_objective",
]
