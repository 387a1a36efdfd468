"""Compare two runs: where their machine, software, data, code, configuration and numbers part ways.

    python compare.py 20261130-031709-small-e2 20261201-065416-small-e2
    python compare.py runs/RUN_A runs/RUN_B/run_log.json --json

A run is named by its id in --runs, its folder, or its run_log.json.  The screen lists
every fingerprint field that differs (machine, software, dataset, code, configuration),
then where the numbers part: the first loss line that differs, the weights digest after
each epoch, the final test accuracy and each class's, the final weights.  A verdict ends it:

    identical                                    every number both logs record is equal
    different configuration (fields named)       something that changes what is computed differs
    same computation on different hardware ...   configuration and data equal, the numbers not:
      (diverged at [epoch, batch])               it names what differs (hardware, software, code)

Fields a log does not record (older logs) read "not recorded"; a configuration field added
after a run was made is taken at its default, which is what that run computed.  Exit
status: 0 identical, 1 the runs differ, 2 bad input.  This module imports no torch;
report.py writes results.md's comparisons with the same functions (``compare_runs``,
``markdown``, ``machine_pairs``), so the document and this tool never disagree.
"""
import argparse
import itertools
import json
import sys
from dataclasses import fields as dataclass_fields
from pathlib import Path

import cli
import recipes
import runs
from errors import UserError

EXIT_IDENTICAL, EXIT_DIFFER = 0, 1
LOGITS = "logits"                   # backends.py's name for the network's output among its layers


def _hw(key):
    return lambda r: r.hw.get(key)


def _gpu(r):
    """The GPU's name, "none" where the log says there was none, None where it does not say."""
    return r.hw.get("gpu") or ("none" if "gpu" in r.hw else None)


def _content(r):
    """The dataset's content digest (first 16 hex digits); older logs: the id of its files."""
    d = r.dataset
    return (d.get("content_sha256") or "")[:16] or d.get("id")


def _git(key):
    return lambda r: r.rec["git"].get(key) if isinstance(r.rec.get("git"), dict) else None


# The fingerprint by part: (label, value of a run or None where its log does not record it).
MACHINE = (("CPU", _hw("chip")), ("CPU family and model", _hw("cpu_model_id")),
           ("instruction set", _hw("cpu_capability")), ("architecture", _hw("architecture")),
           ("CPUs", _hw("cpu_count")), ("GPU", _gpu), ("device", lambda r: r.rec.get("device")),
           # logs from before torchrun support ran one process
           ("processes", lambda r: (r.rec.get("distributed") or {}).get("world_size", 1)))
SOFTWARE = (("torch", _hw("torch")), ("torchvision", _hw("torchvision")), ("NumPy", _hw("numpy")),
            ("Python", _hw("python")), ("OS", _hw("os")), ("OS release", _hw("os_release")))
DATA = (("dataset content", _content), ("dataset", lambda r: r.dataset.get("source")),
        ("training images", lambda r: r.dataset.get("train_images")),
        ("test images", lambda r: r.dataset.get("test_images")))
CODE = (("commit", _git("commit")), ("uncommitted changes", _git("dirty")))
# Config fields that change no number: what was asked for where the log records what was used
# (device, precision, threads), where files go, what is printed, and the name of a recipe whose
# options are fields of their own.
BOOKKEEPING = ("device", "precision", "threads", "log_every", "eval_every", "data_dir", "out", "download",
               "progress", "tensorboard", "recipe")
# What was used in place of those requests: part of what a run computed.
USED = (("precision", lambda r: r.rec.get("precision")),
        ("CPU threads", lambda r: r.hw.get("torch_threads") if r.rec.get("device") == "cpu" else None))
CONFIG_DEFAULTS = {f.name: f.default for f in dataclass_fields(recipes.Config)}
PARTS = (("machine", MACHINE), ("software", SOFTWARE), ("data", DATA), ("code", CODE))
# A run's dataset is what it computed on: a different one is a different configuration.
COMPUTATION_PARTS = ("config", "data")


# ---------------------------------------------------------------- reading runs

