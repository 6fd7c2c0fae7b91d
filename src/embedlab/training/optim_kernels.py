"""Optimizer updates as compiled loops (numba), in place on the parameters' numpy views.

``adadelta_step`` (used by ``optim.Adadelta``): torch's CPU Adadelta makes about ten passes
over every parameter per step (``mul_``, ``addcmul_``, two ``add`` + ``sqrt_`` into fresh
tensors, ``div_``, ``mul_`` ...); this loop reads each element once and writes it once. Kim's
CNN-rand on MR (5.4M parameters, a 16.7k x 300 table, one thread, quiet machine): 32.8 ms a
step for torch's, 3.9 ms here (``scripts/bench_optimizer_step.py``). Two threads
(``parallel=True``) were slower: the pass is bound by memory, not compute. The arithmetic is
torch's, step for step; results agree with torch's to float rounding (not bit for bit: the
compilers contract and order operations differently).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps, decay, sign):
    """One Adadelta step on flat arrays (all of one float dtype; the scalars of that dtype too)."""
    for i in range(param.size):
        g = sign * grad[i] + decay * param[i]  # maximize flips the sign; weight decay
        s = square_avg[i] * rho + one_minus_rho * g * g
        square_avg[i] = s
        delta = np.sqrt(acc_delta[i] + eps) / np.sqrt(s + eps) * g
        acc_delta[i] = acc_delta[i] * rho + one_minus_rho * delta * delta
        param[i] = param[i] - lr * delta
