"""Snakemake entry point of the Places2 distillation rules (report section 7.4; rules/distill_places.smk):
index the images and locate the teacher weights, evaluate the teacher, train one student variant, or
write the table -- chosen by the rule's name."""
from xaipipe.distill.places import index_stage, student_stage, table_stage, teacher_stage
from xaipipe.pipeline import run


def main(log):
    i, o, p, rule = snakemake.input, snakemake.output, snakemake.params, snakemake.rule
    if rule == "places_index":
        m = index_stage(dict(p.cfg), p.raw_dir, p.mirror, p.offline, p.verify, p.seed,
                        {"manifest": o.manifest, "train": o.train, "val": o.val})
        log.info("%s layout at %s; teacher weights %s (%s)", m["layout"], m["root"], m["teacher"]["path"],
                 m["teacher"]["source"])
    elif rule == "places_teacher":
        teacher_stage(i.manifest, i.val, dict(p.cfg), p.device, p.workers, o.json, o.timing)
    elif rule == "places_student":
        student_stage(i.manifest, i.train, i.val, dict(p.cfg), snakemake.wildcards.variant, p.seed, p.device,
                      p.workers, {"model": o.model, "metrics": o.metrics, "history": o.history, "timing": o.timing})
    elif rule == "places_table":
        table_stage(i.teacher, dict(zip(p.variants, i.students)), o.table, o.markdown)
    else:
        raise ValueError(f"scripts/distill_places.py does not serve rule {rule!r}")


run(snakemake, main)
