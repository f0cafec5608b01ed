"""The reference SDN file (a TorchScript zip, read without running its code) and the reference SS4D's
weights as lindy modules with the same outputs. The files are built here in the reference's layouts; the
reference SS4D forward is re-implemented from its code's maths (complex tensors, one 2L FFT)."""

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lindy.interop.sdn import read_torchscript_tensors, sdn_from_reference, spikingssm_from_reference
from lindy.layers.sdn import SDN

OFFICIAL = Path("/work/.mirror/shenshuaijie+SDN/repo")  # a local copy, when one is there


def reference_file(tmp_path, seed=0):
    torch.manual_seed(seed)
    sdn = SDN.pretrained(tau=0.125)
    with torch.no_grad():
        for p in sdn.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not lindy's own numbers
    path = tmp_path / "mem_pred_d8k8_c3(relu(c2(c1(x))+c1(x)))_125.pkl"
    sdn.to_torchscript(path)
    return path


def test_reads_the_reference_layout_without_running_it(tmp_path):
    path = reference_file(tmp_path)
    tensors = read_torchscript_tensors(path)
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "conv1.weight": (8, 1, 8),
        "conv1.bias": (8,),
        "conv2.weight": (8, 8, 1),
        "conv2.bias": (8,),
        "conv3.weight": (1, 8, 1),
        "conv3.bias": (1,),
    }
    ours = sdn_from_reference(path)
    scripted = torch.jit.load(str(path))  # the reference's way, here only to compare against
    x = torch.randn(4, 1, 1024)
    # float32: the two run different kernels, so they agree to float32 rounding (which the CPU's vector
    # path decides); float64: the same maths, to double precision
    torch.testing.assert_close(ours(x[:, 0]), scripted(x))
    torch.testing.assert_close(
        ours.double()(x[:, 0].double()), scripted.double()(x.double()), rtol=0, atol=1e-12
    )


def test_refuses_files_that_are_not_an_sdn(tmp_path):
    not_zip = tmp_path / "a.pkl"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        sdn_from_reference(not_zip)
    other = tmp_path / "linear.pt"
    torch.jit.trace(torch.nn.Linear(3, 2), torch.randn(1, 3)).save(str(other))
    with pytest.raises(ValueError, match="not a fused SDN"):
        sdn_from_reference(other)
    evil = tmp_path / "evil.pkl"
    payload = pickle.dumps(print)  # any global outside the allow-list
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("m/data.pkl", payload)
    with pytest.raises(ValueError, match="refusing"):
        sdn_from_reference(evil)


