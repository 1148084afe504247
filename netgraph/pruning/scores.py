"""Pruning scores: one number per weight, and a higher score means *keep*.

Every score has the signature ``score(model, params, ctx) -> list[Tensor]``, one
tensor per param shaped like its weight. :class:`ScoreContext` carries what a score
may need besides the model (batches, loss, device, input shape, seed), so data-free
scores never see data and a new score only reads the fields it uses.

Scores never change the model: they run in eval mode (BN uses its running stats and
leaves them alone, dropout is off; each module's training flag is restored) and take
gradients with ``torch.autograd.grad``, leaving every ``.grad`` untouched. On a
pruned weight the gradient is taken against ``w_orig``: it equals the effective
weight's gradient on every kept weight and is zero on pruned ones, which the
selection never revives anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from netgraph.errors import NetgraphError
from netgraph.modes import eval_mode
from netgraph.parameters import Param, effective_weight
from netgraph.pruning.masks import sync_weights

Batch = tuple[torch.Tensor, torch.Tensor]

# Softmax temperature of GraSP's loss (Wang et al. 2020's code and the SynFlow repo):
# it keeps the Hessian-gradient product from vanishing on confident outputs.
GRASP_TEMPERATURE = 200.0


@dataclass(frozen=True)
class ScoreContext:
    """What a score may use besides the model and its params.

    ``data`` is an iterable of ``(inputs, targets)`` batches and every batch is used,
    so pass a few (iterated methods go through it again each round: give a list or a
    DataLoader, not a one-shot iterator). ``input_shape`` is one example's shape,
    without the batch dimension.
    """

    device: torch.device
    data: Iterable[Batch] | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    input_shape: tuple[int, ...] | None = None
    seed: int = 0


ScoreFn = Callable[[nn.Module, Sequence[Param], ScoreContext], list[torch.Tensor]]


def random(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """Uniform noise from a generator seeded with ``ctx.seed``, drawn on the CPU so
    it is the same on every device: the baseline every method must beat."""
    generator = torch.Generator().manual_seed(ctx.seed)
    return [
        torch.rand(getattr(m, n).shape, generator=generator, dtype=torch.float64).to(ctx.device)
        for m, n in params
    ]


def magnitude(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """``|w|``."""
    return [effective_weight(m, n).detach().abs() for m, n in params]


@torch.enable_grad()
def snip(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """SNIP (Lee et al. 2019): connection sensitivity ``|w * dL/dw|``, the gradient
    summed over the batches. The paper divides by the total, which does not change
    the ranking, so it is left out."""
    variables = _variables(params)
    grads = [torch.zeros_like(v) for v in variables]
    with eval_mode(model):
        for inputs, targets in _batches(ctx, "snip"):
            loss = ctx.loss_fn(model(inputs), targets)
            for total, grad in zip(grads, _grad(loss, variables)):
                total += grad
    return [(effective_weight(m, n) * g).detach().abs() for (m, n), g in zip(params, grads)]


@torch.enable_grad()
def grasp(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """GraSP (Wang et al. 2020), scored ``w * (H g)`` so that higher means keep.

    The paper scores ``S(-w) = -w * (H g)`` and removes the weights with the
    *largest* S (those whose removal reduces the gradient flow least); we return
    ``-S``, as the SynFlow repository does. ``g`` is the loss gradient summed over
    the batches and held constant, ``H g`` the Hessian-gradient product by double
    backpropagation, the loss taken on logits divided by :data:`GRASP_TEMPERATURE`.
    Scores are signed: the weights kept first are those whose removal would shrink
    the gradient norm most.
    """
    variables = _variables(params)
    batches = list(_batches(ctx, "grasp"))  # two passes over the same batches

    def loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ctx.loss_fn(model(inputs) / GRASP_TEMPERATURE, targets)

    with eval_mode(model):
        g = [torch.zeros_like(v) for v in variables]
        for inputs, targets in batches:
            for total, grad in zip(g, _grad(loss(inputs, targets), variables)):
                total += grad
        hg = [torch.zeros_like(v) for v in variables]
        for inputs, targets in batches:
            grads = _grad(loss(inputs, targets), variables, create_graph=True)
            g_dot_grad = sum((a * b).sum() for a, b in zip(g, grads))
            for total, product in zip(hg, _grad(g_dot_grad, variables)):
                total += product
    return [(effective_weight(m, n) * h).detach() for (m, n), h in zip(params, hg)]


@torch.enable_grad()
def synflow(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """SynFlow (Tanaka et al. 2020): ``|w * dR/dw|`` in float64, where ``R`` is the
    sum of the outputs for an all-ones input when every floating parameter and buffer
    (weights, biases, BN affine and running stats, as the SynFlow repo's
    ``linearize``) is replaced by its absolute value. Data-free: needs only
    ``ctx.input_shape``.

    The model itself is never touched: the absolute float64 copies are swapped in
    with ``torch.func.functional_call``, so signs, values, dtypes and BN statistics
    are exactly as before.
    """
    if ctx.input_shape is None:
        raise NetgraphError("synflow needs the input shape (one example, without the batch dimension)")
    state = {
        name: t.detach().abs().double() if t.is_floating_point() else t
        for name, t in chain(model.named_parameters(), model.named_buffers())
    }
    names = {id(p): name for name, p in model.named_parameters()}
    positive = [state[names[id(v)]].requires_grad_() for v in _variables(params)]
    ones = torch.ones((1, *ctx.input_shape), dtype=torch.float64, device=ctx.device)
    try:
        with eval_mode(model):
            output = functional_call(model, state, (ones,))
    finally:
        sync_weights(model)  # prune hooks cached the swapped-in weights on the modules
    if not isinstance(output, torch.Tensor):
        raise NetgraphError("synflow needs a model that returns one tensor")
    grads = _grad(output.sum(), positive)
    return [(g * w).detach().abs() for g, w in zip(grads, positive)]


def _variables(params: Sequence[Param]) -> list[torch.Tensor]:
    """The parameter gradients are taken against: ``w_orig`` if pruned, else ``w``."""
    variables = []
    for module, name in params:
        variable = getattr(module, f"{name}_orig", None)
        if variable is None:
            variable = getattr(module, name)
        if not isinstance(variable, nn.Parameter):
            raise NetgraphError(
                f"gradient scores need {type(module).__name__}.{name} to be a plain or "
                "torch.nn.utils.prune-masked parameter, not a parametrization"
            )
        variables.append(variable)
    return variables


def _grad(
    output: torch.Tensor, variables: Sequence[torch.Tensor], create_graph: bool = False
) -> tuple[torch.Tensor, ...]:
    """``d output / d variables``; zeros for a weight the forward pass did not use."""
    return torch.autograd.grad(
        output, variables, create_graph=create_graph, allow_unused=True, materialize_grads=True
    )


def _batches(ctx: ScoreContext, method: str) -> Iterator[Batch]:
    """The context's batches on its device; no batch at all is an error, not a zero score."""
    empty = True
    for inputs, targets in ctx.data or ():
        empty = False
        yield inputs.to(ctx.device), targets.to(ctx.device)
    if empty:
        raise NetgraphError(f"{method} got no data batches (an exhausted iterator? pass a list)")
