"""Kim-style CNN over frozen word embeddings (report section 2, Figures 1-2).

``embedding (N x E) -> Conv1d(E -> C, kernel K) -> max over time -> ReLU -> [Linear -> ReLU -> Dropout]*
-> Linear(n_classes)``. A K x E kernel over the N x E document "image" is the same as a Conv1d with E
input channels.

Any document length works (the report explains full, unpadded documents): the max-pool runs only over
the ``max(L - K + 1, 1)`` windows that start inside the document (``lengths``), so a document padded with
zero vectors to a batch length gives *exactly* the logits of the unpadded document. Documents shorter
than K are zero-padded to K. Zero vectors inside a document (deleted words) are ordinary inputs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TextCNN(nn.Module):
    def __init__(self, embedding: torch.Tensor | int, n_classes: int, channels: int = 1280,
                 kernel_size: int = 5, hidden: list[int] | tuple[int, ...] = (256,), dropout: float = 0.5,
                 embedding_dim: int | None = None):
        super().__init__()
        if isinstance(embedding, int):  # shape only (when loading a checkpoint)
            embedding = torch.zeros(embedding, int(embedding_dim or 300))
        self.register_buffer("embedding", torch.as_tensor(embedding, dtype=torch.float32))
        emb_dim = self.embedding.shape[1]
        self.kernel_size = int(kernel_size)
        self.n_classes = int(n_classes)
        self.conv = nn.Conv1d(emb_dim, channels, kernel_size)
        layers: list[nn.Module] = []
        width = channels
        self.dropout_in = nn.Dropout(dropout)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.classifier = nn.Sequential(*layers)
        nn.init.kaiming_uniform_(self.conv.weight, nonlinearity="relu")
        nn.init.zeros_(self.conv.bias)

    @property
    def embedding_dim(self) -> int:
        return self.embedding.shape[1]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` token ids -> ``(B, N, E)`` vectors (index 0 is the zero padding vector)."""
        return F.embedding(tokens, self.embedding)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Max-pooled convolution features ``(B, C)`` of embedded documents ``x`` ``(B, N, E)``."""
        n = x.shape[1]
        if n < self.kernel_size:
            x = F.pad(x, (0, 0, 0, self.kernel_size - n))
        z = self.conv(x.transpose(1, 2))  # (B, C, N - K + 1)
        if lengths is not None:
            valid = torch.clamp(lengths.to(z.device) - self.kernel_size + 1, min=1)
            pos = torch.arange(z.shape[2], device=z.device)
            z = z.masked_fill((pos[None, :] >= valid[:, None])[:, None, :], float("-inf"))
        return F.relu(z.amax(dim=2))

    def forward_embedded(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for embedded documents ``(B, N, E)`` — the entry point of explanation methods."""
        return self.classifier(self.dropout_in(self.features(x, lengths)))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_embedded(self.embed(tokens), lengths)
