"""Gradients of random compositions of the primitives agree with an independent autodiff to 1e-8
(float64).

The independent autodiff is HIPS autograd.  A random *program* (a small expression DAG over one
to three input arrays of a shared shape) is written once as data and interpreted twice: with
minivae Tensors and with autograd.numpy arrays.  Its scalar output is the sum of every unused
node times fixed random weights, so every node's gradient matters.  Both gradients must agree
to rtol = atol = 1e-8.

Domains are kept safe by construction: log and sqrt see softplus(u) + 0.1, log1p sees
softplus(u), a real power sees a positive base, a division divides by 1 + u², and a step whose
values leave [-1e6, 1e6] (say exp of exp of exp) is dropped while the program is drawn.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from types import SimpleNamespace

import autograd.numpy as anp
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
from autograd import grad
from autograd.scipy.special import expit, logsumexp
from hypothesis import event, given, settings

import minivae as mv


def _autograd_transpose(x, axes):
    # autograd inverts the permutation with argsort, which is wrong for negative axes, so the
    # oracle gets them written as non-negative ones; minivae gets them as drawn.
    if not axes:
        return anp.transpose(x)
    return anp.transpose(x, tuple(a % anp.ndim(x) for a in axes))


def _autograd_where(mask, a, b):
    # autograd's own ``where`` VJP does not undo broadcasting of its branches, so the oracle
    # selects with a 0/1 mask instead: a·m + b·(1 − m) is exact for the finite values used here.
    chosen = np.asarray(mask, dtype=np.float64)
    return anp.add(anp.multiply(chosen, a), anp.multiply(1.0 - chosen, b))


def _autograd_logsumexp(x, axis=None, keepdims=False):
    # A reduction over no axes (axis=(), or any axis of a 0-d array) leaves x as it is.  SciPy's
    # logsumexp gives such a result a spurious axis and autograd's VJP inherits it, so the
    # oracle writes that case out as the identity.
    if axis == () or anp.ndim(x) == 0:
        return x
    return logsumexp(x, axis=axis, keepdims=keepdims)


# minivae's primitives under minivae's names, built from autograd.numpy.  relu and leaky_relu
# use ``where`` so that the subgradient at 0 is the same as minivae's (autograd's ``maximum``
# would split it 1/2 : 1/2 on a tie); their branches have one shape, which autograd handles.
AUTOGRAD_OPS = SimpleNamespace(
    add=anp.add, sub=anp.subtract, mul=anp.multiply, div=anp.divide, neg=anp.negative,
    pow=anp.power, matmul=anp.matmul,
    exp=anp.exp, log=anp.log, log1p=anp.log1p, sqrt=anp.sqrt, tanh=anp.tanh, sigmoid=expit,
    relu=lambda x: anp.where(x > 0, x, 0.0),
    leaky_relu=lambda x, slope: anp.where(x > 0, x, slope * x),
    softplus=lambda x: anp.logaddexp(0.0, x),
    sum=anp.sum, mean=anp.mean, max=anp.max, logsumexp=_autograd_logsumexp,
    reshape=anp.reshape, transpose=_autograd_transpose, getitem=lambda x, index: x[index],
    concatenate=anp.concatenate, stack=anp.stack, where=_autograd_where,
)

# One program step per primitive, written once against a namespace ``ops`` (minivae or the
# autograd one above).  Composite steps keep the primitive's input inside its domain.
STEPS = {
    "add": lambda ops, a, b: ops.add(a, b),
    "sub": lambda ops, a, b: ops.sub(a, b),
    "mul": lambda ops, a, b: ops.mul(a, b),
    "div": lambda ops, a, b: ops.div(a, ops.add(ops.mul(b, b), 1.0)),
    "neg": lambda ops, a: ops.neg(a),
    "pow_int": lambda ops, a, p: ops.pow(a, p),
    "pow_real": lambda ops, a, p: ops.pow(ops.add(ops.softplus(a), 0.1), p),
    "matmul": lambda ops, a, b, b_axes: ops.matmul(a, ops.transpose(b, b_axes) if b_axes else b),
    "exp": lambda ops, a: ops.exp(a),
    "log": lambda ops, a: ops.log(ops.add(ops.softplus(a), 0.1)),
    "log1p": lambda ops, a: ops.log1p(ops.softplus(a)),
    "sqrt": lambda ops, a: ops.sqrt(ops.add(ops.softplus(a), 0.1)),
    "tanh": lambda ops, a: ops.tanh(a),
    "sigmoid": lambda ops, a: ops.sigmoid(a),
    "relu": lambda ops, a: ops.relu(a),
    "leaky_relu": lambda ops, a, slope: ops.leaky_relu(a, slope),
    "softplus": lambda ops, a: ops.softplus(a),
    "sum": lambda ops, a, axis, keepdims: ops.sum(a, axis=axis, keepdims=keepdims),
    "mean": lambda ops, a, axis, keepdims: ops.mean(a, axis=axis, keepdims=keepdims),
    "max": lambda ops, a, axis, keepdims: ops.max(a, axis=axis, keepdims=keepdims),
    "logsumexp": lambda ops, a, axis, keepdims: ops.logsumexp(a, axis=axis, keepdims=keepdims),
    "reshape": lambda ops, a, shape: ops.reshape(a, shape),
    "transpose": lambda ops, a, axes: ops.transpose(a, axes),
    "getitem": lambda ops, a, index: ops.getitem(a, index),
    "concatenate": lambda ops, *parts, axis: ops.concatenate(list(parts), axis=axis),
    "stack": lambda ops, *parts, axis: ops.stack(list(parts), axis=axis),
    "where": lambda ops, a, b, mask: ops.where(mask, a, b),
}


@dataclass
class Step:
    op: str
    args: tuple[int, ...]
    params: dict = field(default_factory=dict)


@dataclass
class Program:
    inputs: list[np.ndarray]
    steps: list[Step]
    weights: dict[int, np.ndarray]  # node -> weights of its term in the scalar output

    def __repr__(self) -> str:
        lines = [f"inputs v0..v{len(self.inputs) - 1} of shape {self.inputs[0].shape}"]
        for number, step in enumerate(self.steps, start=len(self.inputs)):
            args = ", ".join(f"v{i}" for i in step.args)
            params = "".join(f", {k}={v!r}" for k, v in step.params.items())
            lines.append(f"v{number} = {step.op}({args}{params})")
        lines.append("output = " + " + ".join(f"sum(v{i} * w{i})" for i in self.weights))
        return "\n".join(lines)


def run(program: Program, ops, inputs):
    """Evaluate ``program`` on ``inputs`` with the primitives in ``ops``; return the scalar."""
    nodes = list(inputs)
    for step in program.steps:
        nodes.append(STEPS[step.op](ops, *(nodes[i] for i in step.args), **step.params))
    total = None
    for i, weight in program.weights.items():
        term = ops.sum(ops.mul(nodes[i], weight))
        total = term if total is None else ops.add(total, term)
    return total


# -- drawing random programs -------------------------------------------------------------------

UNARY = ["neg", "exp", "log", "log1p", "sqrt", "tanh", "sigmoid", "relu", "softplus"]
BINARY = ["add", "sub", "mul", "div", "where"]
REDUCTIONS = ["sum", "mean", "max", "logsumexp"]
OTHERS = ["pow_int", "pow_real", "leaky_relu", "matmul", "reshape", "transpose", "getitem",
          "concatenate", "stack"]
ALL_STEPS = UNARY + BINARY + REDUCTIONS + OTHERS
assert sorted(ALL_STEPS) == sorted(STEPS)


def _broadcasts(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def _draw_node(draw, nodes, candidates=None) -> int:
    # Counting back from the newest node makes shrinking prefer deep chains over the inputs.
    candidates = list(range(len(nodes))) if candidates is None else candidates
    return candidates[len(candidates) - 1 - draw(st.integers(0, len(candidates) - 1))]


def _draw_axis(draw, ndim: int):
    options = [st.none(), hnp.valid_tuple_axes(ndim)]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
    return draw(st.one_of(options))


def _draw_index(draw, shape: tuple):
    kind = draw(st.sampled_from(["basic", "repeated_rows", "arrays", "mask"]))
    if kind == "basic":
        return draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    if kind == "repeated_rows":
        rows = draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5))
        return np.array(rows + rows[:1])  # one row at least twice: its gradient must add up
    if kind == "arrays":
        return draw(hnp.integer_array_indices(shape))
    mask_shape = shape[: draw(st.integers(1, len(shape)))]
    return draw(hnp.arrays(np.bool_, mask_shape))


def _draw_step(draw, op: str, nodes: list[np.ndarray]) -> Step | None:
    """A random ``op`` step over the current nodes, or None if ``op`` does not fit them."""
    a = _draw_node(draw, nodes)
    shape, ndim = nodes[a].shape, nodes[a].ndim
    if op in UNARY:
        return Step(op, (a,))
    if op in BINARY:
        partners = [i for i, node in enumerate(nodes) if _broadcasts(shape, node.shape)]
        b = _draw_node(draw, nodes, partners)
        if op != "where":
            return Step(op, (a, b))
        out_shape = np.broadcast_shapes(shape, nodes[b].shape)
        mask_shape = draw(hnp.broadcastable_shapes(out_shape, max_dims=len(out_shape)))
        return Step(op, (a, b), {"mask": draw(hnp.arrays(np.bool_, mask_shape))})
    if op in REDUCTIONS:
        return Step(op, (a,), {"axis": _draw_axis(draw, ndim), "keepdims": draw(st.booleans())})
    if op == "pow_int":
        return Step(op, (a,), {"p": draw(st.sampled_from([2, 3]))})
    if op == "pow_real":
        return Step(op, (a,), {"p": draw(st.sampled_from([-1.5, -1.0, 0.5, 1.5, 2.5]))})
    if op == "leaky_relu":
        return Step(op, (a,), {"slope": draw(st.sampled_from([0.01, 0.2]))})
    if op == "reshape":
        size = nodes[a].size
        options = [(size,), (-1, 1), (1, size), tuple(reversed(shape))]
        options += [(d, -1) for d in range(2, size) if size % d == 0]
        return Step(op, (a,), {"shape": draw(st.sampled_from(options))})
    if op == "transpose":
        permutation = draw(st.permutations(range(ndim)))
        negative = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
        axes = tuple(p - ndim if n else p for p, n in zip(permutation, negative))
        return Step(op, (a,), {"axes": draw(st.sampled_from([axes, ()]))})
    if ndim == 0:
        return None  # matmul, getitem, concatenate and stack below need at least one axis
    if op == "matmul":
        options = []
        for j, node in enumerate(nodes):
            if node.ndim == 0:
                continue
            swapped = tuple(range(node.ndim - 2)) + (node.ndim - 1, node.ndim - 2)
            for b_axes in ([(), swapped] if node.ndim >= 2 else [()]):
                other = np.transpose(node, b_axes) if b_axes else node
                try:
                    np.matmul(nodes[a], other)
                except ValueError:
                    continue
                options.append((j, b_axes))
        if not options:
            return None
        j, b_axes = draw(st.sampled_from(options))
        return Step(op, (a, j), {"b_axes": b_axes})
    if op == "getitem":
        return Step(op, (a,), {"index": _draw_index(draw, shape)})
    if op == "concatenate":
        axis = draw(st.integers(-ndim, ndim - 1))
        fits = [
            i for i, node in enumerate(nodes)
            if node.ndim == ndim
            and all(n == m for k, (n, m) in enumerate(zip(node.shape, shape)) if k != axis % ndim)
        ]
        others = [_draw_node(draw, nodes, fits) for _ in range(draw(st.integers(1, 2)))]
        return Step(op, (a, *others), {"axis": axis})
    same_shape = [i for i, node in enumerate(nodes) if node.shape == shape]  # op == "stack"
    others = [_draw_node(draw, nodes, same_shape) for _ in range(draw(st.integers(0, 2)))]
    return Step(op, (a, *others), {"axis": draw(st.integers(-ndim - 1, ndim))})


def _usable(value: np.ndarray) -> bool:
    return value.size > 0 and bool(np.all(np.isfinite(value))) and np.max(np.abs(value)) < 1e6


@st.composite
def programs(draw, share_an_intermediate: bool = False) -> Program:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), label="shape")
    elements = st.floats(-2, 2, allow_nan=False, allow_subnormal=False)
    inputs = [
        draw(hnp.arrays(np.float64, shape, elements=elements), label="input")
        for _ in range(draw(st.integers(1, 3)))
    ]
    # The ops come from a generator seeded by hypothesis and by the input values: drawn directly
    # (or from a seed alone), hypothesis favours its simplest choices (the first op, the fewest
    # steps, seed 0) and would test the same few programs over and over.
    op_seed = draw(st.integers(0, 2**32 - 1), label="op_seed")
    input_digest = zlib.crc32(b"".join(x.tobytes() for x in inputs) + bytes(shape))
    op_rng = np.random.default_rng([op_seed, input_digest, len(inputs)])
    n_steps = int(op_rng.integers(3, 9))
    nodes, steps = list(inputs), []
    for _ in range(3 * n_steps):  # a step that does not fit or leaves the safe range is dropped
        if len(steps) == n_steps:
            break
        step = _draw_step(draw, str(op_rng.choice(ALL_STEPS)), nodes)
        if step is None:
            continue
        with np.errstate(all="ignore"):
            value = STEPS[step.op](AUTOGRAD_OPS, *(nodes[i] for i in step.args), **step.params)
        if _usable(np.asarray(value)):
            steps.append(step)
            nodes.append(np.asarray(value))

    if share_an_intermediate and steps:
        # Feed one intermediate into two more places: v·v, then that added to the newest node.
        shared = draw(st.integers(len(inputs), len(nodes) - 1), label="shared")
        square = nodes[shared] * nodes[shared]
        if _usable(square) and _broadcasts(square.shape, nodes[-1].shape):
            steps.append(Step("mul", (shared, shared)))
            nodes.append(square)
            steps.append(Step("add", (len(nodes) - 2, len(nodes) - 1)))
            nodes.append(nodes[-2] + square)

    used = {i for step in steps for i in step.args}
    uses = [i for step in steps for i in step.args]
    if any(uses.count(i) > 1 for i in used):
        event("some node feeds several steps")
    weight_rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="weight_seed"))
    weights = {
        i: weight_rng.uniform(-1, 1, node.shape) for i, node in enumerate(nodes) if i not in used
    }
    return Program(inputs, steps, weights)


# -- the comparison ----------------------------------------------------------------------------


def _compare_with_autograd(program: Program) -> None:
    leaves = [mv.Tensor(x.copy(), requires_grad=True) for x in program.inputs]
    output = run(program, mv, leaves)
    output.backward()
    ours = [np.zeros_like(x) if leaf.grad is None else leaf.grad for x, leaf in
            zip(program.inputs, leaves)]

    theirs = grad(lambda xs: run(program, AUTOGRAD_OPS, xs))(list(program.inputs))
    reference_output = run(program, AUTOGRAD_OPS, program.inputs)

    np.testing.assert_allclose(output.item(), reference_output, rtol=1e-10, atol=1e-10)
    for i, (mine, reference) in enumerate(zip(ours, theirs)):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(
            mine, reference, rtol=1e-8, atol=1e-8, err_msg=f"gradient of input v{i}"
        )


# Under the ci profile (max_examples=50) this draws 2 × 50 = 100 random programs, each of 3-8
# steps over 1-3 inputs; the dev profile draws five times as many.
@settings(max_examples=2 * settings().max_examples)
@given(program=programs())
def test_random_programs_match_autograd(program):
    _compare_with_autograd(program)


# Under the ci profile this draws 50 more programs, each with an intermediate reused twice.
@given(program=programs(share_an_intermediate=True))
def test_programs_with_shared_intermediates_match_autograd(program):
    _compare_with_autograd(program)


def test_oracle_agrees_on_a_hand_written_program(rng):
    # A fixed program touching every primitive once, so none of them can be skipped by chance.
    x, y = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (3, 4))
    mask = rng.random((1, 4)) > 0.5

    def program(ops, xs):
        a, b = xs
        h = ops.tanh(ops.add(ops.mul(a, b), ops.sub(a, ops.neg(b))))  # h is reused below
        u = ops.div(ops.exp(h), ops.add(ops.mul(b, b), 1.0))
        v = ops.log(ops.add(ops.softplus(u), 0.1))
        w = ops.sqrt(ops.log1p(ops.sigmoid(ops.pow(h, 2))))
        z = ops.matmul(ops.relu(v), ops.transpose(ops.leaky_relu(w, 0.1), (1, 0)))
        s = ops.stack([ops.max(z, axis=1), ops.logsumexp(h, axis=1)], axis=-1)
        c = ops.concatenate([ops.reshape(s, (-1,)), ops.getitem(a, (np.array([0, 0, 2]), 1))])
        t = ops.where(mask, h, ops.mul(h, u))
        return ops.add(ops.sum(ops.mul(c, c)), ops.mean(ops.mul(t, 3.0)))

    leaves = [mv.Tensor(x, requires_grad=True), mv.Tensor(y, requires_grad=True)]
    program(mv, leaves).backward()
    theirs = grad(lambda xs: program(AUTOGRAD_OPS, xs))([x, y])
    for leaf, reference in zip(leaves, theirs):
        np.testing.assert_allclose(leaf.grad, reference, rtol=1e-8, atol=1e-8)
