# Issue 6 (XDistillation part) — Alharbi, Vu & Thai 2021: teacher SHAP explanations summed per SLIC
# superpixel -> convolutional autoencoder (L1) -> frozen CAE fused into a student CNN, against the baseline
# student, KD, AT, NST and AB; Tables II-V and example figures. Config section `xdistill` (one sub-section
# per dataset in xdistill.datasets: mnist, cifar10). Outputs under results/xdistill/<dataset>/.
# One job per student variant (xdistill.<dataset>.methods) and one for its explanations: a changed
# variant reruns only itself and the tables/figures. GPU-tagged: teacher, SHAP, CAE, students.
# Wall times go to timing.json files (training: teacher/, cae/, students/<variant>/; explainers:
# explanations/teacher_eval/, students/<variant>/explanations/), so every other output is byte-identical
# between runs.


include: "functions/xdistill.smk"  # XDISTILL, XDISTILL_PATTERN, params and inputs per dataset, the targets


rule xdistill_cifar_data:
    output:
        manifest=f"{XDISTILL}/cifar10/data/manifest.json",
        train=f"{XDISTILL}/cifar10/data/train.npz",
        test=f"{XDISTILL}/cifar10/data/test.npz",
    params:
        raw_dir=config["raw_dir"],
        mirror=config["data_mirror"],
        offline=config["offline"],
        verify=config["verify_checksums"],
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/cifar10/data.log",
    benchmark:
        f"{BENCH}/xdistill/cifar10/data.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/xdistill_data.py"


rule xdistill_teacher:
    input:
        train=xdistill_data("train"),
        test=xdistill_data("test"),
    output:
        model=f"{XDISTILL}/{{xdset}}/teacher/model.pt",
        metrics=f"{XDISTILL}/{{xdset}}/teacher/metrics.json",
        history=f"{XDISTILL}/{{xdset}}/teacher/history.csv",
        timing=f"{XDISTILL}/{{xdset}}/teacher/timing.json",
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
    params:
        data=xdistill_part("data"),
        teacher=xdistill_part("teacher"),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/teacher.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/teacher.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xdistill_teacher.py"


rule xdistill_cae_targets:
    input:
        teacher=rules.xdistill_teacher.output.model,
        train=xdistill_data("train"),
    output:
        targets=f"{XDISTILL}/{{xdset}}/explanations/cae_targets.npz",
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
    params:
        data=xdistill_part("data"),
        shap=xdistill_part("shap"),
        superpixels=xdistill_part("superpixels"),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/cae_targets.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/cae_targets.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xdistill_cae_targets.py"


rule xdistill_teacher_eval:
    input:
        teacher=rules.xdistill_teacher.output.model,
        train=xdistill_data("train"),
        test=xdistill_data("test"),
    output:
        explanations=f"{XDISTILL}/{{xdset}}/explanations/teacher_eval.npz",
        timing=f"{XDISTILL}/{{xdset}}/explanations/teacher_eval/timing.json",
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
    params:
        data=xdistill_part("data"),
        background=lambda wc: xdistill_cfg(wc).get("shap", {}).get("background", 100),
        superpixels=xdistill_part("superpixels"),
        evaluate=xdistill_part("evaluate"),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/teacher_eval.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/teacher_eval.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xdistill_teacher_eval.py"


rule xdistill_cae:
    input:
        targets=rules.xdistill_cae_targets.output.targets,
        train=xdistill_data("train"),
    output:
        model=f"{XDISTILL}/{{xdset}}/cae/model.pt",
        metrics=f"{XDISTILL}/{{xdset}}/cae/metrics.json",
        history=f"{XDISTILL}/{{xdset}}/cae/history.csv",
        timing=f"{XDISTILL}/{{xdset}}/cae/timing.json",
        examples=report(
            f"{XDISTILL}/{{xdset}}/cae/examples.png",
            caption="../report/xdistill_cae.rst",
            category="7 XDistillation",
            subcategory="{xdset}",
        ),
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
    params:
        cae=xdistill_part("cae"),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/cae.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/cae.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xdistill_cae.py"


