"""xaipipe: explainable AI for text classification and explanation-guided distillation.

The library holds all logic of the Snakemake pipeline; ``scripts/`` are thin entry points.
Packages by role: :mod:`xaipipe.data`, :mod:`xaipipe.embed`, :mod:`xaipipe.models`,
:mod:`xaipipe.train`.
"""

__version__ = "0.1.0"
