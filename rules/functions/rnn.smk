# Helpers of rules/rnn.smk (functions only): the RNN plan (which datasets, cells and sequence lengths run,
# decided when the workflow is built; xaipipe/rnn/plan.py), the wildcard patterns and the final targets.

import sys

if config.get("rnn") is not None:  # xaipipe.rnn imports torch: only when the stage is configured
    from xaipipe.rnn.cells import CELLS as _RNN_CELLS
    from xaipipe.rnn.plan import explain_params, make_plan, train_params
else:
    _RNN_CELLS = {}

RNN_PLAN = make_plan(config) if config.get("rnn") is not None else None
if RNN_PLAN is not None:
    for _msg in RNN_PLAN.skipped.values():  # offline and not mirrored: decided here, before any job
        print(_msg, file=sys.stderr)

_NONE = "(?!x)x"  # matches nothing
RNN_DATASET_PATTERN = "|".join(RNN_PLAN.datasets) if RNN_PLAN and RNN_PLAN.datasets else _NONE
RNN_OWN_DATA_PATTERN = "|".join(RNN_PLAN.own_data) if RNN_PLAN and RNN_PLAN.own_data else _NONE
RNN_CELL_PATTERN = "|".join(_RNN_CELLS) or _NONE
RNN_CFG = config.get("rnn") or {}


def rnn_targets():
    """Final targets of the RNN stage (none without an `rnn` config section)."""
    return RNN_PLAN.targets(RESULTS) if RNN_PLAN is not None else []
