"""lindy's layers as cases of the reference harness (../shared/bench-references/bench_anchors.py), so each is
timed in the same run as the official implementation it re-implements, and ``--report`` prints the ratio:

    python bench_anchors.py --plugin /path/to/lindy/benchmarks/reference_cases.py \
        --only s4d/,lssl/ --rounds 3 --out s4.jsonl
    python bench_anchors.py --plugin /path/to/lindy/benchmarks/reference_cases.py --report s4.jsonl

Every lindy case has the shapes, the input layout and the differentiated tensors of its reference case
(``ref``): channels-first (B, H, L) for the S4-style layers (the references run ``transposed=True``),
(B, L, H) for STU, (L, B, 1) without input gradient for LEM (and its Linear(H, 10) readout of the last
step), (B, H, L) currents for the SDN neuron (as ``lif-sdn``) and (L, B, H) for the BPTT LIF (as
snntorch). lindy layers take (B, L, H): the transposes are views, so a copy inside lindy is lindy's cost.
Each case is configured to compute what its reference computes (e.g. LDNN ``init="reference"`` with
``zoh_eps=1e-7``, flash-stu-2's shared-filter approx form, DeepMind's AR-STU). Needs lindy importable.
"""

#: the head count of the reference LDNN cases (h = 128 / 32 = 4 features, n = 128 / 32 = 4 modes per head)
LDNN_HEADS = 32
#: LEM's psMNIST step and classes (tk-rusch/LEM, as the harness's build_lem)
LEM_DT, LEM_CLASSES = 0.31, 10
#: the leak and threshold of the harness's LIF cases (snntorch beta 0.125, threshold 1, reset to zero)
LIF_TAU, LIF_VTH = 0.125, 1.0


def _info():
    import lindy

    return {"lindy": lindy.__version__}


def _channels_first(m):
    """u (B, H, L) -> m(u as (B, L, H)) as (B, H, L), the references' ``transposed=True`` layout."""
    return lambda u: m(u.transpose(1, 2)).transpose(1, 2)


def _time_first(m):
    """u (L, B, H) -> m(u as (B, L, H)) as (L, B, H), snntorch's layout."""
    return lambda u: m(u.transpose(0, 1)).transpose(0, 1)


