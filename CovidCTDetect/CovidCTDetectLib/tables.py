"""Results as table nodes (one row per run) and curves as plot chart nodes.

Numbers (int, float, numpy scalars) go to ``vtkDoubleArray`` columns, everything else to
``vtkStringArray`` columns; a column that a later row introduces is added with empty cells above.
"""

from __future__ import annotations

import numbers

import numpy as np
import slicer
import vtk

from .volumes import scene_or_default


def append_result_row(row: dict, table_node=None, name: str = "CovidCT results", scene=None):
    """Append ``row`` (column name → value) to ``table_node`` (a new table named ``name`` if None).

    Returns the table node. Columns are matched by name; missing values are left empty (NaN for
    numbers, "" for text).
    """
    if table_node is None:
        table_node = scene_or_default(scene).AddNewNodeByClass("vtkMRMLTableNode", name)
    table = table_node.GetTable()
    for column_name, value in row.items():
        if table.GetColumnByName(column_name) is None:
            column = vtk.vtkDoubleArray() if _is_number(value) else vtk.vtkStringArray()
            column.SetName(column_name)
            column.SetNumberOfTuples(table.GetNumberOfRows())
            if isinstance(column, vtk.vtkDoubleArray):
                column.Fill(float("nan"))
            table.AddColumn(column)
    row_index = table_node.AddEmptyRow()
    for column_name, value in row.items():
        column = table.GetColumnByName(column_name)
        if isinstance(column, vtk.vtkDoubleArray):
            column.SetValue(row_index, float(value) if _is_number(value) else float("nan"))
        else:
            column.SetValue(row_index, str(value))
    table.Modified()
    return table_node


def set_table_columns(table_node, columns: dict):
    """Replace the content of ``table_node`` with ``columns`` (column name → sequence of values, all of one length).

    A column whose values are all numbers or None (at least one number) becomes a ``vtkDoubleArray`` (None →
    NaN); any other column a ``vtkStringArray`` (None → ""). The table is modified once. Returns the table node.
    """
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths {sorted(lengths)}")
    table = vtk.vtkTable()
    for column_name, values in columns.items():
        numeric = any(_is_number(v) for v in values) and all(v is None or _is_number(v) for v in values)
        column = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        column.SetName(column_name)
        column.SetNumberOfValues(len(values))
        for row, value in enumerate(values):
            if numeric:
                column.SetValue(row, float("nan") if value is None else float(value))
            else:
                column.SetValue(row, "" if value is None else str(value))
        table.AddColumn(column)
    table_node.SetAndObserveTable(table)
    return table_node


def plot_curve(
    x, y, name: str, chart_node=None, x_title: str = "", y_title: str = "", color=(0.2, 0.4, 0.8), scene=None
):
    """Add the curve ``y(x)`` (1-D sequences of equal length) as a line series to a plot chart.

    Creates a table node ``"<name> data"`` with columns ``x_title``/``y_title`` (or "x"/"y"), a plot
    series node ``name`` and, when ``chart_node`` is None, a chart node ``name`` with the axis titles.
    Returns the chart node.
    """
    scene = scene_or_default(scene if chart_node is None else chart_node.GetScene())
    x_name, y_name = x_title or "x", y_title or "y"
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} data")
    slicer.util.updateTableFromArray(table_node, [np.asarray(x, float), np.asarray(y, float)], [x_name, y_name])
    if chart_node is None:
        chart_node = new_chart(name, x_title, y_title, scene)
    add_plot_series(chart_node, table_node, x_name, y_name, name, color)
    return chart_node


def new_chart(name: str, x_title: str = "", y_title: str = "", scene=None):
    """A new plot chart node ``name`` (also its title) with the given axis titles."""
    chart_node = scene_or_default(scene).AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart_node.SetTitle(name)
    chart_node.SetXAxisTitle(x_title)
    chart_node.SetYAxisTitle(y_title)
    return chart_node


def add_plot_series(
    chart_node,
    table_node,
    x_column: str,
    y_column: str,
    name: str,
    color=(0.2, 0.4, 0.8),
    line: bool = True,
    markers: bool = False,
    label_column: str = "",
):
    """Add a series ``name`` plotting ``table_node``'s column ``y_column`` against ``x_column`` to ``chart_node``.

    The series observes the table, so rows added to the table later appear in the chart. ``line``:
    join the points; ``markers``: draw a circle at each point; ``label_column``: a column of point
    labels (shown on hover). Returns the plot series node.
    """
    series = chart_node.GetScene().AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    series.SetAndObserveTableNodeID(table_node.GetID())
    series.SetXColumnName(x_column)
    series.SetYColumnName(y_column)
    series.SetLabelColumnName(label_column)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetMarkerStyle(
        slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle if markers else slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone
    )
    if not line:
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
    series.SetColor(*color)
    chart_node.AddAndObservePlotSeriesNodeID(series.GetID())
    return series


def _is_number(value) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)