def locate(name, runs_dir):
    """The run_log.json of ``name``: a run id in ``runs_dir``, a run folder, or a run_log.json."""
    for cand in (Path(runs_dir) / name, Path(name)):
        if cand.is_file():
            return cand
        if (cand / runs.LOG).is_file():
            return cand / runs.LOG
    raise UserError(f"no run {name!r}: neither a run id in {runs_dir} nor a folder or file with a "
                    f"{runs.LOG} (list the runs with: ls {runs_dir})")


def load(name, runs_dir="runs"):
    """The training run ``name`` names (see ``locate``), read and checked by runs.read_run."""
    path = locate(name, runs_dir)
    try:
        run = runs.read_run(path)
    except runs.BadLog as exc:
        raise UserError(f"{path}: {exc}; pass a run_log.json that a training run wrote") from None
    if run.kind != "train":
        raise UserError(f"{path} is a {run.kind} record, not a training run; pass two training runs")
    return run


# ---------------------------------------------------------------- comparing

def _field(part, label, a, b, assumed=()):
    row = {"part": part, "field": label, "a": a, "b": b}
    if assumed:
        row["assumed_default"] = list(assumed)
    return row


def config_fields(a, b):
    """One row per configuration field that changes what is computed: the union of both logs'
    config fields but the BOOKKEEPING ones, then the precision and CPU threads used.  A field one
    log lacks (it predates the field) reads as its default, named in ``assumed_default``."""
    rows = []
    for key in dict.fromkeys([*a.cfg, *b.cfg]):
        if key not in BOOKKEEPING:
            assumed = [side for side, r in (("a", a), ("b", b)) if key not in r.cfg and key in CONFIG_DEFAULTS]
            rows.append(_field("config", key, config_value(a, key), config_value(b, key), assumed))
    return rows + [_field("config", label, get(a), get(b)) for label, get in USED]


def config_value(run, key):
    """``run``'s config field ``key``; its default where the log predates the field; else None."""
    return run.cfg[key] if key in run.cfg else CONFIG_DEFAULTS.get(key)


def fingerprint(a, b):
    """Every fingerprint field of both runs: [{"part", "field", "a", "b"}] (None: not recorded)."""
    rows = [_field(part, label, get(a), get(b)) for part, spec in PARTS for label, get in spec]
    return rows + config_fields(a, b)


def bookkeeping(a, b):
    """The BOOKKEEPING config fields that differ: they change no number."""
    return [_field("bookkeeping", k, config_value(a, k), config_value(b, k)) for k in BOOKKEEPING
            if (k in a.cfg or k in b.cfg) and config_value(a, k) != config_value(b, k)]


def loss_lines(a, b):
    """The loss lines both runs logged ([epoch, batch]): how many, how many differ, the first that does."""
    la = {(e, n): v for e, n, v in a.loss_lines}
    lb = {(e, n): v for e, n, v in b.loss_lines}
    common = [k for k in la if k in lb]
    differ = [k for k in common if la[k] != lb[k]]
    first = ({"epoch": differ[0][0], "batch": differ[0][1], "a": la[differ[0]], "b": lb[differ[0]]}
             if differ else None)
    return {"common": len(common), "differ": len(differ), "only_a": len(la) - len(common),
            "only_b": len(lb) - len(common), "first_difference": first}


def epoch_weights(a, b):
    """The weights digest after each epoch both ran: match True / False, None where one did not log it."""
    out = []
    for ha, hb in zip(a.history, b.history):
        da, db = ha.get("weights_sha256"), hb.get("weights_sha256")
        out.append({"epoch": ha.get("epoch"), "a": da, "b": db,
                    "match": None if not (da and db) else da == db})
    return out


def _minus(x, y):
    return round(y - x, 2) if runs.is_number(x) and runs.is_number(y) else None


def numbers(a, b):
    """Where the numbers part: loss lines, weights per epoch, final accuracy (overall and per
    class, B - A in points) and final weights (and their average with --ema)."""
    pa, pb = a.at().per_class if a.complete else {}, b.at().per_class if b.complete else {}
    final = {}
    for key in ("weights_sha256", "weights_ema_sha256"):
        da, db = a.results.get(key), b.results.get(key)
        if da or db:
            final[key] = {"a": da, "b": db, "equal": None if not (da and db) else da == db}
    return {
        "loss_lines": loss_lines(a, b),
        "epoch_weights": epoch_weights(a, b),
        "accuracy": {"a": a.accuracy, "b": b.accuracy, "difference": _minus(a.accuracy, b.accuracy)},
        "per_class": [{"class": c, "a": pa.get(c), "b": pb.get(c), "difference": _minus(pa.get(c), pb.get(c))}
                      for c in dict.fromkeys([*pa, *pb])],
        "final_weights": final,
    }


