# Helpers of rules/distill_places.smk (functions only): the distill_places section, whether it runs, its
# student variants and the stage's final targets.

PLACES = f"{RESULTS}/places365"


def places_cfg():
    """The distill_places section (schema defaults filled in by rules/common.smk), or {} when absent."""
    return config.get("distill_places") or {}


def places_enabled():
    """Present (a section with ``enabled: false`` is dropped by rules/common.smk, as for every study)."""
    return bool(places_cfg())


PLACES_VARIANTS = list(places_cfg().get("variants", {})) if places_enabled() else []


def distill_places_targets():
    """Final outputs of the Places2 experiment ([] unless distill_places is present and enabled)."""
    if not places_enabled():
        return []
    return (
        [f"{PLACES}/teacher_eval.json", f"{PLACES}/table.csv", f"{PLACES}/table.md"]
        + [f"{PLACES}/students/{v}/metrics.json" for v in PLACES_VARIANTS]
    )


def _places_teacher_keys(*keys):
    t = places_cfg().get("teacher", {})
    return {k: t.get(k) for k in keys}
