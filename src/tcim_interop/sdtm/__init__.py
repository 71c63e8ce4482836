"""SDTM side: dates and study days, text rules, SUPPxx, XPT v5 writing and reading."""