def numbers_identical(n):
    """Whether every number both runs record is equal (loss lines only at the batches both logged)."""
    return (n["loss_lines"]["differ"] == 0
            and all(e["match"] is not False for e in n["epoch_weights"])
            and n["accuracy"]["a"] == n["accuracy"]["b"]
            and all(c["a"] == c["b"] for c in n["per_class"])
            and all(w["equal"] is not False for w in n["final_weights"].values()))


def _names(rows):
    return [r["field"] for r in rows]


def divergence(n):
    """(where the numbers first part as [epoch, batch] or None, the words for it)."""
    first = n["loss_lines"]["first_difference"]
    if first:
        return [first["epoch"], first["batch"]], f"diverged at [{first['epoch']}, {first['batch']}]"
    epoch = next((e["epoch"] for e in n["epoch_weights"] if e["match"] is False), None)
    if epoch is not None:
        return None, f"the loss lines agree to their logged digits; the weights differ from epoch {epoch}"
    return None, "the loss lines agree; the final results differ"


def verdict(differs, unrecorded, n):
    """{"kind", "text", "diverged_at"}: identical, configuration, or the same computation on
    different hardware / software / code (or on nothing the logs tell apart)."""
    changed = [r for r in differs if r["part"] in COMPUTATION_PARTS]
    if numbers_identical(n):
        text = "identical: every number both runs record is equal"
        if changed:
            text += f", though their configuration differs ({', '.join(_names(changed))})"
        return {"kind": "identical", "text": text, "diverged_at": None}
    where, how = divergence(n)
    if changed:
        return {"kind": "configuration", "diverged_at": where,
                "text": f"different configuration ({', '.join(_names(changed))}); {how}"}
    kinds = [p for p in ("hardware", "software", "code")
             if any(r["part"] == {"hardware": "machine"}.get(p, p) for r in differs)]
    named = [f"{', '.join(_names(differs))} differ"] if differs else []
    for side, other in (("A", "b"), ("B", "a")):
        only = [r["field"] for r in unrecorded if r[other] is None]
        named += [f"{', '.join(only)} recorded by {side} only"] if only else []
    named = "; ".join(named)
    if kinds:
        text = f"same computation on different {' and '.join(kinds)} ({how}): {named}"
        return {"kind": kinds[0], "text": text, "diverged_at": where}
    text = f"same computation on the same machine, software and code, yet {how}: not reproducible"
    if unrecorded:
        text = f"same computation ({how}); the logs tell nothing apart but: {named}"
    return {"kind": "unexplained", "text": text, "diverged_at": where}


def compare_runs(a, b):
    """Everything ``compare.py`` says about runs ``a`` and ``b`` (``runs.Run``), as a dict:
    {"a", "b", "differs", "unrecorded", "assumed_default", "bookkeeping", "resumes", "numbers",
    "verdict"}; rows of fields are {"part", "field", "a", "b"}."""
    rows = fingerprint(a, b)
    both = [r for r in rows if r["a"] is not None and r["b"] is not None]
    n = numbers(a, b)
    differs = [r for r in both if r["a"] != r["b"]]
    unrecorded = [r for r in rows if (r["a"] is None) != (r["b"] is None)]
    return {
        "a": {"run_id": a.run_id, "path": str(a.path), "status": a.status},
        "b": {"run_id": b.run_id, "path": str(b.path), "status": b.status},
        "differs": differs,
        "unrecorded": unrecorded,
        "equal": [r for r in both if r["a"] == r["b"]],
        "bookkeeping": bookkeeping(a, b),
        "resumes": {"a": a.rec.get("resumes") or [], "b": b.rec.get("resumes") or []},
        "numbers": n,
        "verdict": verdict(differs, unrecorded, n),
    }


# ---------------------------------------------------------------- runs of one computation on two machines

def computation(run):
    """What ``run`` computed, as a key: its configuration and data fields (those ``compare_runs``
    counts as a different configuration), defaults for fields its log predates."""
    keys = sorted(k for k in {*CONFIG_DEFAULTS, *run.cfg} if k not in BOOKKEEPING)
    values = [config_value(run, k) for k in keys] + [get(run) for _, get in USED + DATA]
    return json.dumps(values, sort_keys=True)


