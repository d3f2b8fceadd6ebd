"""Distillation: Hinton KD, explanation-guided KD (MNIST Table 1), feedback and self-feedback fine-tuning
for text, XDistillation (SHAP -> superpixels -> conv autoencoder). Losses live in :mod:`.losses`; every
variant is a configuration of one training loop per family, not a copy of code."""
