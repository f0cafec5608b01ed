"""lindy's LSSL as cases of the reference harness (../shared/bench-references/bench_anchors.py), so that it is
timed in the same run as state-spaces/s4's LSSL (its dense path, learn=1, LegS) and the bare FFT convolution:

    python bench_anchors.py --plugin /path/to/lindy/benchmarks/lssl_reference_cases.py \
        --only lssl,fftconv --rounds 3 --out lssl.jsonl
    python bench_anchors.py --report lssl.jsonl

Same shapes as the reference cases: x (B, H, L) channels-first, B=8, H=128, N=64, L in {1024, 4096}.
The reference needs no lindy code; this file needs lindy importable (its .venv).
"""


def register(add_case, h):
    def build_lindy_lssl(c, cache):
        import torch

        from lindy.layers import LSSL

        torch.manual_seed(0)
        m = LSSL(c.H, d_state=c.N, learn=1, measure="legs").train()
        x = h.randn(c.B, c.H, c.L)
        return h.TorchBench(lambda u: m(u.transpose(1, 2)).transpose(1, 2), [x], m.parameters())

    for L in (1024, 4096):
        add_case(
            h.Case(
                f"lindy-lssl/L{L}",
                "lindy-lssl",
                "lindy",
                "lindy LSSL, learn=1, LegS, blocked Krylov kernel",
                8,
                L,
                128,
                64,
                build=build_lindy_lssl,
                ref="lssl",
            )
        )