def register(add_case, h):
    def bench_channels_first(m, c):
        return h.TorchBench(_channels_first(m), [h.randn(c.B, c.H, c.L)], m.parameters(), _info())

    def build_s4d(c, cache):
        from lindy.layers import S4D

        return bench_channels_first(S4D(c.H, d_state=c.N), c)

    def build_lssl(c, cache):
        from lindy.layers import LSSL

        return bench_channels_first(LSSL(c.H, d_state=c.N, learn=1, measure="legs").train(), c)

    def build_ldnn(c, cache):
        from lindy.layers import LDNN

        # the reference's SSM(d_s=N, head=32, D_value=1, activation=None, acttivation_post="half_glu1",
        # conj_sym, d_dt_is_n) with its init and its ZOH inverse conj(A) / (|A|^2 + 1e-7)
        m = LDNN(
            c.H,
            d_state=c.N,
            heads=c.extra["head"],
            bidirectional=c.extra["bi"],
            D="vector",
            activation=None,
            post_activation="half_glu1",
            init="reference",
            lr=1e-3,
            zoh_eps=1e-7,
        )
        return bench_channels_first(m, c)

    def build_spiking_ssm(c, cache):
        from lindy.layers import SpikingSSM

        return bench_channels_first(SpikingSSM(c.H, d_state=c.N, neuron="sdn", lr=1e-3), c)

    def build_lem(c, cache):
        from torch import nn

        from lindy.layers import LEM

        ninp = c.extra["ninp"]
        m = LEM(c.H, d_input=ninp, dt=LEM_DT)
        head = nn.Linear(c.H, LEM_CLASSES)  # the reference model's classifier of the last y
        x = h.randn(c.L, c.B, ninp, grad=False)
        params = [*m.parameters(), *head.parameters()]
        return h.TorchBench(lambda u: head(m(u.transpose(0, 1))[:, -1]), [x], params, _info())

    def build_stu(c, cache):
        from lindy.layers import STU

        forms = {
            # flash-stu-2 use_approx=True: one psi fed to both branches
            "approx": dict(form="approx", approx_shared_filter=True),
            # flash-stu-2 use_approx=False: M_phi_plus and M_phi_minus
            "exact": dict(form="exact"),
            # google-deepmind/spectral_ssm: positive branch, shift 2, AR k_u = 3, k_y = 2
            "ar": dict(form="exact", branches="positive", shift=2, ar_u=3, ar_y=2),
        }[c.extra["stu"]]
        m = STU(c.H, num_filters=c.extra["K"], max_len=c.L, output="none", **forms)
        return h.TorchBench(m, [h.randn(c.B, c.L, c.H)], m.parameters(), _info())

    def build_sdn_neuron(c, cache):
        from lindy.layers import SDNNeuron

        m = SDNNeuron(LIF_TAU, LIF_VTH, "piecewise_quadratic")  # the reference neuron's surrogate
        x = (1.5 * h.randn(c.B, c.H, c.L, grad=False)).requires_grad_(True)  # as lif-sdn: time last
        return h.TorchBench(_channels_first(m), [x], m.parameters(), _info())

    def build_bptt_neuron(c, cache):
        from lindy.layers.sdn import LIFNeuron

        m = LIFNeuron(LIF_TAU, LIF_VTH, "atan", mode="bptt")  # snntorch's default surrogate
        x = (1.5 * h.randn(c.L, c.B, c.H, grad=False)).requires_grad_(True)  # as snntorch: time first
        return h.TorchBench(_time_first(m), [x], m.parameters(), _info())

    def case(id, layer, shape, build, ref, default=True, **extra):
        """shape: (B, L, H, N) of the reference case ``ref`` at this id."""
        family = id.split("/")[0]
        add_case(h.Case(id, family, "lindy", layer, *shape, build=build, ref=ref, default=default, **extra))

    B, H, N = 8, 128, 64
    for L in (1024, 4096, 16384):
        case(f"lindy-s4d/L{L}", "S4D (S4D-Lin, ZOH)", (B, L, H, N), build_s4d, "s4d")
    for L in (1024, 4096):
        lssl = "LSSL, learn=1, LegS, blocked Krylov kernel"
        case(f"lindy-lssl/L{L}", lssl, (B, L, H, N), build_lssl, "lssl")
        spiking = "SpikingSSM, SDN neuron"
        case(f"lindy-spiking-ssm/L{L}", spiking, (B, L, H, N), build_spiking_ssm, "ss4d-sdn")
    for L in (784, 2000):
        lem = "LEM, ninp 1, dt .31, Linear readout of the last step"
        case(f"lindy-lem/L{L}", lem, (32, L, H, None), build_lem, "lem", ninp=1)
    for L in (1024, 4096, 16384):
        for bi in (False, True):
            fam = "ldnn-bi" if bi else "ldnn"
            ldnn = "LDNN, 32 heads, half_glu1, init=reference" + (", bidirectional" if bi else "")
            shape = (B, L, H, 128)
            case(f"lindy-{fam}/L{L}", ldnn, shape, build_ldnn, fam, L < 16384, head=LDNN_HEADS, bi=bi)
    for L in (1024, 4096):
        shape = (B, L, H, None)
        approx = "STU form=approx, shared filter (flash-stu-2's use_approx)"
        case(f"lindy-stu-approx/L{L}", approx, shape, build_stu, "stu-approx", K=24, stu="approx")
        exact = "STU form=exact, both branches (flash-stu-2's)"
        case(f"lindy-stu-full/L{L}", exact, shape, build_stu, "stu-full", L == 1024, K=24, stu="exact")
        ar = "STU form=exact, positive branch, shift 2, AR k_u 3 k_y 2 (spectral_ssm's)"
        case(f"lindy-stu-ar/L{L}", ar, shape, build_stu, "stu-jax", L == 1024, K=24, stu="ar")
    for T in (1024, 2048, 4096, 8192):
        sdn = "SDNNeuron (shipped SDN, tau .125), surrogate spike"
        case(f"lindy-lif-sdn/T{T}", sdn, (64, T, H, None), build_sdn_neuron, "lif-snntorch", T == 1024)
    bptt = "LIFNeuron mode=bptt (exact LIF, atan surrogate)"
    case("lindy-lif-bptt/T1024", bptt, (64, 1024, H, None), build_bptt_neuron, "lif-snntorch")
