"""CSV cells a spreadsheet will not run: the one place every CSV this project writes passes through.

A cell that opens with =, +, -, @, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets (CSV injection: `=HYPERLINK(...)` in an AE term would become a live link in the
reviewer's sheet). Following OWASP's guidance (https://owasp.org/www-community/attacks/CSV_Injection),
such a cell is prefixed with a single quote, which spreadsheets show as text. That includes numbers
such as "-1": telling a harmless number from a formula is what the guidance warns against trying.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, with a leading ' when a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
