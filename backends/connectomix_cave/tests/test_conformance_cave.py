"""The CAVE backend against the shared conformance suite, through the CAVE emulator (version 1 = the toy release)."""

import pytest

import connectomix
from connectomix.testing.conformance import ConformanceTests

TOKEN = "cave-conformance-token"


def open_toy(emu, **options):
    settings = dict(
        server=emu.url, token=TOKEN, materialization=1, filtered=False, connection_view=None,
        score_column="cleft_score", neuropil_column="neuropil", neuron_table="cell_types",
        type_column="cell_type", instance_column="instance",  # status: only typed neurons have rows here
        annotation_map="side=side,class=class,superclass=superclass,nt=nt,hemibrain_type=hemibrain_type",
        primary_rois="A,B,C(R)", live=True, cache=False,
    )
    settings.update(options)
    return connectomix.open(f"cave://{emu.datastack}", **settings)


class TestCaveConformance(ConformanceTests):
    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, toy_release):
        from connectomix_cave.emulator import CaveEmulator

        with CaveEmulator(toy_release, token=TOKEN, datastack="toy_stack") as emu:
            with open_toy(emu) as ds:
                yield ds
