"""A CAVE emulator: a release folder served as InfoService + MaterializationEngine + PyChunkedGraph.

Unmodified caveclient and fafbseg work against it on 127.0.0.1, so notebooks
and downstream CI can use CAVE code paths offline. Version 1 is the release
as-is; later materialization versions follow an edit script of SYNTHETIC
(invented) splits and merges. See ``README.md`` next to this file.

>>> from connectomix_cave.emulator import CaveEmulator          # doctest: +SKIP
>>> with CaveEmulator("path/to/release", row_limit=1000) as emu:  # doctest: +SKIP
...     print(emu.url, emu.datastack)
"""

from .dataset import EmulatedDataset, build_dataset, default_script_for_release
from .edits import EditScript, OperationSpec, VersionSpec, default_edit_script, load_edit_script
from .emulator import DEFAULT_DATASTACK, CaveEmulator
from .faults import FaultInjector, RequestStats
from .home import client_environment, use_client_home, write_client_home
from .profiles import DatastackProfile, profile
from .tables import TableNames, TableOptions

__all__ = [
    "CaveEmulator",
    "DatastackProfile",
    "profile",
    "DEFAULT_DATASTACK",
    "EditScript",
    "OperationSpec",
    "VersionSpec",
    "EmulatedDataset",
    "FaultInjector",
    "RequestStats",
    "TableNames",
    "TableOptions",
    "build_dataset",
    "client_environment",
    "default_edit_script",
    "default_script_for_release",
    "load_edit_script",
    "use_client_home",
    "write_client_home",
]
