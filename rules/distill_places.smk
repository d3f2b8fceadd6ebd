# Distillation on Places2 (report section 7.4): Places365 ResNet-50 teacher, AlexNet-style student with a
# skip connection trained with CE and with KD + CE. Runs only when the config has a `distill_places`
# section with `enabled: true` (config/paper.yaml); the images are never downloaded (see README).
# Library: xaipipe/distill/places.py. GPU-tagged: the teacher evaluation and the student training.
# Wall times go to timing.json (teacher/, students/<variant>/), so every other output is byte-identical
# between runs.


include: "functions/distill_places.smk"  # PLACES, PLACES_VARIANTS, places_cfg, the stage's targets


rule places_index:
    output:
        manifest=f"{PLACES}/index/manifest.json",
        train=f"{PLACES}/index/train.parquet",
        val=f"{PLACES}/index/val.parquet",
    params:
        cfg={
            **{k: places_cfg().get(k) for k in ("data_dir", "max_train_per_class", "max_val_per_class")},
            "teacher": _places_teacher_keys("arch", "weights", "sha256"),
        },
        raw_dir=config["raw_dir"],
        mirror=config["data_mirror"],
        offline=config["offline"],
        verify=config["verify_checksums"],
        seed=config["seed"],
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/places365/index.log",
    benchmark:
        f"{BENCH}/places365/index.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/distill_places.py"


rule places_teacher:
    input:
        manifest=rules.places_index.output.manifest,
        val=rules.places_index.output.val,
    output:
        json=f"{PLACES}/teacher_eval.json",
        timing=f"{PLACES}/teacher/timing.json",
    params:
        cfg={
            "teacher": _places_teacher_keys("arch", "ten_crop", "resize", "crop", "batch_size"),
            "train": {"amp": places_cfg().get("train", {}).get("amp", False)},
        },
        device=config["device"],
        workers=places_cfg().get("workers", 0),
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/places365/teacher_eval.log",
    benchmark:
        f"{BENCH}/places365/teacher_eval.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/distill_places.py"


rule places_student:
    input:
        manifest=rules.places_index.output.manifest,
        train=rules.places_index.output.train,
        val=rules.places_index.output.val,
    output:
        model=f"{PLACES}/students/{{variant}}/model.pt",
        metrics=f"{PLACES}/students/{{variant}}/metrics.json",
        history=f"{PLACES}/students/{{variant}}/history.csv",
        timing=f"{PLACES}/students/{{variant}}/timing.json",
    wildcard_constraints:
        variant="|".join(PLACES_VARIANTS) or "(?!x)x",
    params:
        # only this variant's settings, so that changing one variant reruns only that student
        cfg=lambda wc: {
            "student": places_cfg().get("student", {}),
            "train": places_cfg().get("train", {}),
            "teacher": _places_teacher_keys("arch", "input_size"),
            "variants": {wc.variant: places_cfg()["variants"][wc.variant]},
        },
        seed=config["seed"],
        device=config["device"],
        workers=places_cfg().get("workers", 0),
    threads: config["threads"]
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/places365/student_{{variant}}.log",
    benchmark:
        f"{BENCH}/places365/student_{{variant}}.tsv"
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime"],
        **gpu_resources(),
    script:
        "../scripts/distill_places.py"


rule places_table:
    input:
        teacher=rules.places_teacher.output.json,
        students=[f"{PLACES}/students/{v}/metrics.json" for v in PLACES_VARIANTS],
    output:
        table=f"{PLACES}/table.csv",
        markdown=f"{PLACES}/table.md",
    params:
        variants=PLACES_VARIANTS,
    conda:
        "../envs/train.yaml"
    log:
        f"{LOGS}/places365/table.log",
    benchmark:
        f"{BENCH}/places365/table.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/distill_places.py"
