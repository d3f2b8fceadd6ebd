"""TextCNN and MLP: shapes, exact padding invariance, checkpoints (xaipipe.models)."""

from __future__ import annotations

import pytest
import torch

from xaipipe.errors import XaipipeError
from xaipipe.models import (
    MLP,
    MODELS,
    TextCNN,
    build_model,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)

N_VOCAB, EMB_DIM, N_CLASSES = 60, 12, 4
CNN_KWARGS = {"n_classes": N_CLASSES, "channels": 10, "kernel_size": 5, "hidden": [9], "dropout": 0.5}
LENGTHS = [1, 3, 5, 17, 400]

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture
def embedding():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(N_VOCAB, EMB_DIM, generator=g)
    emb[0] = 0.0  # padding vector
    return emb


@pytest.fixture
def cnn(embedding):
    torch.manual_seed(0)
    model = TextCNN(embedding, **CNN_KWARGS)
    with torch.no_grad():  # non-zero conv bias: padding windows would then show up in the max-pool
        model.conv.bias.uniform_(-0.5, 0.5)
    return model.eval()


def doc(length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, N_VOCAB, (length,), generator=g)


@pytest.mark.parametrize("length", LENGTHS)
def test_text_cnn_output_shape(cnn, length):
    tokens = torch.stack([doc(length, s) for s in range(3)])
    assert cnn(tokens).shape == (3, N_CLASSES)
    assert cnn(tokens, torch.full((3,), length)).shape == (3, N_CLASSES)
    x = cnn.embed(tokens)
    assert x.shape == (3, length, EMB_DIM)
    assert cnn.features(x).shape == (3, 10)
    assert cnn.forward_embedded(x).shape == (3, N_CLASSES)


def test_text_cnn_embedding_is_frozen_buffer(cnn, embedding):
    assert "embedding" in dict(cnn.named_buffers())
    assert all(p is not cnn.embedding for p in cnn.parameters())
    assert cnn.embedding_dim == EMB_DIM
    assert not cnn.embed(torch.zeros(1, 4, dtype=torch.long)).any()
    assert torch.equal(cnn.embed(torch.tensor([[3]]))[0, 0], embedding[3])


@pytest.mark.parametrize("length, pad_to", [(n, w) for n in LENGTHS for w in (5, 20, 450) if w >= n])
@torch.no_grad()
def test_text_cnn_padding_invariance(cnn, length, pad_to):
    tokens = doc(length, seed=length)
    alone = cnn(tokens[None])
    padded = torch.zeros(1, pad_to, dtype=torch.long)
    padded[0, :length] = tokens
    with_lengths = cnn(padded, torch.tensor([length]))
    assert torch.allclose(alone, with_lengths, atol=1e-5), (alone, with_lengths)
    assert torch.allclose(alone, cnn(tokens[None], torch.tensor([length])), atol=1e-6)


@torch.no_grad()
def test_text_cnn_padding_matters_without_lengths(cnn):
    # sanity check of the test above: without lengths the padding windows do enter the max-pool
    tokens = doc(8, seed=1)
    padded = torch.cat([tokens, torch.zeros(200, dtype=torch.long)])[None]
    assert not torch.allclose(cnn(tokens[None]), cnn(padded), atol=1e-5)


@torch.no_grad()
def test_text_cnn_batch_equals_single_documents(cnn):
    docs = [doc(n, seed=i) for i, n in enumerate(LENGTHS + [2, 6])]
    width = max(len(d) for d in docs)
    batch = torch.zeros(len(docs), width, dtype=torch.long)
    for i, d in enumerate(docs):
        batch[i, :len(d)] = d
    lengths = torch.tensor([len(d) for d in docs])
    batched = cnn(batch, lengths)
    single = torch.cat([cnn(d[None]) for d in docs])
    assert torch.allclose(batched, single, atol=1e-5)


@torch.no_grad()
def test_text_cnn_zero_vector_inside_document_is_an_input(cnn):
    # a "deleted" word (zero vector) inside a document is not masked out like padding
    tokens = doc(12, seed=3)
    deleted = tokens.clone()
    deleted[5] = 0
    x = cnn.embed(tokens[None])
    x_del = cnn.embed(deleted[None])
    assert torch.equal(cnn(deleted[None], torch.tensor([12])), cnn.forward_embedded(x_del, torch.tensor([12])))
    assert not torch.allclose(cnn.forward_embedded(x), cnn.forward_embedded(x_del))


