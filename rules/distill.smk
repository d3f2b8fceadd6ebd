# Stage 7 — distillation variants, one rules file per family (each runs when its config section is present):
#   distill_mnist.smk     explanation-guided KD on MNIST (report 7.3, Table 1)
#   distill_places.smk    Places2 CE vs KD + CE (report 7.4; paper config)
#   xdistill.smk         XDistillation: SHAP -> superpixels -> CAE fused into the student, KD/AT/NST/AB
#   distill_feedback.smk  feedback distillation and self-feedback fine-tuning of the text models (7.1, 7.2, 8)


include: "distill_mnist.smk"
include: "distill_places.smk"
include: "distill_feedback.smk"
include: "xdistill.smk"


def distill_targets():
    return distill_mnist_targets() + distill_places_targets() + distill_feedback_targets() + xdistill_targets()
