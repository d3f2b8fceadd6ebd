"""Snakemake entry point: train one model (teacher or student) of one dataset."""
from xaipipe.data.custom import val_split_problem
from xaipipe.embed import read_vocab
from xaipipe.errors import ConfigError
from xaipipe.io import check_file, load_npy, load_npz, read_json, read_parquet, unreadable
from xaipipe.pipeline import run
from xaipipe.train import train_image_model, train_text_model


def check_inputs(i, stats: dict, cfg: dict, wc) -> None:
    """Damaged inputs and an impossible stratified validation split: one line each, before training (the
    training code reads the splits itself)."""
    rule = "prepare_text" if "vocab" in i.keys() else "prepare_images"
    for path in (i.train, i.test):
        problem = check_file(path)
        if problem is not None:
            raise unreadable(path, problem, rule)
    if "vocab" in i.keys():
        labels = read_parquet(i.train, rule=rule, columns=["label"])["label"].to_numpy()
    else:
        labels = load_npz(i.train, rule=rule, keys=["y"])["y"]
    names = list(stats.get("classes") or [])
    counts: dict[str, int] = {}
    for y in labels.tolist():
        key = str(names[int(y)]) if int(y) < len(names) else str(y)
        counts[key] = counts.get(key, 0) + 1
    problem = val_split_problem(counts, cfg.get("val_fraction", 0.1))
    if problem:
        raise ConfigError(f"{wc.dataset}.models.{wc.model}: {problem}; add training documents, or set "
                          f"{wc.dataset}.models.{wc.model}.val_fraction: 0 (no validation split)")


def main(log):
    i, o, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    outputs = {"model": o.model, "metrics": o.metrics, "history": o.history, "plot": o.plot, "timing": o.timing}
    stats = read_json(i.stats, rule="prepare_text" if "vocab" in i.keys() else "prepare_images")
    check_inputs(i, stats, dict(p.model), wc)
    desc = f"{wc.dataset}/{wc.model}"
    if "vocab" in i.keys():
        tokenizer = {k: p.data[k] for k in ("lowercase", "min_token_len", "max_token_len") if k in p.data}
        train_text_model(i.train, i.test, read_vocab(i.vocab), load_npy(i.vectors, rule="embedding"), stats,
                         dict(p.model), p.seed, p.device, outputs, desc, tokenizer=tokenizer,
                         vectors_file=i.vectors)
    else:
        train_image_model(i.train, i.test, stats, dict(p.model), p.seed, p.device, outputs, desc)


run(snakemake, main)