def environment(run):
    """Where ``run`` ran, as a key: its machine and software fields."""
    return json.dumps([get(run) for part, spec in PARTS if part in ("machine", "software") for _, get in spec])


def _committed(run):
    return _git("commit")(run) is not None and _git("dirty")(run) is False


def machine_pairs(all_runs):
    """The same computation on different machines or software: for each computation that complete
    runs made in more than one environment, every pair of environments, one run of each compared.
    An environment's run is one of committed code where there is one (a dirty tree's code is
    unknown), the fastest of those (``runs.representative``).  [compare_runs dicts], in run order."""
    groups = {}
    for r in all_runs:
        if r.complete:
            groups.setdefault(computation(r), {}).setdefault(environment(r), []).append(r)
    pairs = []
    for envs in groups.values():
        heads = sorted((runs.representative([r for r in rs if _committed(r)] or rs) for rs in envs.values()),
                       key=lambda r: r.run_id)
        pairs += [compare_runs(a, b) for a, b in itertools.combinations(heads, 2)]
    return sorted(pairs, key=lambda c: (c["a"]["run_id"], c["b"]["run_id"]))


# ---------------------------------------------------------------- text

def show(v):
    """A fingerprint value as text: "not recorded" for None, commits and digests shortened."""
    if v is None:
        return "not recorded"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str) and len(v) == 40 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    return str(v)


def _digest(v):
    return f"{v[:12]}…" if v else "not recorded"


def _pct(v):
    return f"{v:.2f}%" if runs.is_number(v) else "not recorded"


def _resume_text(resumes):
    if not resumes:
        return "never"
    return "; ".join(f"after epoch {r.get('after_epoch')} (on {r.get('device', '?')})" for r in resumes)


def epoch_weights_text(rows):
    if not rows:
        return "no epoch in the history of both"
    if all(r["match"] is None for r in rows):
        return "not recorded per epoch"
    word = {True: "equal", False: "differ", None: "not recorded"}
    return ", ".join(f"epoch {r['epoch']} {word[r['match']]}" for r in rows)


def loss_text(ll):
    if not ll["common"]:
        return "no [epoch, batch] logged by both"
    text = f"{ll['common']} [epoch, batch] logged by both, {ll['differ']} differ"
    first = ll["first_difference"]
    if first:
        text += f"; first at [{first['epoch']}, {first['batch']}]: {first['a']:.6f} vs {first['b']:.6f}"
    if ll["only_a"] or ll["only_b"]:
        text += f" (logged by one only: {ll['only_a']} A, {ll['only_b']} B)"
    return text


def final_weights_text(final):
    if not final:
        return ["not recorded"]
    word = {True: "equal", False: "differ", None: "cannot tell"}
    return [f"{_digest(w['a'])} vs {_digest(w['b'])}: {word[w['equal']]}"
            + (" (weight average)" if key == "weights_ema_sha256" else "") for key, w in final.items()]


def by_part(rows):
    """Fingerprint rows in the order of their parts: machine, software, data, code, config."""
    order = [part for part, _ in PARTS] + ["config"]
    return sorted(rows, key=lambda r: order.index(r["part"]))


