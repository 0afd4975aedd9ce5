"""The panel's list exports: Flask-Admin's CSV export, each cell through service.core.csvfile."""

from __future__ import annotations

from service.core.csvfile import csv_cell


class CsvExport:
    """Mixed into every model view before Flask-Admin's ModelView."""

    def get_export_value(self, model, name):
        return csv_cell(super().get_export_value(model, name))
