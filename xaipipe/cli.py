"""Command-line interface: ``xaipipe predict|explain --model results/ng20/models/teacher/model.pt "text"``.

Errors (missing or unsafe model, empty text, text without a known word, NaN or infinite outputs, a
method parameter its declaration does not allow, a target that is not a class, an output folder that
does not exist) print one clear line and exit with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import InputTextError, XaipipeError, check_finite

NOT_FINITE_FIX = "The model overflows on this text: retrain it (lower lr, grad_clip)"


def encode_text(text: str, meta: dict) -> tuple[list[str], list[int]]:
    """Tokenise ``text`` like the training data and map it to vocabulary ids (OOV dropped)."""
    from .data.text import TokenizerConfig, tokenize

    if not text or not text.strip():
        raise InputTextError("the text is empty: give a document to classify")
    tokens = tokenize(text, TokenizerConfig.from_dict(meta.get("tokenizer")))
    if not tokens:
        raise InputTextError("the text has no word tokens (only punctuation or whitespace)")
    w2i = {w: i for i, w in enumerate(meta["vocab"])}
    known = [t for t in tokens if t in w2i]
    if not known:
        raise InputTextError(f"none of the {len(tokens)} words of the text is in the model's vocabulary "
                             f"({len(w2i) - 1} words), e.g. {tokens[:5]}")
    return known, [w2i[t] for t in known]


def load_text_input(args: argparse.Namespace):
    """The model of ``--model`` and the encoded text argument (``-``: standard input, UTF-8)."""
    from .models import load_checkpoint

    model, meta = load_checkpoint(args.model)
    if "vocab" not in meta:
        raise XaipipeError(f"{args.model} is not a text model (no vocabulary in the checkpoint)")
    if args.text == "-":
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputTextError(f"standard input is not UTF-8 text (byte {exc.start}): convert it first, "
                                 f"e.g. iconv -f latin1 -t utf-8") from None
    else:
        text = args.text
    words, ids = encode_text(text, meta)
    return model, meta, words, ids


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    if args.top < 1:
        raise XaipipeError(f"--top must be at least 1, not {args.top}")
    model, meta, words, ids = load_text_input(args)
    with torch.inference_mode():
        logits = model(torch.tensor([ids]))
    check_finite(logits, f"the output (logits) of {args.model} for this text", NOT_FINITE_FIX)
    probs = torch.softmax(logits, dim=1)[0]
    classes = meta.get("classes") or [str(i) for i in range(len(probs))]
    top = torch.argsort(probs, descending=True)[: args.top]
    print(f"{len(words)} known words")
    for i in top.tolist():
        print(f"{probs[i]:.4f}  {classes[i]}")
    return 0


def explain_request(args: argparse.Namespace) -> dict:
    """The method's parameters from ``--params``, checked against its declaration
    (:mod:`xaipipe.method_params`, the same check as the config's before any job), and the output folders
    of ``--html``/``--png``: every mistake is one line before the model is loaded."""
    import json

    from .method_params import METHOD_PARAMS, check_params, declared_methods, suggest

    if args.method not in METHOD_PARAMS:
        raise XaipipeError(f"unknown explanation method {args.method!r}{suggest(args.method, METHOD_PARAMS)}; "
                           f"known: {', '.join(declared_methods())}")
    try:
        params = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as exc:
        raise XaipipeError(f"--params is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise XaipipeError(f"--params must be a JSON object of parameters, e.g. '{{\"steps\": 100}}', "
                           f"not {args.params}")
    if "method" in params:
        raise XaipipeError(f"--params names a method ({params['method']!r}); the method is --method "
                           f"{args.method!r}: remove 'method' from --params")
    check_params(args.method, params, "--params: ")
    if args.top < 1:
        raise XaipipeError(f"--top must be at least 1, not {args.top}")
    for flag, path in (("--html", args.html), ("--png", args.png)):
        if path:
            folder = Path(path).expanduser().parent
            if not folder.is_dir():
                raise XaipipeError(f"{flag} {path}: the folder {folder} does not exist (create it first)")
            if Path(path).is_dir():
                raise XaipipeError(f"{flag} {path} is a folder; give a file name")
    return params


def check_target(target: int | None, model, meta: dict) -> None:
    if target is None:
        return
    n = len(meta.get("classes") or []) or int(getattr(model, "n_classes", 0) or 0)
    if n and not 0 <= target < n:
        names = meta.get("classes") or []
        listed = f" ({', '.join(f'{i}: {c}' for i, c in enumerate(names))})" if names else ""
        raise XaipipeError(f"--target {target} is not a class of the model: give 0 to {n - 1}{listed}")


def cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from .explain import get_explainer
    from .explain.stage import method_params

    params = explain_request(args)
    model, meta, words, ids = load_text_input(args)
    check_target(args.target, model, meta)
    name, kwargs = method_params({**params, "method": args.method}, meta["vocab"], args.seed)
    explainer = get_explainer(name, model, **kwargs)
    target = None if args.target is None else [args.target]
    exp = explainer.attribute([np.asarray(ids)], target)[0]
    check_finite(exp.relevance, f"the {args.method} relevance of {args.model} for this text",
                 "The model overflows on this text or with these parameters: try other --params, or retrain the "
                 "model (lower lr, grad_clip)")
    classes = meta.get("classes") or []
    label = classes[exp.target] if exp.target < len(classes) else str(exp.target)
    print(f"method {args.method}: target class {label} ({len(words)} known words, {exp.seconds:.3f}s)")
    order = np.argsort(-exp.relevance, kind="stable")[: args.top]
    for rank, j in enumerate(order, 1):
        print(f"{rank:3d}. {words[j]:<20s} {exp.relevance[j]: .4f}")
    if args.html or args.png:
        from .render import render_png, write_html

        signed = bool((exp.relevance < 0).any())
        title = f"{args.method}: class {label}"
        if args.html:
            write_html(args.html, words, exp.relevance, signed=signed, title=title)
        if args.png:
            render_png(args.png, words, exp.relevance, signed=signed, title=title)
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    from .report import update_readme

    section = Path(args.section)
    if not section.is_file():
        raise XaipipeError(f"{section} not found: run the pipeline first (snakemake --cores all), which writes it")
    changed = update_readme(args.readme, section.read_text())
    print(f"{args.readme}: results section {'updated' if changed else 'already up to date'} from {section}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xaipipe", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="classify a text with a trained text model")
    pr.add_argument("--model", required=True, help="path of a model.pt written by the pipeline")
    pr.add_argument("--top", type=int, default=3, help="number of classes to print")
    pr.add_argument("text", help="the document ('-' reads standard input)")
    pr.set_defaults(func=cmd_predict)
    ex = sub.add_parser("explain", help="relevance of every word of a text for one method")
    ex.add_argument("--model", required=True, help="path of a model.pt written by the pipeline")
    ex.add_argument("--method", required=True, help="registered method name (e.g. lrp_zplus, occlusion, rde)")
    ex.add_argument("--params", default=None, help='method parameters as JSON, e.g. \'{"loss": "l4"}\'')
    ex.add_argument("--target", type=int, default=None, help="class index to explain (default: predicted)")
    ex.add_argument("--top", type=int, default=10, help="number of top words to print")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--html", default=None, help="write the heatmap as HTML to this path")
    ex.add_argument("--png", default=None, help="write the heatmap as PNG to this path")
    ex.add_argument("text", help="the document ('-' reads standard input)")
    ex.set_defaults(func=cmd_explain)
    rd = sub.add_parser("readme", help="copy the generated results section into README.md")
    rd.add_argument("--section", default="results/report/README_results.md",
                    help="the section written by the report stage (default: %(default)s)")
    rd.add_argument("--readme", default="README.md", help="the README with the results markers")
    rd.set_defaults(func=cmd_readme)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except XaipipeError as exc:
        print(f"xaipipe: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written, an unreadable input
        from .errors import storage_error

        err = storage_error(exc)
        print(f"xaipipe: error: {err if err is not None else exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
