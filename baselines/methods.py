"""Build a training objective from a config: the method (`METHODS`), its head(s), margin loss and criterion.

    objective = build_objective("full_model", embedding_dim=512, num_classes=C, num_aux_classes=A,
                                head="norm_linear", loss={"name": "arcface", "scale": 64.0},
                                criterion={"name": "cross_entropy"}, method_args={"beta": 0.1})
    loss, parts = objective(embeddings, labels, domains)

`METHODS[name].uses_aux` tells the data side whether batches mix in the auxiliary domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from baselines.domain import FullModel
from baselines.fusion import InterFaceFusion, IntraFaceFusion, Plain
from baselines.heads import build_head
from baselines.losses import build_criterion, build_loss
from baselines.registry import lookup


@dataclass(frozen=True)
class Method:
    name: str
    uses_aux: bool
    default_aux_fraction: float | None  # share of each batch from the auxiliary domain; None: by dataset size
    summary: str


METHODS: dict[str, Method] = {
    "plain": Method("plain", False, None, "one classifier over the cartoon identities"),
    "inter_fusion": Method("inter_fusion", True, None, "2019: multi-task, a cartoon and an auxiliary classifier"),
    "intra_fusion": Method("intra_fusion", True, None, "2019: auxiliary identities as extra classes of one classifier"),
    "full_model": Method("full_model", True, 0.25, "2020: two-domain classification + rejection + domain loss"),
}


def _args(spec: dict) -> tuple[str, dict]:
    spec = dict(spec)
    if "name" not in spec:
        raise ValueError(f"a loss or criterion needs a 'name'; got {spec}")
    return spec.pop("name"), spec


def _build(builder, spec: dict, kind: str) -> nn.Module:
    name, kwargs = _args(spec)
    try:
        return builder(name, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{kind} {name!r}: bad arguments {sorted(kwargs)} ({exc})") from None


def build_objective(
    method: str,
    *,
    embedding_dim: int,
    num_classes: int,
    num_aux_classes: int = 0,
    head: str = "norm_linear",
    loss: dict,
    criterion: dict | None = None,
    method_args: dict | None = None,
) -> nn.Module:
    """The objective module of a method. Unknown names raise KeyError listing the valid ones; wrong arguments
    raise ValueError naming the loss, criterion or method."""
    spec = lookup(METHODS, method, "method")
    criterion = criterion or {"name": "cross_entropy"}
    method_args = dict(method_args or {})
    if spec.uses_aux and num_aux_classes < 1:
        raise ValueError(f"method {method!r} needs auxiliary-domain identities; the data has none")
    crit = _build(build_criterion, criterion, "criterion")
    try:
        if method == "plain":
            return Plain(
                build_head(head, embedding_dim, num_classes), _build(build_loss, loss, "loss"), crit, **method_args
            )
        if method == "intra_fusion":
            head_ = build_head(head, embedding_dim, num_classes + num_aux_classes)
            return IntraFaceFusion(head_, _build(build_loss, loss, "loss"), crit, num_classes, **method_args)
        heads = (build_head(head, embedding_dim, num_classes), build_head(head, embedding_dim, num_aux_classes))
        margins = (_build(build_loss, loss, "loss"), _build(build_loss, loss, "loss"))
        if method == "inter_fusion":
            return InterFaceFusion(*heads, *margins, crit, **method_args)
        return FullModel(*heads, *margins, crit, embedding_dim=embedding_dim, **method_args)
    except TypeError as exc:
        raise ValueError(f"method {method!r}: bad arguments {sorted(method_args)} ({exc})") from None
