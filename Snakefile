# xaipipe — explainable AI for text classification and explanation-guided distillation.
# Run:  snakemake --cores all            (default, quick config: config.yaml)
#       snakemake --cores all --configfile config/tiny.yaml    (minutes-scale smoke run)
#       snakemake --profile profiles/slurm --configfile config/paper.yaml   (cluster)
import os

from snakemake.utils import min_version

min_version("9.0")


# The default config sits beside this Snakefile (so --directory elsewhere still finds it);
# --configfile FILE and --config KEY=VALUE are merged over it.
configfile: os.path.join(workflow.basedir, "config.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/embed.smk"
include: "rules/train.smk"
include: "rules/explain.smk"
include: "rules/evaluate.smk"
include: "rules/distill.smk"
include: "rules/rnn.smk"
include: "rules/xnet.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
