import pytest
import torch

from e2nas import spaces
from e2nas.spaces import nb201

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_enumeration_is_complete_and_unique():
    archs = nb201.all_archs()
    assert archs.shape == (15625, 6)
    assert torch.unique(archs, dim=0).shape[0] == 15625
    assert int(archs.min()) == 0 and int(archs.max()) == 4


def test_string_round_trip_on_every_cell():
    strings = set()
    for i, arch in enumerate(nb201.all_archs().tolist()):
        text = nb201.format_arch(arch)
        assert nb201.parse_arch(text) == tuple(arch)
        assert nb201.arch_index(arch) == i
        strings.add(text)
    assert len(strings) == 15625


def test_known_string_parses_to_edge_order():
    assert nb201.parse_arch(BEST) == (3, 3, 3, 1, 3, 3)
    assert nb201.format_arch((3, 3, 3, 1, 3, 3)) == BEST


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 nodes"),
        ("|conv_7x7~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "unknown op"),
        ("|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "names node"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "2 inputs"),
        ("nor_conv_3x3~0+x+y", "not of the form"),
        ("", "3 nodes"),
    ],
)
def test_malformed_strings_raise_clear_errors(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        nb201.parse_arch(text)


def test_format_rejects_out_of_range():
    with pytest.raises(ValueError, match="op indices"):
        nb201.format_arch((0, 1, 2, 3, 4, 5))


def test_validity_vectorised_matches_scalar():
    archs = nb201.all_archs()
    mask = nb201.valid_mask(archs)
    assert mask.tolist() == [nb201.is_valid(a) for a in archs.tolist()]
    assert not nb201.is_valid((0,) * 6)
    assert nb201.is_valid((0, 0, 0, 1, 0, 0))  # only the 0→3 edge is live
    assert nb201.is_valid((1, 0, 0, 0, 1, 0))  # 0→1 then 1→3
    assert not nb201.is_valid((1, 0, 0, 0, 0, 0))  # reaches node 1, never node 3


def test_unknown_space_names_the_config_key():
    with pytest.raises(ValueError, match="config key `space`"):
        spaces.get("nb301")
