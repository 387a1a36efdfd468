"""The recipe ablation's statistics: each set of recipe options, evaluated each way its runs were, over seeds.

    >>> rows = ablation_rows(runs)               # runs.Run objects of one model and validation split
    >>> paired_change(rows[1], rows[0], 0)      # (mean change of val accuracy over the shared seeds, True)

A run with a validation split (``--val N``) records its final weights evaluated every way that needs
no training (``Run.evaluations``), so one group of runs gives the rows "seed's recipe", "+ EMA",
"+ flip TTA" and both (and with --tta-translate, flip TTA on shifted views).  report.py writes these
rows as tables; this module imports no torch.
"""
from dataclasses import dataclass

import recipes
from runs import by_seed, group, representative, sample_std, training_options

# (evaluation variant a run logs, what it adds to the seed's recipe's evaluation)
VARIANTS = (("model", ()), ("ema", ("ema",)), ("model+tta", ("tta",)), ("ema+tta", ("ema", "tta")),
            ("model+tta+translate", ("tta", "translate")), ("ema+tta+translate", ("ema", "tta", "translate")))
OPTION_TEXT = {
    "label_smoothing": lambda v: f"label smoothing {v}",
    "nesterov": lambda v: "Nesterov" if v else "no Nesterov",
    "decay_norm_bias": lambda v: "weight decay on norms and biases" if v else "no weight decay on norms and biases",
    "cutout": lambda v: f"Cutout {v} px",
}


SEED_LABEL, RECIPE_LABEL = "seed's recipe", "the recipe"     # the row every other is set against


def options_key(cfg):
    """``cfg``'s training options as a sorted tuple: the key that groups an ablation's runs (for a
    network with a recipe of its own, its augmentation and schedule where they leave it)."""
    options = training_options(cfg)
    if recipes.own_recipe(model := cfg.get("model")):
        own = recipes.config_for(model)
        options |= {k: cfg[k] for k in recipes.OWN_SCHEDULE if k in cfg and cfg[k] != getattr(own, k)}
    return tuple(sorted(options.items(), key=str))


def options_text(options):
    return ", ".join(OPTION_TEXT[k](v) if k in OPTION_TEXT else f"{k} {v}" for k, v in options)


def evaluation_text(ema, tta, translate=False):
    """"EMA 0.999 + flip TTA" ("" for the model alone); "flip and translation TTA" with ``translate``."""
    tta = ("flip and translation TTA" if translate else "flip TTA") if tta else ""
    return " + ".join(x for x in (f"EMA {ema}" if ema else "", tta) if x)


def mean_sd(xs):
    return sum(xs) / len(xs), sample_std(xs)


@dataclass(frozen=True)
class AblationRow:
    """One training configuration evaluated one way, over its seeds: {seed: (val %, test %)}."""
    label: str
    values: dict
    runs: tuple
    named: bool = False         # the row --recipe best trains and evaluates

    @property
    def base(self):
        return self.label in (SEED_LABEL, RECIPE_LABEL)

    @property
    def n(self):
        return len(self.values)

    def stat(self, i):
        return mean_sd([v[i] for v in self.values.values()])


def best_recipe_row(model):
    """(training options, evaluation variant) of ``model``'s ``--recipe best`` in an ablation's terms."""
    best_ = recipes.recipe(model).best
    return (options_key(best_ | {"model": model}), recipes.variant_name(best_.get("ema"), best_.get("tta"))) \
        if best_ else None


def evaluated_row(label, grp, variant, named=False):
    """The row of ``grp``'s runs evaluated as ``variant``, one run a seed; None if none was."""
    used = [r for rs in by_seed(grp).values()
            if (r := representative([r for r in rs if variant in r.evaluations])) is not None]
    return AblationRow(label, {r.seed: (r.evaluations[variant]["val"], r.evaluations[variant]["test"])
                               for r in used}, tuple(used), named) if used else None


def own_recipe_rows(model, groups):
    """A network with a recipe of its own: the whole recipe as it evaluates, then the same weights evaluated
    the other ways its runs were and each set of options off it, labelled by the flags that set them, the
    largest loss of validation accuracy (paired by seed) first."""
    recipe, cfg = recipes.recipe(model), recipes.config_for(model)
    own = recipes.variant_name(cfg.ema, cfg.tta, cfg.tta_translate)
    variants = sorted(VARIANTS, key=lambda v: v[0] != own)        # the recipe's own evaluation first
    rows = []
    for options, grp in groups:
        for variant, evaluated in variants if not options else variants[:1]:
            flags = dict(options) | dict(ema=cfg.ema if "ema" in evaluated else 0.0, tta="tta" in evaluated,
                                         tta_translate="translate" in evaluated)
            if not flags["tta"]:
                flags["tta_translate"] = cfg.tta_translate    # without TTA there is nothing to translate
            label = " ".join(recipe.flags(**flags))
            if row := evaluated_row(f"`{label}`" if label else RECIPE_LABEL, grp, variant):
                rows.append(row)
    base = next((r for r in rows if r.base), None)
    return rows if base is None else [base] + sorted((r for r in rows if r is not base),   # the costliest first
                                                     key=lambda r: paired_change(r, base, 0)[0])


def ablation_rows(runs):
    """The seed's recipe, then each set of training options evaluated every way its runs were (a network
    with a recipe of its own: ``own_recipe_rows``)."""
    groups = sorted(group(runs, lambda r: options_key(r.cfg)).items(), key=lambda kv: (len(kv[0]), str(kv[0])))
    if runs and recipes.own_recipe(runs[0].model):
        return own_recipe_rows(runs[0].model, groups)
    named = best_recipe_row(runs[0].model) if runs else None
    rows = []
    for options, grp in groups:
        decay = next((r.cfg.get("ema") for r in grp if r.cfg.get("ema")), None)
        for variant, evaluated in VARIANTS:
            extra = evaluation_text(decay if "ema" in evaluated else None, "tta" in evaluated,
                                    "translate" in evaluated)
            label = SEED_LABEL if not options and not extra else "+ " + " + ".join(
                x for x in (options_text(options), extra) if x)
            is_named = (options, variant) == named
            if row := evaluated_row(label + (" (`--recipe best`)" if is_named else ""), grp, variant, is_named):
                rows.append(row)
    return rows


def paired_change(row, base, i):
    """(mean change of val (i=0) or test (i=1) accuracy from ``base`` over the seeds both ran, True);
    (change of the means, False) when they share no seed."""
    shared = [s for s in row.values if s in base.values]
    if not shared:
        return row.stat(i)[0] - base.stat(i)[0], False
    return sum(row.values[s][i] - base.values[s][i] for s in shared) / len(shared), True


def ablations(runs, models):
    """[((model, base), rows)] of ablation ``runs`` by model (in the order of ``models``) and shared base."""
    out = []
    for model in models:
        bases = group([r for r in runs if r.model == model], lambda r: r.ablation_base)
        out += [((model, b), rows) for b in sorted(bases, key=str) if (rows := ablation_rows(bases[b]))]
    return out
