"""Spreadsheets (tasks/merge/reading/spreadsheet.py): .xlsx, .xls and .ods
files written here with openpyxl, xlwt and odfpy are read back cell by cell
as the text a spreadsheet shows, sheet by sheet, and merged like CSV files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from csv_merger.errors import InputError
from tasks.merge import merge_files, open_source
from tasks.merge.reading import is_spreadsheet, split_sheet, workbook_inputs
from tasks.merge.reading.spreadsheet import cell_text

HEADER = ["First Name", "Email", "Phone", "Zip", "Joined", "Score", "Active", "Employees"]
# (value written, text expected back) per column, two rows
ROWS = [
    [("Ann", "Ann"), ("ann@acme.com", "ann@acme.com"), (14155550134, "14155550134"), ("02134", "02134"),
     (dt.date(2024, 3, 1), "2024-03-01"), (0.1 + 0.2, "0.3"), (True, "TRUE"), (250, "250")],
    [("Bob", "Bob"), ("bob@beta.io", "bob@beta.io"), (4155550135.0, "4155550135"), ("00501", "00501"),
     (dt.datetime(2024, 3, 1, 9, 30), "2024-03-01 09:30:00"), (12.5, "12.5"), (False, "FALSE"),
     (1e10, "10000000000")],
]
EXPECTED = [[text for _, text in row] for row in ROWS]


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def write_xls(path: Path, rows: list[list]) -> Path:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Leads")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    datetime_style = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, dt.datetime):
                sheet.write(r, c, value, datetime_style)
            elif isinstance(value, dt.date):
                sheet.write(r, c, value, date_style)
            else:
                sheet.write(r, c, value)
    book.save(str(path))
    return path


def write_ods(path: Path, rows: list[list]) -> Path:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="Leads")
    for row in rows:
        tr = TableRow()
        for value in row:
            if isinstance(value, bool):
                cell = TableCell(valuetype="boolean", booleanvalue="true" if value else "false")
            elif isinstance(value, (int, float)):
                cell = TableCell(valuetype="float", value=repr(value))
            elif isinstance(value, dt.datetime):
                cell = TableCell(valuetype="date", datevalue=value.isoformat())
            elif isinstance(value, dt.date):
                cell = TableCell(valuetype="date", datevalue=value.isoformat())
            else:
                cell = TableCell(valuetype="string")
            cell.addElement(P(text=str(value)))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def values() -> list[list]:
    return [HEADER, *[[value for value, _ in row] for row in ROWS]]


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
def test_every_cell_round_trips_as_shown_text(tmp_path, kind):
    path = tmp_path / f"leads.{kind}"
    {"xlsx": lambda: write_xlsx(path, {"Leads": values()}), "xls": lambda: write_xls(path, values()),
     "ods": lambda: write_ods(path, values())}[kind]()
    source = open_source(path)
    assert (source.header, source.header_line, source.encoding) == (HEADER, 1, kind)
    rows = list(source.rows())
    assert [row.cells for row in rows] == EXPECTED
    assert [row.line for row in rows] == [2, 3]
    assert source.sample() == EXPECTED and not source.bad_rows and not source.warnings


def test_cell_text_rules():
    assert cell_text(14155550134.0) == "14155550134" and cell_text(1.5e-7) == "0.00000015"
    assert cell_text(None) == "" and cell_text(dt.time(9, 5)) == "09:05:00"
    assert cell_text(dt.timedelta(hours=26, minutes=3)) == "26:03:00" and cell_text("#N/A") == "#N/A"


def test_layout_repairs_and_reporting(tmp_path):
    path = write_xlsx(tmp_path / "b.xlsx", {"Leads": [
        [], ["Name", "Email", None], ["Ann", "ann@acme.com"], [None, None], ["Bob", "bob@beta.io", "surplus"]]})
    source = open_source(path)
    assert source.header == ["Name", "Email"] and source.header_line == 2
    assert source.warnings == ["1 empty row(s) before the header on row 2 skipped"]
    rows = list(source.rows())
    assert [(r.line, r.cells, r.surplus) for r in rows] == [
        (3, ["Ann", "ann@acme.com"], []), (5, ["Bob", "bob@beta.io"], ["surplus"])]
    assert [b.line for b in source.bad_rows] == [5] and "surplus" in source.bad_rows[0].reason


def test_sheets_chosen_listed_and_refused(tmp_path):
    path = write_xlsx(tmp_path / "book.xlsx", {"Empty": [], "Leads": [["Email"], ["a@acme.com"]],
                                               "More": [["Email"], ["b@beta.io"]]})
    assert workbook_inputs(path) == [f"{path}#Leads", f"{path}#More"]
    assert split_sheet(f"{path}#More") == (path, "More") and split_sheet("a#b.csv") == (Path("a#b.csv"), None)
    first = open_source(path)
    assert first.sheet == "Leads" and "3 sheets" in first.warnings[0]
    assert [r.cells for r in open_source(f"{path}#More").rows()] == [["b@beta.io"]]
    with pytest.raises(InputError, match=r"no sheet 'Nope' \(sheets: Empty, Leads, More\)"):
        open_source(f"{path}#Nope")
    empty = open_source(f"{path}#Empty")
    assert empty.header == [] and empty.warnings == ["empty sheet 'Empty'"] and list(empty.rows()) == []


def test_workbook_under_a_csv_name_is_read_as_a_workbook(tmp_path):
    path = write_xlsx(tmp_path / "export.csv", {"Leads": [["Email"], ["a@acme.com"]]})
    assert is_spreadsheet(path)
    assert [r.cells for r in open_source(path).rows()] == [["a@acme.com"]]
    report = merge_files([path], tmp_path / "merged.csv")
    assert (report.files[0].source, report.files[0].encoding, report.rows_out) == ("export.csv", "xlsx", 1)
    two = write_xlsx(tmp_path / "two.csv", {"A": [["Email"], ["a@acme.com"]], "B": [["Email"], ["b@beta.io"]]})
    report = merge_files([two], tmp_path / "merged.csv")  # every sheet read, as from a .xlsx
    assert [(f.source, f.encoding, f.rows) for f in report.files] == [("two.csv#A", "xlsx", 1), ("two.csv#B", "xlsx", 1)]


def test_unreadable_workbook_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="broken.xlsx.*cannot read the spreadsheet"):
        open_source(bad)
    with pytest.raises(InputError, match="file not found"):
        open_source(tmp_path / "missing.xlsx")


def test_merge_reads_every_sheet_and_csv_alike(tmp_path):
    book = write_xlsx(tmp_path / "book.xlsx", {
        "Leads": [["First Name", "Email", "Phone"], ["Ann", "ann@acme.com", 14155550134]],
        "More": [["Nombre", "Correo", "Teléfono"], ["Carla", "carla@gamma.es", "+34 912 345 678"]]})
    csv = tmp_path / "more.csv"
    csv.write_text("Email,Phone,Company\nANN@acme.com,(415) 555-0134,Acme\n", encoding="utf-8")
    out = tmp_path / "merged.csv"
    report = merge_files([book, csv], out)
    assert [f.source for f in report.files] == ["book.xlsx#Leads", "book.xlsx#More", "more.csv"]
    assert [f.encoding for f in report.files] == ["xlsx", "xlsx", "utf-8"]
    assert report.files[1].mapping == {"Nombre": "First Name", "Correo": "Work Email", "Teléfono": "Phone Number"}
    assert (report.rows_in, report.rows_out, report.duplicates_merged) == (3, 2, 1)
    text = out.read_text(encoding="utf-8")
    assert "14155550134" in text and "(415) 555-0134" not in text  # one phone, first-seen spelling
    assert "book.xlsx#Leads | more.csv" in text and "Carla" in text
