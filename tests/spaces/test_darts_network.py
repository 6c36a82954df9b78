import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas.layers import count_flops, count_params
from e2nas.spaces import darts
from e2nas.spaces.darts.network import (
    NetworkCIFAR,
    count_params_darts,
    drop_path,
    drop_path_at,
    loss_with_aux,
)
from e2nas.spaces.darts.ops import FactorizedReduce, SepConv, Zero, make_op

V2 = darts.DARTS_V2


def small_net(**kw) -> NetworkCIFAR:
    torch.manual_seed(0)
    return NetworkCIFAR(V2, C=8, layers=5, num_classes=10, **kw)


def test_darts_v2_has_3_3m_parameters_as_darts_counts_them():
    net = NetworkCIFAR(V2, C=36, layers=20, num_classes=10, auxiliary=True)
    params = count_params_darts(net)
    assert abs(params / 3.3e6 - 1) <= 0.02
    assert params == 3_349_342  # what DARTS's train.py logs for DARTS-V2 ("param size = 3.349342MB")
    aux = sum(p.numel() for p in net.auxiliary_head.parameters())
    assert count_params(net) == params + aux and aux > 0


def test_darts_v1_has_the_parameters_darts_counts():
    v1 = darts.REFERENCES["darts-v1"].arch
    assert count_params_darts(NetworkCIFAR(v1, C=36, layers=20, num_classes=10, in_channels=3, auxiliary=True)) == 3_169_414


# Normal node 2 reads c_{k-1} twice with two ops, node 3 c_{k-2} twice with the same op; reduce node 2 reads c_{k-2} twice.
REPEATED = (
    "Genotype(normal=[('sep_conv_5x5', 1), ('dil_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), "
    "('skip_connect', 0), ('sep_conv_3x3', 2), ('avg_pool_3x3', 3), ('dil_conv_5x5', 4)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('skip_connect', 0), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def test_a_repeated_input_builds_counts_and_trains_a_step():
    torch.manual_seed(0)
    net = NetworkCIFAR(REPEATED, C=4, layers=3, num_classes=10, in_channels=3, auxiliary=True, drop_path_prob=0.2)
    normal, reduce = net.cells[0], net.cells[1]
    assert normal.indices[:4] == [1, 1, 0, 0] and reduce.indices[:2] == [0, 0]
    # Two ops on the same input are two modules with their own weights (DARTS's network builds them so).
    assert normal.ops[0] is not normal.ops[1] and isinstance(normal.ops[2], SepConv) and isinstance(normal.ops[3], SepConv)
    assert count_params_darts(net) == sum(p.numel() for n, p in net.named_parameters() if not n.startswith("auxiliary"))
    assert isinstance(reduce.ops[1], FactorizedReduce)  # skip_connect on c_{k-2} strides in a reduction cell
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    loss, _ = loss_with_aux(net, x, y, 0.4)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters())
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.eval()(x).shape == (2, 10)
    # Its canonical text round-trips; DARTS's count at the published size.
    assert darts.format_arch(darts.parse_arch(net.arch)) == net.arch
    assert count_params_darts(NetworkCIFAR(REPEATED, 36, 20, 10, 3)) > 0


def test_layout_reductions_and_channels():
    net = small_net()
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert isinstance(net.cells[2].preprocess0, FactorizedReduce)  # its c_{k-2} has twice the resolution
    reduce_ops = dict(zip(((name, src) for name, src in net.genotype.reduce), net.cells[1].ops))
    assert isinstance(reduce_ops[("skip_connect", 2)], nn.Identity)  # node 2 is already reduced: stride 1
    assert isinstance(net.cells[1].ops[0], nn.MaxPool2d) and net.cells[1].ops[0].stride == 2
    assert net.classifier.in_features == 4 * 4 * 8  # 4 nodes concatenated at 4C
    assert net.arch == darts.format_arch(darts.parse_arch(V2))