def test_text_cnn_train_mode_uses_dropout(cnn):
    cnn.train()
    tokens = doc(30)[None]
    torch.manual_seed(1)
    a = cnn(tokens)
    torch.manual_seed(2)
    assert not torch.allclose(a, cnn(tokens))


def test_text_cnn_gradients_reach_embedded_input(cnn):
    x = cnn.embed(doc(10)[None]).requires_grad_(True)
    cnn.forward_embedded(x)[0, 1].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_text_cnn_from_shape_only():
    model = TextCNN(N_VOCAB, n_classes=2, channels=3, hidden=[], embedding_dim=7)
    assert model.embedding.shape == (N_VOCAB, 7)
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 2)


# --- MLP ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [[], [32], [32, 16]])
def test_mlp_shapes(hidden):
    model = MLP(in_features=784, hidden=hidden, n_classes=10, dropout=0.5, input_dropout=0.2).eval()
    assert model(torch.rand(5, 28, 28)).shape == (5, 10)
    assert model(torch.rand(5, 784)).shape == (5, 10)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert n_linear == len(hidden) + 1


def test_mlp_dropout_layers_only_when_asked():
    plain = MLP(hidden=[8])
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    drop = MLP(hidden=[8, 8], dropout=0.5, input_dropout=0.2)
    assert sum(isinstance(m, torch.nn.Dropout) for m in drop.modules()) == 3


def test_build_model_and_count_parameters():
    assert set(MODELS) == {"text_cnn", "mlp"}
    model = build_model("mlp", in_features=4, hidden=[3], n_classes=2)
    assert count_parameters(model) == (4 * 3 + 3) + (3 * 2 + 2)
    with pytest.raises(XaipipeError, match="unknown architecture 'resnet'"):
        build_model("resnet")


def test_count_parameters_excludes_frozen_embedding(cnn):
    assert count_parameters(cnn, trainable_only=False) == count_parameters(cnn)  # buffer, not parameter
    cnn.conv.weight.requires_grad_(False)
    assert count_parameters(cnn) == count_parameters(cnn, trainable_only=False) - cnn.conv.weight.numel()


# --- checkpoints ----------------------------------------------------------------------------------

def test_checkpoint_round_trip_text_cnn(tmp_path, cnn, embedding):
    path = tmp_path / "models" / "model.pt"
    meta = {"vocab": ["<pad>", "a"], "classes": ["x", "y", "z", "w"]}
    save_checkpoint(path, "text_cnn", {"embedding": embedding, **CNN_KWARGS}, cnn, meta)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    raw = torch.load(path, weights_only=False)
    assert raw["kwargs"]["embedding"] == N_VOCAB and raw["kwargs"]["embedding_dim"] == EMB_DIM  # no tensor copy
    loaded, loaded_meta = load_checkpoint(path)
    assert isinstance(loaded, TextCNN) and not loaded.training
    assert loaded_meta == meta
    assert torch.equal(loaded.embedding, cnn.embedding)
    tokens = torch.stack([doc(40, s) for s in range(4)])
    lengths = torch.tensor([40, 3, 17, 1])
    with torch.no_grad():
        assert torch.equal(loaded(tokens, lengths), cnn(tokens, lengths))


def test_checkpoint_round_trip_mlp(tmp_path):
    torch.manual_seed(0)
    kwargs = {"in_features": 784, "hidden": [20, 10], "n_classes": 10, "dropout": 0.3, "input_dropout": 0.1}
    model = MLP(**kwargs).eval()
    path = tmp_path / "mlp.pt"
    save_checkpoint(path, "mlp", kwargs, model)
    loaded, meta = load_checkpoint(path)
    assert meta == {}
    x = torch.rand(6, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(XaipipeError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"garbage bytes, not a checkpoint", b"PK\x03\x04truncated zip"])
def test_load_checkpoint_garbage_file(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(XaipipeError, match="not a readable xaipipe checkpoint"):
        load_checkpoint(path)


def test_load_checkpoint_foreign_torch_file(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(XaipipeError, match="not a readable xaipipe checkpoint"):
        load_checkpoint(path)
    torch.save({"arch": "resnet", "kwargs": {}, "state_dict": {}}, path)
    with pytest.raises(XaipipeError, match="unknown architecture"):
        load_checkpoint(path)


def test_load_checkpoint_truncated_real_checkpoint(tmp_path, cnn, embedding):
    path = tmp_path / "model.pt"
    save_checkpoint(path, "text_cnn", {"embedding": embedding, **CNN_KWARGS}, cnn)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(XaipipeError, match="not a readable xaipipe checkpoint"):
        load_checkpoint(path)
