"""Bundled presets: the two auto presets and the six named ones exist, load, validate, round-trip and are described in one line."""

import pytest

from regviewer.core.errors import ParameterError
from regviewer.core.registration.params import Pipeline
from regviewer.core.registration.presets import PRESET_NAMES, list_presets, load_preset


def test_list_presets_has_the_standard_ones_first_auto_on_top():
    listed = list_presets()
    assert [n for n, _ in listed[:len(PRESET_NAMES)]] == list(PRESET_NAMES) and listed[0][0] == "auto"
    for name, description in listed:
        assert description and "\n" not in description, name


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_loads_validates_and_round_trips(name):
    p = load_preset(name)
    p.validate()
    assert p.name == name
    assert Pipeline.from_json(p.to_json()) == p


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ParameterError) as info:
        load_preset("affine-nope")
    for name in PRESET_NAMES:
        assert name in str(info.value)


def test_broken_preset_file_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "bad.json").write_text('{"stages": [{"metric": {"kind": "ssd"}}]}')
    monkeypatch.setenv("REGVIEWER_RESOURCES", str(tmp_path))
    with pytest.raises(ParameterError, match="bad.json"):
        load_preset("bad")
