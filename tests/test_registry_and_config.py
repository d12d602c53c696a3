import importlib.metadata
import textwrap

import pytest

import connectomix
from connectomix import errors
from connectomix.config import Secret, load_config, parse_uri
from connectomix.registry import ENTRY_POINT_GROUP, Registry


def ep(name, value):
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(module, source):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        return module

    return make


GOOD = """
    from connectomix.backend import Backend
    from connectomix.hookspecs import hookimpl

    class FakeBackend(Backend):
        name = "fake"
        schemes = ("fake",)
        description = "a fake backend for tests"

    @hookimpl
    def connectomix_backends():
        return [FakeBackend]

    @hookimpl
    def connectomix_datasets():
        return {"fakeset": "fake://somewhere"}
"""


def test_installed_first_party_backend_is_found_through_entry_points():
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert "release" in {e.name for e in eps}
    assert connectomix.backends()["release"].schemes == ("release",)
    assert "sample" in connectomix.datasets()


def test_broken_plugins_warn_and_the_rest_still_load(plugin_dir):
    good = plugin_dir("cx_good_plugin", GOOD)
    raising = plugin_dir(
        "cx_raising_plugin",
        """
        from connectomix.hookspecs import hookimpl

        @hookimpl
        def connectomix_backends():
            raise RuntimeError("boom in hook")
        """,
    )
    not_a_backend = plugin_dir(
        "cx_wrong_plugin",
        """
        from connectomix.hookspecs import hookimpl

        @hookimpl
        def connectomix_backends():
            return [object]
        """,
    )
    with pytest.warns(RuntimeWarning) as record:
        reg = Registry([ep("missing", "cx_no_such_module_anywhere"), ep("good", good),
                        ep("raising", raising), ep("wrong", not_a_backend)])
    messages = " | ".join(str(w.message) for w in record)
    assert "'missing'" in messages and "failed to load" in messages
    assert "boom in hook" in messages
    assert "not a named connectomix.backend.Backend subclass" in messages
    assert list(reg.backends) == ["fake"]
    assert reg.datasets == {"fakeset": "fake://somewhere"}
    assert reg.backend_for_scheme("fake").name == "fake"


def test_scheme_clash_is_refused_with_a_warning(plugin_dir):
    a = plugin_dir("cx_clash_a", GOOD)
    b = plugin_dir("cx_clash_b", GOOD.replace('name = "fake"', 'name = "fake2"'))
    with pytest.warns(RuntimeWarning, match="clashes"):
        reg = Registry([ep("a", a), ep("b", b)])
    assert list(reg.backends) == ["fake"]


def test_typo_in_hook_name_is_rejected_at_registration(plugin_dir):
    typo = plugin_dir(
        "cx_typo_plugin",
        """
        from connectomix.hookspecs import hookimpl

        @hookimpl
        def connectomix_backend():
            return []
        """,
    )
    with pytest.raises(Exception, match="unknown hook"):
        Registry([ep("typo", typo)])


def test_unknown_scheme_lists_installed_ones():
    with pytest.raises(errors.BackendNotFoundError, match="'relase://'.*did you mean 'release'"):
        connectomix.open("relase:///tmp/x")


@pytest.mark.parametrize(
    "uri, match",
    [
        ("nosuchdataset", "Unknown dataset 'nosuchdataset'"),
        ("1http://x", "invalid scheme"),
        ("release://", "nothing after"),
        ("neuprint://host:notaport/x", "port"),
        ("cave://stack?a=1&a=2", "sets option 'a' twice"),
        ("cave://stack#frag", "fragments"),
    ],
)
def test_malformed_uris_and_unknown_names(uri, match, config_file):
    config_file("")
    with pytest.raises(errors.ConnectomixError, match=match):
        connectomix.open(uri)


def test_unknown_dataset_suggests_close_names(config_file):
    config_file('[datasets.hemibrain]\nuri = "release:///nowhere"\n')
    with pytest.raises(errors.DatasetNotFoundError, match="did you mean 'hemibrain'"):
        connectomix.open("hemibrian")


def test_parse_uri_options():
    p = parse_uri("neuprint://127.0.0.1:8443/hemibrain:v1.2.1?verify=false&token=abc")
    assert p.location == "127.0.0.1:8443/hemibrain:v1.2.1"
    assert dict(p.options) == {"verify": "false", "token": Secret("abc")}
    assert "abc" not in repr(p) and p.options["token"].reveal() == "abc"


def test_named_dataset_from_toml_swaps_backend_by_config(config_file, toy_release):
    config_file(f'[datasets.mine]\nuri = "release://{toy_release}"\nthreads = 1\n')
    assert connectomix.datasets()["mine"] == f"release://{toy_release}"
    with connectomix.open("mine") as ds:
        assert ds.name == "mine" and ds.backend_name == "release"
        edges = ds.get_connectivity(sources=[101])
    assert edges.attrs["dataset"] == "mine"


def test_config_options_are_validated_by_the_backend(config_file, toy_release):
    config_file(f'[datasets.mine]\nuri = "release://{toy_release}"\nthreds = 1\n')
    with pytest.raises(errors.InvalidArgumentError, match=r"unknown option\(s\) \['threds'\].*'threads'"):
        connectomix.open("mine")


@pytest.mark.parametrize(
    "text, match",
    [
        ("[datasets.x\n", "not valid TOML"),
        ("[datasets.x]\nurl = 'release:///a'\n", "needs a string 'uri'"),
        ("[something]\n", "unknown top-level key"),
    ],
)
def test_bad_config_files(config_file, text, match):
    config_file(text)
    with pytest.raises(errors.ConfigError, match=match):
        load_config()


def test_missing_config_named_by_env_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CONNECTOMIX_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(errors.ConfigError, match="does not exist"):
        load_config()


def test_tokens_in_config_are_secrets(config_file):
    config_file('[datasets.x]\nuri = "neuprint://h/d"\ntoken = "s3cr3t-token"\n')
    entry = load_config()["x"]
    assert isinstance(entry.options["token"], Secret)
    assert "s3cr3t" not in repr(entry) and "s3cr3t" not in str(entry.options)
    assert entry.options["token"].reveal() == "s3cr3t-token"


def test_secret_cannot_be_pickled():
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_release_uri_errors(tmp_path):
    with pytest.raises(errors.InvalidURIError, match="does not exist"):
        connectomix.open(f"release://{tmp_path / 'missing'}")
    with pytest.raises(errors.DataFormatError, match="no manifest.json"):
        connectomix.open(f"release://{tmp_path}")


def test_materialization_on_unversioned_backend_is_refused(toy):
    with pytest.raises(errors.UnsupportedOperation, match="materialization=783"):
        toy.get_connectivity(sources=[101], materialization=783)
