"""Testing helpers shipped with connectomix: the toy connectome and the conformance suite.

Backends (first- or third-party) opt into the conformance suite by subclassing
:class:`~connectomix.testing.conformance.ConformanceTests` and providing a
``dataset`` fixture that serves the toy release (see
:func:`~connectomix.testing.toy.make_toy_release`)::

    from connectomix.testing.conformance import ConformanceTests

    class TestMyBackend(ConformanceTests):
        @pytest.fixture(scope="class")
        @classmethod
        def dataset(cls, toy_release):
            return connectomix.open(...)  # your backend, serving toy_release
"""

from .toy import HOSTILE_TYPE, TOY_PRIMARY_ROIS, TOY_VERSION, make_toy_release

__all__ = ["make_toy_release", "HOSTILE_TYPE", "TOY_PRIMARY_ROIS", "TOY_VERSION"]