def render(cmp):
    """The comparison as one screen of text."""
    a, b = cmp["a"], cmp["b"]
    w = max(len(show(r[s])) for r in cmp["differs"] + cmp["unrecorded"] for s in "ab") if (
        cmp["differs"] or cmp["unrecorded"]) else 12
    w = min(max(w, 12), 34)
    out = [f"A  {a['run_id']}  ({a['status']}; {a['path']})",
           f"B  {b['run_id']}  ({b['status']}; {b['path']})", ""]
    rows = by_part(cmp["differs"] + cmp["unrecorded"])
    if rows:
        out.append(f"{'what differs':<32}  {'A':<{w}}  B")
        out += [f"  {r['part']:<9} {r['field']:<20}  {show(r['a']):<{w}}  {show(r['b'])}" for r in rows]
    else:
        out.append("fingerprint: no recorded field differs")
    equal = [r for r in cmp["equal"] if r["part"] != "config"]
    out.append("  equal: " + ", ".join(f"{r['field']} {show(r['a'])}" for r in equal if r["field"] in (
        "CPU", "GPU", "device", "torch", "Python", "OS", "dataset content", "commit")))
    config_equal = [r for r in cmp["equal"] if r["part"] == "config"]
    if config_equal and not any(r["part"] == "config" for r in cmp["differs"]):
        out.append(f"  equal: every configuration field ({len(config_equal)})")
    for side in "ab":
        older = [r["field"] for r in cmp["equal"] + cmp["differs"] if side in r.get("assumed_default", ())]
        if older:
            out.append(f"  {side.upper()}'s log predates, so read at their defaults: " + ", ".join(older))
    if cmp["bookkeeping"]:
        out.append("  changing no number: " + ", ".join(f"{r['field']} {show(r['a'])} vs {show(r['b'])}"
                                                         for r in cmp["bookkeeping"]))
    res = cmp["resumes"]
    if res["a"] or res["b"]:
        out.append(f"  resumed: A {_resume_text(res['a'])}; B {_resume_text(res['b'])}")
    n = cmp["numbers"]
    acc = n["accuracy"]
    diff = f" ({acc['difference']:+.2f} points)" if acc["difference"] is not None else ""
    out += ["", "numbers (B - A)",
            f"  loss lines     {loss_text(n['loss_lines'])}",
            f"  epoch weights  {epoch_weights_text(n['epoch_weights'])}",
            f"  test accuracy  {_pct(acc['a'])} vs {_pct(acc['b'])}{diff}"]
    if n["per_class"] and any(c["difference"] for c in n["per_class"]):
        out.append("  per class      " + ", ".join(
            f"{c['class']} {c['difference']:+.1f}" if c["difference"] is not None
            else f"{c['class']} {show(c['a'])} vs {show(c['b'])}" for c in n["per_class"]))
    elif n["per_class"]:
        out.append("  per class      equal")
    out += [f"  final weights  {line}" for line in final_weights_text(n["final_weights"])]
    out += ["", f"verdict: {cmp['verdict']['text']}"]
    return "\n".join(out)


