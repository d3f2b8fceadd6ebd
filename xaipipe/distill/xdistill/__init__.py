"""XDistillation (Alharbi, Vu & Thai, "Learning Interpretation with Explainable Knowledge Distillation",
2021; ``shared/papers/004_fb154efd276d1126.txt``): the teacher's SHAP explanations, summed per SLIC
superpixel, train a small convolutional autoencoder; its frozen output is fused with a student CNN's
features and the student is trained with ``CE + (1 - alpha) KD + lambda ||c||^2``. Compared with the
baseline student, KD, attention transfer, neuron selectivity transfer and activation-boundary transfer on
accuracy (Tables II-III) and on explanation consistency with the teacher (Tables IV-V).

Modules: :mod:`.models` (LeNet-5, students, VGG, CAEs, the fused student), :mod:`.superpixels`,
:mod:`.transfer` (AT/NST/AB losses), :mod:`.methods` (student method registry), :mod:`.explainers` (SHAP,
Grad-CAM, LIME on superpixels), :mod:`.explain_metrics` (Tables IV-V metrics), :mod:`.train`,
:mod:`.cifar` (CIFAR-10 source and reader), :mod:`.tables`, :mod:`.figures`, :mod:`.stage` (one function
per Snakemake rule).
"""

from .explain_metrics import batch_sign_overlap, consistency, explanation_mse, sign_overlap
from .explainers import EXPLAINERS, explain_all
from .methods import METHODS, StudentMethod, get_method, register_method
from .models import (ARCHS, CAES, FusedStudent, LargeCAE, LeNet, SmallCAE, VGG, build_cae, build_classifier,
                     count_parameters, load_model, save_model)
from .superpixels import segment_sums, slic_segments, superpixel_map
from .transfer import ab_loss, at_loss, nst_loss

__all__ = [
    "ARCHS", "CAES", "EXPLAINERS", "METHODS", "FusedStudent", "LargeCAE", "LeNet", "SmallCAE", "StudentMethod", "VGG",
    "ab_loss", "at_loss", "batch_sign_overlap", "build_cae", "build_classifier", "consistency", "count_parameters",
    "explain_all", "explanation_mse", "get_method", "load_model", "nst_loss", "register_method", "save_model",
    "segment_sums", "sign_overlap", "slic_segments", "superpixel_map",
]
