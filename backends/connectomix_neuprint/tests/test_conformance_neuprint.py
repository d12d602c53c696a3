"""The neuPrint backend against the shared conformance suite, through the neuPrint emulator."""

import pytest

import connectomix
from connectomix.testing.conformance import ConformanceTests

TOKEN = "conformance-token"


class TestNeuprintConformance(ConformanceTests):
    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, toy_release):
        from connectomix_neuprint.emulator import NeuprintEmulator

        with NeuprintEmulator(toy_release, token=TOKEN, dataset="toy:v1") as emu, pytest.MonkeyPatch.context() as patch:
            # cloud-volume (meshes) trusts the emulator's CA as requests does: $REQUESTS_CA_BUNDLE
            patch.setenv("REQUESTS_CA_BUNDLE", str(emu.cert_path))
            host = emu.url.split("://", 1)[1]
            with connectomix.open(f"neuprint://{host}/toy:v1", token=TOKEN, verify=str(emu.cert_path),
                                  cache=False) as ds:
                yield ds
