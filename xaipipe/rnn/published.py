"""The published numbers of Chormai (2018), "Designing Recurrent Neural Networks for Explainability",
chapter 4, that the RNN stage is compared with. One place, so tables and tests read the same values.
"""

from __future__ import annotations

#: Table 4.1: sequence lengths; a 28 x 28 image becomes SEQ column blocks of 28 x (28 / SEQ) pixels.
SEQ_LENGTHS = (1, 4, 7, 14)

#: Section 4.4 / Table 4.2: Adam, 200 epochs, dropout 0.5, batch 50 (learning rate "left adjustable").
HYPERPARAMETERS = {"optimizer": "adam", "epochs": 200, "dropout": 0.5, "batch_size": 50}

#: Section 4.4: w ~ truncated normal (mu 0, sigma 0.1, cut at +-2 sigma); softplus(b) initially 0.01.
INIT_STD = 0.1
INIT_BIAS = 0.01

#: Table 4.3: total number of variables per cell architecture (rows) and sequence length (columns),
#: for 10 classes and n^(5) = 128 recurrent units (0 when SEQ = 1).
TABLE_4_3 = {
    "shallow": {1: 610570, 4: 355722, 7: 291210, 14: 248202},
    "deep": {1: 550346, 4: 314954, 7: 271946, 14: 243274},
    "deep_v2": {1: 575050, 4: 306890, 7: 263882, 14: 235210},
    "conv_deep": {1: 647594, 4: 283178, 7: 197162, 14: 197162},
}

#: Table 4.4: minimum test accuracy a model needs before its heatmaps are compared.
TABLE_4_4 = {"mnist": 0.98, "fashion_mnist": 0.85}

#: Table 4.5: test accuracy of the MNIST models (Shallow and Deep, SEQ 1, 4, 7); the draft has no
#: published accuracy for the other cells, SEQ 14 or Fashion-MNIST.
TABLE_4_5 = {
    ("mnist", "shallow", 1): 0.9813, ("mnist", "deep", 1): 0.9788,
    ("mnist", "shallow", 4): 0.9830, ("mnist", "deep", 4): 0.9861,
    ("mnist", "shallow", 7): 0.9807, ("mnist", "deep", 7): 0.9852,
}

#: Display names used in the thesis (section 4.3).
CELL_NAMES = {"shallow": "Shallow", "deep": "Deep", "deep_v2": "DeepV2", "conv_deep": "ConvDeep"}
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
