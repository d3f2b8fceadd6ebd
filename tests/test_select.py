"""Which documents get explained (xaipipe.explain.select) and how they are predicted in bulk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from conftest import random_text_cnn
from xaipipe.explain.base import pad_embedded, predict_docs
from xaipipe.explain.select import select_documents

N_VOCAB, EMB_DIM, N_CLASSES = 30, 8, 3


def test_predict_docs_equals_one_document_at_a_time_in_token_budget_batches(monkeypatch):
    import xaipipe.train as train

    model = random_text_cnn(N_VOCAB, EMB_DIM, N_CLASSES)
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, N_VOCAB, n) for n in (5, 300, 2, 40, 7, 120, 3, 1)]
    with torch.inference_mode():
        one = [int(model.forward_embedded(*pad_embedded(model, [d])).argmax(1)) for d in docs]
    sizes = []
    real = train.token_budget_batches
    monkeypatch.setattr(train, "PREDICT_MAX_TOKENS", 320)  # the 300-word document goes alone
    monkeypatch.setattr(train, "token_budget_batches",
                        lambda *a: [sizes.append(len(b)) or b for b in real(*a)])
    with torch.inference_mode():
        assert predict_docs(model, docs, batch_size=4).tolist() == one
    assert sizes[-1] == 1 and max(sizes) <= 4 and sum(sizes) == len(docs)


def test_whole_documents_are_capped_at_the_model_length():
    model = random_text_cnn(N_VOCAB, EMB_DIM, N_CLASSES)
    vocab = ["<pad>"] + [f"w{i}" for i in range(1, N_VOCAB)]
    rng = np.random.default_rng(1)
    test = pd.DataFrame({"id": [f"d{i}" for i in range(30)],
                         "tokens": [[f"w{j}" for j in rng.integers(1, N_VOCAB, n)] for n in rng.integers(3, 60, 30)],
                         "label": rng.integers(0, N_CLASSES, 30)})
    whole = select_documents(model, test, vocab, 2, 2, 0)
    capped = select_documents(model, test, vocab, 2, 2, 0, None, 10)
    assert max(map(len, whole["tokens"])) > 10 and max(map(len, capped["tokens"])) == 10
    assert [len(t) for t in capped["ids"]] == [len(t) for t in capped["tokens"]]
    both = select_documents(model, test, vocab, 2, 2, 0, 6, 10)  # the shorter cap wins
    assert max(map(len, both["tokens"])) == 6