@pytest.mark.skipif(not OFFICIAL.exists(), reason="no local copy of shenshuaijie/SDN")
def test_the_official_file_check_values(tmp_path):
    import subprocess

    name = "src/models/spike/mem_pred_d8k8_c3(relu(c2(c1(x))+c1(x)))_125.pkl"
    path = tmp_path / "official.pkl"
    path.write_bytes(
        subprocess.run(
            ["git", "-C", str(OFFICIAL), "show", f"HEAD:{name}"], capture_output=True, check=True
        ).stdout
    )
    sdn = sdn_from_reference(path)
    x = torch.tensor([[0.6, 0.7, 1.0, -0.3, 0.9, 0.5, 2.0, 0.95]])
    expected = [-0.00055, 0.07446, 0.09635, -0.00034, -0.03422, 0.10863, 0.07577, -0.00004]
    torch.testing.assert_close(sdn(x)[0], torch.tensor(expected), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# SS4D
# ----------------------------------------------------------------------------------------------------
def ss4d_state_dict(h, n, trainable_b, bidirectional, shared_vth, seed=0):
    g = torch.Generator().manual_seed(seed)
    channels = 2 if bidirectional else 1
    sd = {
        "D": torch.randn(1, h, generator=g),
        "ln_vth": 0.3 * torch.randn(1 if shared_vth else h, *(() if shared_vth else (1,)), generator=g),
        "kernel.C": torch.randn(channels, h, n // 2, 2, generator=g),
        "output_linear.0.weight": torch.randn(2 * h, h, 1, generator=g) / h**0.5,
        "output_linear.0.bias": torch.randn(2 * h, generator=g),
    }
    log_dt = torch.rand(h, generator=g) * 4 - 6
    real = torch.log(0.5 + torch.rand(h, n // 2, generator=g))
    imag = torch.pi * torch.arange(n // 2).repeat(h, 1) + 0.1 * torch.randn(h, n // 2, generator=g)
    if trainable_b:
        sd.update(
            {
                "kernel.inv_dt": log_dt[:, None],
                "kernel.A_real": real,
                "kernel.A_imag": imag,
                "kernel.B": 1 + 0.2 * torch.randn(1, h, n // 2, 2, generator=g),
            }
        )
    else:
        sd.update({"kernel.log_dt": log_dt, "kernel.log_A_real": real, "kernel.A_imag": imag})
    return sd


def reference_ss4d(sd, u, sdn, trainable_b, bidirectional):
    """The SDN repository's SS4D.forward (transposed=True, channels=1), u: (B, H, L)."""
    length = u.shape[-1]
    c = torch.view_as_complex(sd["kernel.C"].double().contiguous())
    if trainable_b:
        dt = torch.exp(sd["kernel.inv_dt"].double())
        a = -torch.exp(sd["kernel.A_real"].double()) - 1j * sd["kernel.A_imag"].double()
        b = torch.view_as_complex(sd["kernel.B"].double().contiguous())
        c = b[:, None] * c
        c = c.view(-1, *c.shape[-2:])
    else:
        dt = torch.exp(sd["kernel.log_dt"].double())[:, None]
        a = -torch.exp(sd["kernel.log_A_real"].double()) + 1j * sd["kernel.A_imag"].double()
    dta = dt * a
    c = c * (torch.exp(dta) - 1.0) / a
    k = 2 * torch.einsum("chn,hnl->chl", c, torch.exp(dta[..., None] * torch.arange(length))).real
    if bidirectional:
        k = F.pad(k[0], (0, length)) + F.pad(k[1].flip(-1), (length, 0))
    else:
        k = k[0]
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(k, n=2 * length), n=2 * length)
    y = y[..., :length] + u * sd["D"].double()[0][:, None]
    y = y / torch.exp(sd["ln_vth"].double())
    mem = sdn(y.reshape(-1, 1, length).float()).double().view(y.shape)
    v = mem + y - 1.0
    s = (v >= 0).double()
    out = F.glu(
        F.conv1d(s, sd["output_linear.0.weight"].double(), sd["output_linear.0.bias"].double()), dim=-2
    )
    return out, v


@pytest.mark.parametrize(
    "trainable_b,bidirectional,shared_vth",
    [(False, False, False), (True, False, True), (False, True, False), (True, True, False)],
)
def test_spikingssm_from_reference(tmp_path, trainable_b, bidirectional, shared_vth):
    h, n = 6, 8
    sd = ss4d_state_dict(h, n, trainable_b, bidirectional, shared_vth)
    path = reference_file(tmp_path)
    config = dict(
        d_model=h,
        d_state=n,
        trainable_B=trainable_b,
        bidirectional=bidirectional,
        shared_vth=shared_vth,
        transposed=True,
        lr=0.001,
        dt_min=0.001,
        dt_max=0.1,
    )
    layer = spikingssm_from_reference(sd, sdn_path=path, **config).double().eval()
    u = torch.randn(3, h, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 2
    want, v = reference_ss4d(sd, u, torch.jit.load(str(path)), trainable_b, bidirectional)
    got = layer(u.transpose(1, 2)).transpose(1, 2)
    clear = (v.abs() > 1e-6).all(dim=1, keepdim=True).expand_as(want)  # no potential near the threshold
    assert clear.double().mean() > 0.9
    torch.testing.assert_close(got[clear], want[clear], rtol=0, atol=1e-5)
    assert 0.02 < float(layer.firing_rate) < 0.98


def test_spikingssm_from_reference_refuses_other_dicts():
    with pytest.raises(ValueError, match="not an SS4D"):
        spikingssm_from_reference({"weight": torch.zeros(2)})
