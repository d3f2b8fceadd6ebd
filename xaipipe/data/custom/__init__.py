"""Bring your own data: any labelled text table as a dataset of the pipeline (``kind: custom``).

A custom dataset is a config section of any name (``reviews: {kind: custom, data: {...}}``, listed under
``datasets``) whose documents come from the user's own CSV, TSV, JSON Lines or parquet file(s): one file per
split (``data.files: {train, test}``), or one file (``data.path``) split by a column (``split_column``,
``split_values``) or by a stratified, seeded hold-out (``test_fraction``). It then runs through every stage
exactly like the built-in text datasets (the report's AG News and 20 Newsgroups, sections 2.1-2.2): the
same tidy ``train.parquet``/``test.parquet`` and ``stats.json``, embeddings, teachers and students,
relevance maps and deletion curves.

One module per concern (each imports only the ones listed before it):

* :mod:`.read` -- the user's files (:func:`table_paths`), their formats and reading (:func:`read_table`),
  and text cleaning (:func:`clean_text`);
* :mod:`.labels` -- label values as integers or strings (:func:`normalise_labels`);
* :mod:`.load` -- reading, splitting and checking a dataset (:func:`load_custom`, :data:`KIND`), and the
  checks after cleaning (:func:`check_frames`); :mod:`xaipipe.data.prepare` builds its frames from it;
* :mod:`.settings` -- settings derived from the data (``max_len``/``channels``/embedding ``auto``,
  :data:`ROLE_DEFAULTS`) and the check of every model's stratified validation split
  (:func:`val_split_problem`);
* :mod:`.summary` -- the manifest of the user's files (:func:`custom_manifest`) and the check before any job
  (:func:`resolve_section`: the data's summary, cached, and every ``auto`` resolved from it).

Their public names are imported here too, so ``from xaipipe.data.custom import ...`` needs no module name.
"""

from __future__ import annotations

from .labels import normalise_labels
from .load import KIND, check_frames, load_custom, table_inputs
from .read import clean_text, detect_format, read_table, table_paths
from .settings import (
    ROLE_DEFAULTS,
    auto_channels,
    auto_embedding_epochs,
    auto_max_len,
    check_val_splits,
    val_split_problem,
)
from .summary import custom_manifest, data_summary, resolve_section

# the other module-level names of the former single module xaipipe/data/custom.py (tests use some); to
# replace one in a test (monkeypatch), patch it in its module: data_summary looks up summary.summarise
from .load import NO_PAPER_NOTE, Part  # noqa: F401
from .read import FORMATS, _as_text  # noqa: F401
from .settings import (  # noqa: F401
    EMBEDDING_TOKEN_PASSES,
    LARGE_CORPUS_TOKENS,
    TEACHER_CHANNELS,
    model_role,
    resolve_embedding,
    resolve_models,
)
from .summary import CACHE_VERSION, RESERVED_NAMES, summarise  # noqa: F401

__all__ = ["KIND", "ROLE_DEFAULTS", "auto_channels", "auto_embedding_epochs", "auto_max_len", "check_frames",
           "check_val_splits", "clean_text", "custom_manifest", "data_summary", "detect_format", "load_custom",
           "normalise_labels", "read_table", "resolve_section", "table_inputs", "table_paths", "val_split_problem"]
