# Helpers of rules/report.smk (functions only): the report's tables of the active stages, the explained
# models and their ranking files.


def report_tables():
    """name -> (stage table CSV, caption) for every active stage (a stage's table appears once the stage
    is configured)."""
    t = {"models_accuracy": (f"{RESULTS}/summary/models.csv",
                             "Test accuracy of every teacher and student (report sections 2 and 7)")}
    if distill_mnist_targets():
        t["mnist_kd_table1"] = (f"{RESULTS}/mnist/distill/kd/table1.csv",
                                "Explanation-guided KD on MNIST: misclassifications out of 10,000 (report Table 1)")
    for d in feedback_datasets():
        t[f"feedback_{d}"] = (f"{RESULTS}/{d}/distill/feedback/table.csv",
                              f"Feedback distillation and self-feedback, {d} (report sections 7.2 and 8)")
    if distill_places_targets():
        t["places365"] = (f"{RESULTS}/places365/table.csv", "Places2 teacher and students (report section 7.4)")
    if rnn_targets():
        t["rnn_table4_3"] = (f"{RESULTS}/rnn/tables/table4_3.csv",
                             "Parameter counts of the RNN cells (thesis draft Table 4.3)")
        t["rnn_table4_5"] = (f"{RESULTS}/rnn/tables/table4_5.csv",
                             "Test accuracy of the RNN cells against the criteria of Table 4.4 (thesis Table 4.5)")
    for d in xdistill_datasets():
        for n, cap in (("2", "accuracy of teacher and students (XDistillation Table II)"),
                       ("3", "parameters and accuracy of the distillation methods (Table III)"),
                       ("4", "mean squared distance of teacher and student explanations (Table IV)"),
                       ("5", "sign agreement of the top-k superpixels (Table V)")):
            t[f"xdistill_{d}_table{n}"] = (f"{RESULTS}/xdistill/{d}/tables/table{n}.csv", f"XDistillation {d}: {cap}")
    for d in XNET_DATASETS:
        t[f"xnet_{d}_table1"] = (f"{RESULTS}/xnet/{d}/table1.csv",
                                 f"XNet Table 1 on {d}: baseline vs XNet test accuracy beside the paper's CelebA values")
    if claims_files():
        t["claims"] = (f"{RESULTS}/summary/claims.csv",
                       "The report's claims on explanation methods (sections 6.1-6.5), checked on this run's curves")
    return t


def explained_models():
    """(dataset, model) of every explained model: the results part of the index, in config order."""
    return [{"dataset": d, "model": m} for d in config["datasets"]
            for m in ((config[d].get("explain") or {}).get("models") or [])]


def ranking_files(name="ranking.csv"):
    """title -> the ranking ``name`` of every explained model: ranking.csv (the deletion-curve rankings)
    or distortion_ranking.csv."""
    out = {}
    for d in config["datasets"]:
        ex = config[d].get("explain")
        for m in (ex or {}).get("models", []):
            out[f"{d} {m}"] = f"{RESULTS}/{d}/evaluate/{m}/{name}"
    return out


def distortion_ranking_files():
    """title -> distortion_ranking.csv of every explained model."""
    return ranking_files("distortion_ranking.csv")
