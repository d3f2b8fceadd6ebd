"""Which RNN jobs a configuration asks for, decided when the workflow is built (rules/rnn.smk).

* A dataset is **available** online (the fetch rule downloads and verifies it) and offline only when
  all four raw files are in ``<raw_dir>/<dataset>/`` or a known mirror sub-folder; otherwise it is
  skipped with a message that names the missing files and the fix (the shared mirror has MNIST but
  not Fashion-MNIST).
* MNIST reuses the pipeline's prepared ``results/mnist/data/{train,test}.npz`` when ``mnist`` is one
  of the pipeline's ``datasets``; otherwise (and always for Fashion-MNIST) the RNN stage fetches and
  prepares its own copy under ``results/rnn/<dataset>/data/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from .cells import CELLS
from .data import availability, step_width
from .published import SEQ_LENGTHS


@dataclass
class RNNPlan:
    datasets: list[str]  # the available ones, in config order
    skipped: dict[str, str] = field(default_factory=dict)  # dataset -> message
    cells: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    figure_seq: int | None = None
    own_data: list[str] = field(default_factory=list)  # datasets prepared by the RNN stage itself

    def runs(self, dataset: str | None = None) -> list[tuple[str, str, int]]:
        """Every (dataset, cell, seq) to train, optionally of one dataset."""
        return [(d, c, s) for d in self.datasets if dataset in (None, d) for c in self.cells for s in self.seqs]

    def data_dir(self, results: str, dataset: str) -> str:
        """Folder of ``{train,test}.npz``: the pipeline's for MNIST when it prepares it, else the stage's."""
        return f"{results}/rnn/{dataset}/data" if dataset in self.own_data else f"{results}/{dataset}/data"

    @staticmethod
    def run_dir(results: str, dataset: str, cell: str, seq: int) -> str:
        return f"{results}/rnn/{dataset}/{cell}_seq{seq}"

    def targets(self, results: str) -> list[str]:
        """Final files: Table 4.3 always; Table 4.5 and each available dataset's Figures 4.7-4.9 when
        something is trained (the models, metrics and relevance maps are their inputs)."""
        out = [f"{results}/rnn/tables/table4_3.{ext}" for ext in ("csv", "md")]
        if self.runs():
            out += [f"{results}/rnn/tables/table4_5.{ext}" for ext in ("csv", "md")]
        for d in self.datasets:
            if self.runs(d):
                out += [f"{results}/rnn/figures/{d}/{f}" for f in ("fig4_7.png", "fig4_8.png", "fig4_9.png",
                                                                    "fig4_9.csv")]
        return out


def make_plan(config: dict) -> RNNPlan:
    """The plan of ``config["rnn"]`` (validated by the schema; raises :class:`ConfigError` on values
    the schema cannot check)."""
    cfg = config["rnn"] or {}
    cells = list(cfg.get("cells", CELLS))
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise ConfigError(f"rnn.cells: unknown cell(s) {unknown}; known: {sorted(CELLS)}")
    seqs = [int(s) for s in cfg.get("seq", SEQ_LENGTHS)]
    for s in seqs:
        step_width(28, s)  # raises with the allowed values
    fig_seq = (cfg.get("figures") or {}).get("seq")
    if fig_seq is not None and int(fig_seq) not in seqs:
        raise ConfigError(f"rnn.figures.seq = {fig_seq} is not one of the trained sequence lengths "
                          f"rnn.seq = {seqs}; add it there or set it to null (the longest)")
    plan = RNNPlan(datasets=[], cells=cells, seqs=seqs,
                   figure_seq=int(fig_seq) if fig_seq is not None else (max(seqs) if seqs else None))
    pipeline_datasets = set(config.get("datasets", []))
    for d in cfg.get("datasets", ("mnist", "fashion_mnist")):
        ok, message = availability(d, config.get("raw_dir", "data/raw"), config.get("data_mirror"),
                                   bool(config.get("offline", False)))
        if not ok:
            plan.skipped[d] = message
            continue
        plan.datasets.append(d)
        if not (d == "mnist" and "mnist" in pipeline_datasets):
            plan.own_data.append(d)
    return plan


#: ``rnn`` keys that change a trained model (the training rule's params: editing anything else, such as
#: the figure settings, does not retrain)
TRAIN_KEYS = ("epochs", "batch_size", "lr", "dropout", "init_std", "init_bias", "recur", "val_fraction",
              "max_train", "max_test", "pixel_range", "min_accuracy")
#: ``rnn`` keys that change the relevance maps (besides the model itself)
EXPLAIN_KEYS = ("max_test", "pixel_range", "figures")


def train_params(cfg: dict, cell: str) -> dict:
    """The training job's params: :data:`TRAIN_KEYS` plus this cell's learning-rate override only."""
    out = {k: cfg[k] for k in TRAIN_KEYS if k in cfg}
    lr = (cfg.get("cell_lr") or {}).get(cell)
    out["cell_lr"] = {cell: lr} if lr is not None else {}
    return out


def explain_params(cfg: dict) -> dict:
    """The explain job's params (:data:`EXPLAIN_KEYS`)."""
    return {k: cfg[k] for k in EXPLAIN_KEYS if k in cfg}