def test_forward_backward_with_aux_and_drop_path():
    net = small_net(auxiliary=True, drop_path_prob=0.2)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    net.train()
    logits, aux = net.forward_with_aux(x)
    assert logits.shape == aux.shape == (2, 10)
    loss, _ = loss_with_aux(net, x, y, 0.4)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    logits, aux = net.forward_with_aux(x)
    assert aux is None and torch.equal(logits, net(x))  # eval: no aux head, no drop-path
    assert count_flops(net, (3, 32, 32)) > 0


def test_aux_loss_is_weighted_sum():
    net = small_net(auxiliary=True)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    net.train()
    loss, _ = loss_with_aux(net, x, y, 0.4)
    main, aux = net.forward_with_aux(x)  # no drop-path: deterministic
    assert torch.allclose(loss, F.cross_entropy(main, y) + 0.4 * F.cross_entropy(aux, y))
    assert net.forward_with_aux(x)[1] is not None and small_net().forward_with_aux(x)[1] is None


def test_drop_path_is_seeded_and_only_in_training():
    net = small_net(drop_path_prob=0.3)
    x = torch.randn(2, 3, 32, 32)
    net.train()
    outs = []
    for seed in (5, 5, 6):
        net.drop_generator = torch.Generator().manual_seed(seed)
        outs.append(net(x))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    net.eval()
    assert torch.equal(net(x), net(x))


def test_drop_path_zeroes_whole_samples_and_keeps_the_mean():
    out = drop_path(torch.ones(4000, 2, 3, 3), 0.25, torch.Generator().manual_seed(0))
    per_sample = out.flatten(1)
    assert bool(((per_sample == 0) | (per_sample == 1 / 0.75)).all())
    assert bool((per_sample == per_sample[:, :1]).all())
    assert abs(out.mean().item() - 1) < 0.05
    assert drop_path_at(0, 10, 0.2) == 0 and drop_path_at(5, 10, 0.2) == pytest.approx(0.1)


def test_28x28_images_without_aux_and_a_clear_error_with_it():
    net = NetworkCIFAR(V2, C=8, layers=5, num_classes=10, in_channels=1)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    aux = NetworkCIFAR(V2, C=8, layers=5, num_classes=10, in_channels=1, auxiliary=True).train()
    with pytest.raises(ValueError, match="8x8 feature map"):
        aux.forward_with_aux(torch.randn(2, 1, 28, 28))


def test_network_accepts_text_encoding_and_genotype():
    arch = darts.parse_arch(V2)
    nets = [NetworkCIFAR(a, 4, 3, 10, 3) for a in (V2, arch, darts.to_genotype(arch))]
    assert len({n.arch for n in nets}) == 1
    assert len({count_params(n) for n in nets}) == 1
    with pytest.raises(ValueError, match="unknown op"):
        NetworkCIFAR(V2.replace("dil_conv_3x3", "conv_9x9"), 4, 3, 10, 3)
    with pytest.raises(ValueError, match="drop_path_prob"):
        darts.SPACE.config("retrain", {"drop_path_prob": 1.0})


@pytest.mark.parametrize("name", darts.OPS)
@pytest.mark.parametrize("size", [8, 7])
def test_every_op_keeps_channels_and_strides(name, size):
    x = torch.randn(2, 4, size, size)
    assert make_op(name, 4, 1)(x).shape == x.shape
    assert make_op(name, 4, 2)(x).shape == (2, 4, (size + 1) // 2, (size + 1) // 2)
    search = make_op(name, 4, 1, affine=False, track=False, pool_bn=True)
    if "pool" in name:
        assert isinstance(search[1], nn.BatchNorm2d) and not search[1].affine
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in search.modules())


def test_op_structure_follows_darts():
    sep = make_op("sep_conv_5x5", 4, 2)
    assert isinstance(sep, SepConv)
    convs = [m for m in sep.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (1, 1), (5, 5), (1, 1)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1), (1, 1)]
    dil = [m for m in make_op("dil_conv_3x3", 4, 1).modules() if isinstance(m, nn.Conv2d)]
    assert dil[0].dilation == (2, 2) and dil[0].groups == 4
    assert isinstance(make_op("skip_connect", 4, 2), FactorizedReduce) and isinstance(make_op("none", 4, 2), Zero)
    with pytest.raises(ValueError, match="unknown DARTS op"):
        make_op("conv_7x1_1x7", 4, 1)
