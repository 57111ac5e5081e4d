"""The importance-weighted bound L_k (Burda, Grosse & Salakhutdinov 2016).

With k independent draws z_1..z_k ~ q(z|x) and importance weights w_i = p(x, z_i) / q(z_i|x),

    L_k = E[ log (1/k) Σ_i w_i ].

Each w_i is unbiased for p(x) (E_q[p(x, z)/q(z|x)] = ∫ p(x, z) dz), so their average is too, and
Jensen's inequality (log is concave) gives L_k ≤ log E[(1/k) Σ w_i] = log p(x).  With k = 1 this
is the ELBO, E_q[log w].

Why L_k ≤ L_{k+1}.  Draw k + 1 weights.  Choosing k of them uniformly at random (a random subset
I, |I| = k) and averaging gives an unbiased estimate of the (k+1)-average:

    E_I[ (1/k) Σ_{i∈I} w_i ] = (1/(k+1)) Σ_{i=1}^{k+1} w_i      (each w_i is in I with chance
                                                                  k/(k+1))
so, by Jensen inside the expectation over I,

    L_{k+1} = E[ log E_I[(1/k) Σ_{i∈I} w_i] ] ≥ E[ E_I[ log (1/k) Σ_{i∈I} w_i ] ] = L_k,

because for every I the k weights it picks are k i.i.d. draws.  Hence
ELBO = L_1 ≤ L_2 ≤ … ≤ log p(x), and L_k → log p(x) as k → ∞ when the weights are bounded
(then (1/k) Σ w_i → p(x) by the law of large numbers).

Numerics: the weights are handled in log space, log (1/k) Σ w_i = logsumexp_i(log w_i) − log k,
which subtracts the largest log-weight first, so weights like e^(−500) neither underflow to 0
nor (for large positive log-weights) overflow.
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.engine.tensor import Tensor
from minivae.objectives.elbo import reparameterized


def log_importance_weights(model, x, k: int, rng: np.random.Generator, q=None) -> Tensor:
    """log w_i = log p(x, z_i) − log q(z_i|x) for z_1..z_k ~ q(z|x) (reparameterized); (k, B).

    q : the encoder's distribution for x, if already computed (saves an encoder pass).
    Verified by: tests/objectives/test_iwae.py::test_log_weights_are_constant_at_the_exact_posterior
    """
    k, rng = checks.positive_int(k, "k"), checks.generator(rng)
    checks.has_methods(model, ("encode", "log_joint"))
    q = reparameterized(model.encode(x) if q is None else q)
    z = q.rsample(rng, (k,))  # (k, B, d)
    return model.log_joint(x, z) - q.log_prob(z)


def iwae_bound(model, x, k: int, rng: np.random.Generator) -> Tensor:
    """One-draw estimate of L_k = E[log (1/k) Σ_i p(x, z_i)/q(z_i|x)], shape (B,):

        L̂_k = logsumexp_i(log w_i) − log k,   z_1..z_k ~ q(z|x) reparameterized.

    Differentiable in q's and the model's parameters, so −L̂_k can be minimized to train a VAE
    (the IWAE objective).  L_1 = ELBO ≤ L_k ≤ L_{k+1} ≤ log p(x).

    Verified by: tests/objectives/test_iwae.py::test_bounds_increase_with_k_towards_log_evidence,
    ::test_iwae_with_one_sample_is_the_elbo, ::test_iwae_gradient_matches_central_differences
    """
    k = checks.positive_int(k, "k")
    return log_importance_weights(model, x, k, rng).logsumexp(axis=0) - math.log(k)
