"""How different is a look-alike from the identity it imitates, in pixels, next to one identity's own nuisance?

    python baselines/diagnostics/lookalikes.py --data data/small [--size 64] [--limit 300] [--json out.json]

For each look-alike distractor identity of the test (another member of a test identity's family: the generator
changes exactly one identity-bearing part or colour), the test identity and the look-alike are rendered with the
same expression parts (no rotation, no degradation, on white) at --size px, and compared: mean absolute pixel
difference (0-255) and the share of pairs that render identically. The same for the identity against itself with
another expression draw (the nuisance an image of one identity already carries, before rotation, colour jitter,
JPEG...). A look-alike closer than the expression change is not separable from its identity by the pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from baselines.diagnostics import write_report  # noqa: E402
from facedata import avatars  # noqa: E402
from facedata.plan import plan_of  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/small", type=Path)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=300, help="look-alike identities compared (the first ones)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    manifest = json.loads((args.data / "manifest.json").read_text())
    plan = plan_of(manifest)
    test = plan.split("rectest")
    by_family: dict[int, int] = {}
    for item in test:
        if item.label >= 0:
            by_family.setdefault(plan.identities[item.identity].family, item.identity)
    looks = sorted({t.identity for t in test if t.label < 0 and plan.identities[t.identity].family in by_family})
    rng = np.random.default_rng(0)
    look_diff, self_diff, changed = [], [], {}
    for index in looks[: args.limit]:
        look = plan.identities[index]
        base = plan.identities[by_family[look.family]]
        expression = avatars.expression_options(base, rng, occluder_probability=0.0)
        other = avatars.expression_options(base, rng, occluder_probability=0.0)
        a = avatars.on_white(base, expression, args.size)
        look_diff.append(float(np.abs(a - avatars.on_white(look, expression, args.size)).mean()))
        self_diff.append(float(np.abs(a - avatars.on_white(base, other, args.size)).mean()))
        keys = [k for (k, v), (k2, v2) in zip(base.options, look.options, strict=False) if v != v2]
        for key in keys:
            changed[key] = changed.get(key, 0) + 1
    look_diff, self_diff = np.array(look_diff), np.array(self_diff)
    report = {
        "size": args.size,
        "lookalike_identities": len(looks),
        "compared": len(look_diff),
        "lookalike_vs_identity_mean_abs_diff": round(float(look_diff.mean()), 2),
        "lookalike_vs_identity_median": round(float(np.median(look_diff)), 2),
        "lookalike_renders_identical_share": round(float(np.mean(look_diff < 0.05)), 4),
        "lookalike_below_0.5_share": round(float(np.mean(look_diff < 0.5)), 4),
        "identity_other_expression_mean_abs_diff": round(float(self_diff.mean()), 2),
        "lookalike_closer_than_expression_change_share": round(float(np.mean(look_diff < self_diff)), 4),
        "changed_part_counts": dict(sorted(changed.items(), key=lambda kv: -kv[1])),
    }
    write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