rule xdistill_student:
    input:
        unpack(xdistill_student_inputs),
        teacher=rules.xdistill_teacher.output.model,
        train=xdistill_data("train"),
        test=xdistill_data("test"),
    output:
        model=f"{XDISTILL}/{{xdset}}/students/{{variant}}/model.pt",
        metrics=f"{XDISTILL}/{{xdset}}/students/{{variant}}/metrics.json",
        history=f"{XDISTILL}/{{xdset}}/students/{{variant}}/history.csv",
        timing=f"{XDISTILL}/{{xdset}}/students/{{variant}}/timing.json",
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
        variant="[a-z][a-z0-9_]*",
    params:
        method=xdistill_method,
        student=xdistill_part("student"),
        data=xdistill_part("data"),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/student_{{variant}}.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/student_{{variant}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xdistill_student.py"


rule xdistill_student_explain:
    input:
        model=rules.xdistill_student.output.model,
        teacher_eval=rules.xdistill_teacher_eval.output.explanations,
        train=xdistill_data("train"),
        test=xdistill_data("test"),
    output:
        explanations=f"{XDISTILL}/{{xdset}}/students/{{variant}}/explanations.npz",
        timing=f"{XDISTILL}/{{xdset}}/students/{{variant}}/explanations/timing.json",
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
        variant="[a-z][a-z0-9_]*",
    params:
        evaluate=xdistill_part("evaluate"),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/student_explain_{{variant}}.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/student_explain_{{variant}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/xdistill_student_explain.py"


rule xdistill_tables:
    input:
        teacher=rules.xdistill_teacher.output.metrics,
        cae=rules.xdistill_cae.output.metrics,
        teacher_eval=rules.xdistill_teacher_eval.output.explanations,
        metrics=lambda wc: [f"{XDISTILL}/{wc.xdset}/students/{v}/metrics.json" for v in xdistill_variants(wc)],
        explanations=lambda wc: [
            f"{XDISTILL}/{wc.xdset}/students/{v}/explanations.npz" for v in xdistill_variants(wc)
        ],
    output:
        table2_csv=report(
            f"{XDISTILL}/{{xdset}}/tables/table2.csv",
            caption="../report/xdistill_tables.rst",
            category="7 XDistillation",
            subcategory="{xdset}",
        ),
        table2_md=f"{XDISTILL}/{{xdset}}/tables/table2.md",
        table3_csv=report(
            f"{XDISTILL}/{{xdset}}/tables/table3.csv",
            caption="../report/xdistill_tables.rst",
            category="7 XDistillation",
            subcategory="{xdset}",
        ),
        table3_md=f"{XDISTILL}/{{xdset}}/tables/table3.md",
        table4_csv=report(
            f"{XDISTILL}/{{xdset}}/tables/table4.csv",
            caption="../report/xdistill_tables.rst",
            category="7 XDistillation",
            subcategory="{xdset}",
        ),
        table4_md=f"{XDISTILL}/{{xdset}}/tables/table4.md",
        table5_csv=report(
            f"{XDISTILL}/{{xdset}}/tables/table5.csv",
            caption="../report/xdistill_tables.rst",
            category="7 XDistillation",
            subcategory="{xdset}",
        ),
        table5_md=f"{XDISTILL}/{{xdset}}/tables/table5.md",
        summary=f"{XDISTILL}/{{xdset}}/tables/summary.json",
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
    params:
        variants=xdistill_variants,
        evaluate=xdistill_part("evaluate"),
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/tables.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/tables.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/xdistill_tables.py"


rule xdistill_figure:
    input:
        teacher_eval=rules.xdistill_teacher_eval.output.explanations,
        test=xdistill_data("test"),
        explanations=lambda wc: [
            f"{XDISTILL}/{wc.xdset}/students/{v}/explanations.npz" for v in xdistill_variants(wc)
        ],
    output:
        figure=report(
            f"{XDISTILL}/{{xdset}}/figures/{{explainer}}.png",
            caption="../report/xdistill_explanations.rst",
            category="7 XDistillation",
            subcategory="{xdset}",
        ),
    wildcard_constraints:
        xdset=XDISTILL_PATTERN,
        explainer="shap|gradcam|lime",
    params:
        variants=xdistill_variants,
        examples=lambda wc: xdistill_cfg(wc).get("evaluate", {}).get("examples", 4),
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/xdistill/{{xdset}}/figure_{{explainer}}.log",
    benchmark:
        f"{BENCH}/xdistill/{{xdset}}/figure_{{explainer}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/xdistill_figures.py"
