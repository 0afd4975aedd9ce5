"""The panel's list exports: Flask-Admin's CSV export, written through service.csvfile."""

from __future__ import annotations

from itertools import chain

from flask import Response, stream_with_context
from werkzeug.utils import secure_filename

from service.core.csvfile import csv_lines


class CsvExport:
    """Mixed into every model view before Flask-Admin's ModelView."""

    def _export_csv(self, return_url):
        _, rows = self._export_data()
        columns = self._export_columns
        cells = ([self.get_export_value(row, name) for name, _ in columns] for row in rows)
        filename = secure_filename(self.get_export_name(export_type="csv"))
        return Response(
            stream_with_context(csv_lines(chain([[title for _, title in columns]], cells))),
            headers={"Content-Disposition": f"attachment;filename={filename}"},
            mimetype="text/csv")
