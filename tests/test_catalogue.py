"""The dataset catalogue (connectomix/catalogue): sources for every value, names that open with no config."""

from __future__ import annotations

import re
import tomllib

import pytest

import connectomix
from connectomix import catalogue, errors
from connectomix.cli import main

CATALOGUE_FILES = sorted(catalogue.CATALOGUE_DIR.glob("*.toml"))

#: Datasets users query today (issue 10, item 1); each must open by this name.
REQUIRED_NAMES = {
    "hemibrain", "manc", "male-cns", "optic-lobe", "flywire", "flywire-production", "flywire-neuprint",
    "banc", "banc-production", "banc-neuprint", "fanc", "microns",
}
REQUIRED_RELEASES = {
    "hemibrain-traced-adjacencies", "manc-traced-adjacencies", "male-cns-flat-connectome", "flywire-zenodo",
    "flywire-codex", "flywire-annotations",
}

#: Written out by hand from the sources cited in the catalogue, not computed by it.
EXPECTED_URIS = {
    "hemibrain": "neuprint://neuprint.janelia.org/hemibrain:v1.2.1",
    "manc": "neuprint://neuprint.janelia.org/manc:v1.2.3",
    "flywire": "cave://flywire_fafb_public?materialization=783",
    "flywire-production": "cave://flywire_fafb_production",
    "flywire-neuprint": "neuprint://neuprint-cns.janelia.org/flywire-fafb:v783b",
    "banc": "cave://brain_and_nerve_cord_public?materialization=888",
    "banc-production": "cave://brain_and_nerve_cord",
    "fanc": "cave://fanc_production_mar2021",
    "microns": "cave://minnie65_public?materialization=1507",
}

_SOURCE = re.compile(r"^(https?://|gs://|secondary: |project: |unverified$|unverified: |[\w.-]+/[\w.-]+:\S)")


def _leaves(node, path=""):
    """(path, table) for every {value = ...} table of a raw TOML document, and (path, x) for bare values."""
    for key, item in node.items():
        here = f"{path}.{key}" if path else key
        if isinstance(item, dict) and "value" in item:
            yield here, item
        elif isinstance(item, dict):
            yield from _leaves(item, here)
        else:
            yield here, item


@pytest.mark.parametrize("file", CATALOGUE_FILES, ids=lambda p: p.name)
def test_every_value_has_a_source_or_says_unverified(file):
    data = tomllib.loads(file.read_text(encoding="utf-8"))
    leaves = list(_leaves(data))
    assert leaves
    for path, leaf in leaves:
        assert isinstance(leaf, dict), f"{file.name}: {path} = {leaf!r} has no source"
        assert set(leaf) <= {"value", "source", "sources", "note"}, f"{file.name}: {path} has keys {sorted(leaf)}"
        assert ("source" in leaf) != ("sources" in leaf), f"{file.name}: {path} needs exactly one of source/sources"
        sources = [leaf["source"]] if "source" in leaf else leaf["sources"]
        assert sources, f"{file.name}: {path} has an empty source list"
        for source in sources:
            assert isinstance(source, str) and _SOURCE.match(source), f"{file.name}: {path}: bad source {source!r}"


def test_catalogue_loads_with_the_datasets_and_release_files_users_query():
    cat = catalogue.load()
    assert REQUIRED_NAMES <= set(cat.datasets)
    assert REQUIRED_RELEASES <= set(cat.releases)
    for name, entry in cat.datasets.items():
        assert entry.backend in ("neuprint", "cave"), name
        for path in catalogue.REQUIRED:
            assert entry.get(path) is not None, f"{name} lacks {path}"


@pytest.mark.parametrize(("name", "path", "expected"), [
    # the facts issue 10 found wrong in the backends' settings, as the public sources state them
    ("flywire", "annotations.source", "hierarchical_neuron_annotations"),
    ("flywire", "annotations.shape", "long, reference table"),
    ("flywire", "synapses.score_column", "cleft_score"),
    ("flywire", "synapses.recommended_threshold", 50),
    ("flywire", "synapses.threshold_op", ">"),
    ("flywire", "row_cap", 500000),
    ("flywire", "live_queries", False),
    ("microns", "annotations.source", "aibs_metamodel_celltypes_v661"),
    ("microns", "annotations.reference_target", "nucleus_detection_v0"),
    ("microns", "synapses.table", "synapses_pni_2"),
    ("microns", "coordinates.voxel_size_nm", [4, 4, 40]),
    ("banc", "dataset", "brain_and_nerve_cord_public"),
    ("banc", "synapses.table", "synapses_v2"),
    ("banc", "synapses.score_column", "size"),
    ("banc", "synapses.unit", "nm"),
    ("banc", "annotations.source", "codex_annotations"),
    ("fanc", "synapses.table", "synapses_nov2022"),
    ("fanc", "synapses.score_column", "score"),
    ("fanc", "annotations.key_column", "tag2"),
    ("fanc", "annotations.side_values", ["left soma", "right soma", "midline soma"]),
    ("hemibrain", "coordinates.unit", "voxel"),
    ("hemibrain", "coordinates.voxel_size_nm", [8, 8, 8]),
    ("flywire-neuprint", "coordinates.unit", "nm"),
    ("banc-neuprint", "coordinates.unit", "nm"),
    ("manc", "annotations.side_values", ["LHS", "RHS", "Midline"]),
])
def test_catalogue_states_the_verified_facts(name, path, expected):
    item = catalogue.get(name).get(path)
    assert item is not None and item.value == expected
    assert item.verified, f"{name}.{path} should cite a checked source"


