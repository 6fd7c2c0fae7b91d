"""One dense optimizer step: torch's Adadelta against embedlab's (the same arithmetic), one process.

Kim's CNN is trained by Adadelta over every parameter, its 300-d table included, so on CPU
the optimizer step is most of a CNN-rand step. Both sides step the same parameters with the
same gradients (default: the shapes of CNN-rand on MR: a 16,691 x 300 table, three
convolutions of 100 maps, the output layer); the script checks that both end equal to float
rounding (the largest difference is printed) and prints ms per step (best of ``--repeats`` rounds of ``--steps``) and the ratio
torch / embedlab.

    python scripts/bench_optimizer_step.py
    python scripts/bench_optimizer_step.py --vocab 50000 --dim 300 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from embedlab.training.optim import Adadelta


def shapes(vocab: int, dim: int, widths: tuple[int, ...] = (3, 4, 5)) -> list[tuple[int, ...]]:
    """Parameter shapes of Kim's CNN over a ``vocab`` x ``dim`` table (2 classes)."""
    convs = [s for w in widths for s in ((100, dim, w), (100,))]
    return [(vocab, dim), *convs, (2, 100 * len(widths)), (2,)]


def time_steps(cls: type, sizes: list[tuple[int, ...]], steps: int, repeats: int) -> tuple:
    """(best ms per step, final parameters) of ``cls`` stepping fixed gradients."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in sizes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    opt = cls(params, lr=1.0, rho=0.95, eps=1e-6)
    opt.step()  # state allocated outside the timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        best = min(best, (time.perf_counter() - start) / steps * 1000)
    return best, [p.detach() for p in params]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=16691, help="table rows (MR: 16,691)")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = shapes(args.vocab, args.dim)
    n = sum(torch.Size(s).numel() for s in sizes)

    def torchs(params: list, **kw: float) -> torch.optim.Optimizer:
        return torch.optim.Adadelta(params, foreach=False, **kw)  # torch's CPU default path

    base, base_params = time_steps(torchs, sizes, args.steps, args.repeats)
    ours, our_params = time_steps(Adadelta, sizes, args.steps, args.repeats)
    pairs = list(zip(base_params, our_params, strict=True))
    diff = max(float((a - b).abs().max()) for a, b in pairs)
    same = all(torch.allclose(b, a, rtol=1e-5, atol=1e-5) for a, b in pairs)
    print(
        f"Adadelta step, {n:,} parameters ({args.vocab:,} x {args.dim} table), "
        f"{args.threads} thread(s), best of {args.repeats} x {args.steps} steps"
    )
    print("| optimizer | ms / step |")
    print("|---|---|")
    print(f"| torch.optim.Adadelta | {base:.2f} |")
    print(f"| embedlab Adadelta (compiled kernel) | {ours:.2f} |")
    print(
        f"ratio torch / embedlab: {base / ours:.2f}x; largest difference {diff:.1e}, equal: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