def markdown(cmp):
    """The comparison as a Markdown table (what differs, where the numbers part) and its verdict,
    for results.md."""
    a, b = cmp["a"]["run_id"], cmp["b"]["run_id"]
    rows = [[r["field"], show(r["a"]), show(r["b"])] for r in by_part(cmp["differs"] + cmp["unrecorded"])]
    n = cmp["numbers"]
    first = n["loss_lines"]["first_difference"]
    if first:
        rows.append([f"Loss [{first['epoch']}, {first['batch']}] (first that differs)",
                     f"{first['a']:.6f}", f"{first['b']:.6f}"])
    for e in n["epoch_weights"]:
        rows.append([f"Weights sha256 after epoch {e['epoch']}", f"`{_digest(e['a'])}`", f"`{_digest(e['b'])}`"])
    rows.append(["Test accuracy", _pct(n["accuracy"]["a"]), _pct(n["accuracy"]["b"])])
    for key, w in n["final_weights"].items():
        label = "Final weights sha256" if key == "weights_sha256" else "Weight average sha256"
        rows.append([label, f"`{_digest(w['a'])}`", f"`{_digest(w['b'])}`"])
    lines = [f"| Field | `{a}` | `{b}` |", "|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    v = cmp["verdict"]["text"]
    return "\n".join(lines) + f"\n\n**Verdict:** {v[0].upper() + v[1:]}."


def _g(v):
    return f"{v:.3g}" if runs.is_number(v) else "—"


def backends_problem(rec):
    """What in ``rec`` is not as ``backends.py`` writes it (the part ``backends_markdown`` reads), or None."""
    number = runs.is_number
    res, names, src = rec.get("results"), rec.get("backends"), rec.get("source")
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        return "backends is not a list of two or more names"
    if not (isinstance(src, dict) and isinstance(src.get("weights_sha256"), str)
            and isinstance(src.get("run"), (str, type(None))) and isinstance(rec.get("model"), str)):
        return "source or model is not as backends.py writes them"
    if not (isinstance(res, dict) and isinstance(res.get("images"), int) and isinstance(res.get("layers"), list)
            and isinstance(res.get("backends"), dict)):
        return "results are not as backends.py writes them"
    layers = res["layers"]
    if not all(isinstance(r, dict) and isinstance(r.get("layer"), str) and number(r.get("reference_max_abs"))
               and isinstance(r.get("shape"), list) for r in layers) or LOGITS not in [r["layer"] for r in layers]:
        return "results.layers are not as backends.py writes them"
    for i, name in enumerate(names):
        b = res["backends"].get(name)
        if not (isinstance(b, dict) and number(b.get("accuracy")) and isinstance(b.get("predictions_differ"), int)
                and isinstance(b.get("layers"), dict)):
            return f"results.backends.{name} is not as backends.py writes it"
        if i and not all(isinstance(b["layers"].get(r["layer"]), dict)
                         and all(number(b["layers"][r["layer"]].get(k)) for k in ("max_abs_diff", "mean_abs_diff"))
                         for r in layers):
            return f"results.backends.{name}.layers are not as backends.py writes them"
    return None


def backends_markdown(rec):
    """A ``backends.py`` record (one network's weights on several backends) as results.md parts:
    what was measured, a table (per layer: its shape, the reference's largest absolute activation,
    each backend's largest and mean absolute difference from it; then the test predictions that
    differ and the accuracy) and a sentence of finding."""
    res, names = rec["results"], rec["backends"]
    ref, others = names[0], names[1:]
    src = rec["source"]
    what = f"run `{src['run']}`" if src.get("run") else f"weights `{src['weights']}`"
    which = "its weight average, " if src.get("ema") else ""
    intro = (f"The {rec['model']} network of {what} ({which}weights sha256 `{_digest(src['weights_sha256'])}`), "
             f"evaluated on the {res['images']:,} test images by {', '.join(names)} (device and autocast "
             f"precision), every backend given the same fp32 input; the reference is {ref}. Per layer "
             "(the feature layers `visualize_activations.py` hooks, then the logits): the reference's "
             "largest absolute activation, and each backend's largest and mean absolute difference from it "
             f"over the test set. Record `{rec['run_id']}` (`python backends.py"
             + (f" --run {src['run']}" if src.get("run") else "") + "`).")
    headers = ["Layer", "Shape", f"Largest absolute activation ({ref})"]
    headers += [h for o in others for h in (f"Max abs difference ({o})", f"Mean abs difference ({o})")]
    rows = []
    for row in res["layers"]:
        diffs = [res["backends"][o]["layers"][row["layer"]] for o in others]
        rows.append([f"`{row['layer']}`", "x".join(map(str, row["shape"])), _g(row["reference_max_abs"])]
                    + [v for d in diffs for v in (_g(d["max_abs_diff"]), _g(d["mean_abs_diff"]))])
    n = res["images"]
    rows.append(["Test predictions that differ", "", ""]
                + [v for o in others for v in (f"{res['backends'][o]['predictions_differ']:,} of {n:,}", "")])
    rows.append(["Test accuracy", "", f"{res['backends'][ref]['accuracy']:.2f}%"]
                + [v for o in others for v in (f"{res['backends'][o]['accuracy']:.2f}%", "")])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    finding = " ".join(
        f"On {o}, the same weights classify {res['backends'][o]['predictions_differ']:,} of the {n:,} test "
        f"images differently from {ref}; the logits differ by up to "
        f"{_g(res['backends'][o]['layers'][LOGITS]['max_abs_diff'])}." for o in others)
    return [intro, "\n".join(lines), finding]


# ---------------------------------------------------------------- command line

def build_parser():
    p = cli.Parser(prog=Path(__file__).name, description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a", metavar="RUN_A", help="a run id in --runs, a run folder or a run_log.json")
    p.add_argument("run_b", metavar="RUN_B", help="the run to compare it with, named the same ways")
    p.add_argument("--runs", default="runs", help="folder of run folders that run ids name (default: runs)")
    p.add_argument("--json", action="store_true",
                   help="print the comparison as JSON instead of text (default: text)")
    return p


def compare(args):
    cmp = compare_runs(load(args.run_a, args.runs), load(args.run_b, args.runs))
    print(json.dumps(cmp, indent=2) if args.json else render(cmp))
    return EXIT_IDENTICAL if cmp["verdict"]["kind"] == "identical" else EXIT_DIFFER


def main(argv=None):
    return cli.guarded(lambda: compare(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