def test_typed_accessors():
    hb, fw = catalogue.get("hemibrain"), catalogue.get("flywire")
    assert (hb.backend, hb.server, hb.dataset, hb.version) == ("neuprint", "neuprint.janelia.org",
                                                               "hemibrain:v1.2.1", "v1.2.1")
    assert (hb.units, hb.voxel_size_nm, hb.score_column, hb.threshold_op) == ("voxel", [8, 8, 8], "confidence", ">")
    assert (fw.dataset, fw.version, fw.row_cap, fw.live_queries) == ("flywire_fafb_public", 783, 500000, False)
    assert fw.annotation_shape == "long, reference table" and "10.1038/s41586-024-07558-y" in fw.citation
    assert catalogue.get("microns").score_column == "none"
    assert all(s.startswith("seung-lab/FlyConnectome:") or s.startswith("navis-org/fafbseg-py:")
               for s in fw.sources_of("synapses.table"))
    with pytest.raises(errors.DatasetNotFoundError, match="did you mean 'hemibrain'"):
        catalogue.get("hemibrian")


@pytest.mark.parametrize(("text", "match"), [
    ('[datasets.x]\nserver = "h"\n', "bare value without a source"),
    ('[datasets.x]\nserver = { value = "h", source = "trust me" }\n', "every source must be"),
    ('[datasets.x]\nserver = { value = "h" }\n', "exactly one of 'source' or 'sources'"),
    ('[datasets.x]\nserver = { value = "h", source = "unverified" }\n', r"lacks \['description'"),
    ('[things.x]\n', "unknown top-level"),
    ('[datasets.x\n', "not valid TOML"),
])
def test_loader_rejects_malformed_catalogues(tmp_path, text, match):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(errors.ConfigError, match=match):
        catalogue.load(tmp_path)


def test_loader_rejects_a_name_defined_twice(tmp_path):
    for file in ("a.toml", "b.toml"):
        (tmp_path / file).write_text('[releases.same]\nurl = { value = "x", source = "unverified" }\n')
    with pytest.raises(errors.ConfigError, match="defined twice"):
        catalogue.load(tmp_path)


@pytest.fixture
def captured_uris(monkeypatch):
    """Make both remote backends record the URI they are asked to open instead of connecting."""
    from connectomix_cave.backend import CaveBackend
    from connectomix_neuprint.backend import NeuprintBackend

    class Resolved(Exception):
        pass

    def record(cls, uri, options):
        raise Resolved(uri.raw)

    monkeypatch.setattr(NeuprintBackend, "from_uri", classmethod(record))
    monkeypatch.setattr(CaveBackend, "from_uri", classmethod(record))
    return Resolved


def test_every_catalogue_name_opens_by_name_without_config(config_file, captured_uris):
    config_file("")
    listed = connectomix.datasets()
    assert "sample" in listed
    for name in catalogue.names():
        with pytest.raises(captured_uris) as resolved:
            connectomix.open(name)
        assert str(resolved.value) == listed[name] == catalogue.get(name).uri
    for name, uri in EXPECTED_URIS.items():
        assert listed[name] == uri


def test_config_overrides_a_catalogue_name_and_sample_still_opens(config_file, toy_release):
    config_file(f'[datasets.hemibrain]\nuri = "release://{toy_release}"\n')
    assert connectomix.datasets()["hemibrain"] == f"release://{toy_release}"
    with connectomix.open("hemibrain") as ds:
        assert ds.backend_name == "release"
    with connectomix.open("sample") as ds:
        assert ds.backend_name == "release"


def test_opening_a_remote_name_offline_fails_with_a_remote_error(config_file, monkeypatch):
    config_file("")
    monkeypatch.delenv("NEUPRINT_APPLICATION_CREDENTIALS", raising=False)
    with pytest.raises(errors.RemoteError, match="no neuPrint token.*neuprint.janelia.org/account"):
        connectomix.open("hemibrain")


def test_cli_datasets_long_shows_the_catalogue_within_80_columns(config_file, monkeypatch, capsys):
    config_file("")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["datasets"]) == 0
    plain = capsys.readouterr().out
    assert re.search(r"^flywire +cave://flywire_fafb_public\?materialization=783$", plain, re.M)
    assert main(["datasets", "--long"]) == 0
    out = capsys.readouterr().out
    for line in out.splitlines():
        assert len(line) <= 80 or " " not in line.strip(), f"not wrapped: {line!r}"
    block = out.split("\nflywire ", 1)[1].split("\nflywire-neuprint", 1)[0]
    assert "flywire_fafb_public | version 783" in block
    assert "cleft_score > 50" in block and "hierarchical_neuron_annotations (long, reference table)" in block
    assert "[4, 4, 40]" in block
    hemibrain = out.split("\nhemibrain ", 1)[1].split("\nmale-cns", 1)[0]
    assert "[8, 8, 8] nm voxels" in hemibrain and "postHighAccuracyThreshold = 0.5" in hemibrain
    assert "units: nm" in out.split("\nflywire-neuprint", 1)[1]
    assert "score: none" in out.split("\nmicrons ", 1)[1]


def test_cli_datasets_long_marks_config_entries(config_file, toy_release, capsys):
    config_file(f'[datasets.hemibrain]\nuri = "release://{toy_release}"\n')
    assert main(["datasets", "--long"]) == 0
    out = capsys.readouterr().out
    assert "from the config file; it overrides the catalogue entry" in out.split("\nhemibrain", 1)[1]
