"""Sphinx directives that take their text from the code, so the pages cannot drift from it.

``.. cli-help:: [SUBCOMMAND]``
    The ``--help`` text of ``connectomix [SUBCOMMAND]``, as the command prints it.
``.. catalogue-table::``
    One row per dataset of the packaged catalogue (``connectomix/catalogue``).
``.. schema-columns:: NAME``
    The columns of the table ``connectomix.schema.NAME``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

#: Help text is wrapped by argparse at $COLUMNS; fixed so the pages do not depend on the terminal.
HELP_COLUMNS = "88"


def _help_text(command: list[str]) -> str:
    from connectomix.cli import main

    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        with contextlib.redirect_stdout(out):
            status = main([*command, "--help"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    if status != 0:
        raise RuntimeError(f"'connectomix {' '.join(command)} --help' exited with {status}")
    return out.getvalue().rstrip()


class CliHelp(SphinxDirective):
    """``connectomix [SUBCOMMAND] --help`` as a literal block."""

    optional_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0].split() if self.arguments else []
        text = _help_text(command)
        block = nodes.literal_block(text, text, language="text")
        return [block]


def _table(header: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)

    def row(cells: list[str]) -> nodes.row:
        r = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell)
            r += entry
        return r

    head = nodes.thead()
    head += row(header)
    body = nodes.tbody()
    for cells in rows:
        body += row(cells)
    group += head
    group += body
    return table


class CatalogueTable(SphinxDirective):
    """The packaged dataset catalogue: name, backend, server, dataset, version, units, public."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from connectomix import catalogue

        rows = []
        for name, entry in sorted(catalogue.load().datasets.items()):
            units = str(entry.units)
            if entry.voxel_size_nm is not None and units == "voxel":
                units = f"{entry.voxel_size_nm} nm voxels"
            elif units not in ("nm", "voxel"):
                units = "per table (see the entry)"
            core = [entry.get(path) for path in ("backend", "server", "dataset", "version")]
            unverified = " (unverified)" if any(item is not None and not item.verified for item in core) else ""
            server = re.sub(r"^https?://", "", str(entry.server))
            rows.append([name + unverified, str(entry.backend), server, str(entry.dataset), str(entry.version),
                         units, "yes" if entry.public else "no"])
        header = ["name", "backend", "server", "dataset / datastack", "version", "coordinates", "public"]
        return [_table(header, rows, [14, 8, 18, 20, 8, 14, 6])]


class SchemaColumns(SphinxDirective):
    """The columns of one :mod:`connectomix.schema` table: name, dtype, unit, nullable, meaning."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        from connectomix import schema

        table = getattr(schema, self.arguments[0])
        rows = []
        for column, required in [(c, "yes") for c in table.columns] + [(c, "no") for c in table.optional]:
            rows.append([column.name, column.dtype, column.unit or "", "yes" if column.nullable else "no",
                         required, column.description])
        intro = nodes.paragraph(text=f"Table {table.name!r}: {table.description}")
        header = ["column", "dtype", "unit", "nullable", "required", "meaning"]
        return [intro, _table(header, rows, [14, 8, 4, 6, 6, 40])]


def setup(app):
    app.add_directive("cli-help", CliHelp)
    app.add_directive("catalogue-table", CatalogueTable)
    app.add_directive("schema-columns", SchemaColumns)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
