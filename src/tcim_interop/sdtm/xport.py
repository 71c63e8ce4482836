"""The bytes of a SAS XPORT v5 file (SAS technical note TS-140), one dataset per file.

The layout is the one ReadStat's writer gives (what pyreadstat.write_xport wrote for this project before),
byte for byte, so that a package is the same whichever wrote it (tests/test_xport.py holds this writer to
pyreadstat's bytes): 80-byte records, blank-padded; a NAMESTR of 140 bytes per variable; numbers as
8-byte IBM 370 doubles, a missing one as "." and seven zero bytes; text blank-padded to the variable's
length, the longest value in bytes (at least 1).

Written in Python and numpy, not through pyreadstat: its fixed cost per file (building a narwhals frame,
inspecting every column) was most of the time of writing a small package. The caller has checked the
dataset first (xpt.check): names, labels, lengths, ASCII text and the range of IBM floating point.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

RECORD = 80
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_NAMESTR = struct.Struct(">HHHH8s40s8sHHH2s8sHHI32sH18s")  # 140 bytes, big-endian (TS-140)
_NUM, _CHAR = 1, 2  # NAMESTR ntype
_MISSING = b"." + bytes(7)
# IBM 370 doubles: a sign, a power of 16 from -64 to 63 and 56 bits of fraction (0.1 to 0.F in hex)
IBM_MIN = 16.0 ** -65  # the smallest normalized one, 2**-260, ~5.4e-79
IBM_BEYOND = 16.0 ** 63  # the first power of 16 beyond the largest, 2**252, ~7.2e75 (a float64 below it fits)


def sas_datetime(when: datetime) -> str:
    """ddMMMyy:hh:mm:ss, the header's date and time."""
    return f"{when.day:02d}{MONTHS[when.month - 1]}{when.year % 100:02d}:" \
           f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"


def _padded(data: bytes) -> bytes:
    """Blank-padded to a whole number of records."""
    return data + b" " * (-len(data) % RECORD)


def _header(name: str, *numbers: int) -> bytes:
    return _padded(f"HEADER RECORD*******{name:<8}HEADER RECORD!!!!!!!".encode()
                   + "".join(f"{n:05d}" for n in numbers).encode())


def ibm_doubles(values: np.ndarray) -> np.ndarray:
    """float64 values (none NaN) as big-endian IBM 370 doubles, one row of 8 bytes each: TS-140's
    ieee2xpt, vectorised; exact (IEEE's 53 bits of fraction fit in IBM's 56). Below IBM's range 0, beyond
    it the largest IBM number (xpt.check refuses both first).
    TS-140 (and ReadStat, which pyreadstat runs) takes the largest IBM number from 2**249 on, where IBM
    holds up to 2**252: ReadStat reads that number back as infinity, so 1e75 would have come back as inf.
    Here the clamp starts beyond IBM's range; below 2**249 the bytes are ReadStat's."""
    bits = values.astype(">f8").view(">u8").astype(np.uint64)
    high, low = bits >> np.uint64(32), bits & np.uint64(0xFFFFFFFF)
    exponent = ((high >> np.uint64(20)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    shift = (exponent & 3).astype(np.uint64)
    fraction = ((high & np.uint64(0xFFFFF)) | np.uint64(0x100000)) << shift \
        | (((low >> np.uint64(24)) & np.uint64(0xE0)) >> (np.uint64(8) - shift))
    sign = (high >> np.uint64(24)) & np.uint64(0x80)
    top = (fraction | ((((exponent >> 2) + 65).astype(np.uint64) | sign) << np.uint64(24))) & np.uint64(0xFFFFFFFF)
    out = (top << np.uint64(32)) | ((low << shift) & np.uint64(0xFFFFFFFF))
    out[(high | low) == 0] = 0
    out[exponent < -260] = 0
    over = exponent > 251
    out[over] = ((np.uint64(0x7F) | sign[over]) << np.uint64(56)) | np.uint64(0x00FFFFFFFFFFFFFF)
    return out.astype(">u8").view(np.uint8).reshape(len(values), 8)


def ibm_floats(cells: np.ndarray) -> np.ndarray:
    """IBM 370 doubles, one row of 8 bytes each (a shorter number padded with zero bytes), as float64, as
    ReadStat reads them (pyreadstat): TS-140's xpt2ieee, vectorised. A first byte that is not zero followed
    by zero bytes is missing (".", ".A" to ".Z", "._"): NaN; the largest IBM number, infinity; the 3 bits
    IBM holds beyond IEEE's 53 are dropped."""
    n = len(cells)
    be = np.ascontiguousarray(cells, dtype=np.uint8).view(">u8").reshape(n).astype(np.uint64)
    x1, x2 = be >> np.uint64(32), be & np.uint64(0xFFFFFFFF)
    shift = np.select([(x1 & np.uint64(0x800000)) != 0, (x1 & np.uint64(0x400000)) != 0,
                       (x1 & np.uint64(0x200000)) != 0], [3, 2, 1], 0).astype(np.uint64)
    high = ((x1 & np.uint64(0xFFFFFF)) >> shift) & np.uint64(0xFFEFFFFF)
    low = np.where(shift > 0, (x2 >> shift) | ((x1 & np.uint64(7)) << (np.uint64(32) - shift)), x2) & np.uint64(0xFFFFFFFF)
    exponent = ((x1 >> np.uint64(24)) & np.uint64(0x7F)).astype(np.int64) - 65
    high |= ((exponent * 4 + shift.astype(np.int64) + 1023).astype(np.uint64) << np.uint64(20)) & np.uint64(0xFFFFFFFF)
    high |= x1 & np.uint64(0x80000000)
    out = ((high << np.uint64(32)) | low).view(np.float64)
    out[(x1 == 0) & (x2 == 0)] = 0.0
    out[((x1 & np.uint64(0x7FFFFFFF)) == 0x7FFFFFFF) & (x2 == 0xFFFFFFFF)] = np.inf
    out[((x1 & np.uint64(0x7FFFFFFF)) == 0x7FFFFFFF) & (x2 == 0xFFFFFFFF) & (x1 >> np.uint64(31) == 1)] = -np.inf
    out[(cells[:, 0] != 0) & ((be & np.uint64(0x00FFFFFFFFFFFFFF)) == 0)] = np.nan
    return out


def _number_column(values: Sequence[Any]) -> np.ndarray:
    numbers = np.asarray(values, dtype="float64")
    missing = np.isnan(numbers)
    cells = ibm_doubles(np.where(missing, 0.0, numbers))
    cells[missing] = np.frombuffer(_MISSING, dtype=np.uint8)
    return cells


def _text_column(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    encoded = [b"" if v is None or (isinstance(v, float) and v != v) else str(v).encode() for v in values]
    width = max(1, max(map(len, encoded), default=1))
    cells = b"".join(e.ljust(width) for e in encoded)
    return np.frombuffer(cells, dtype=np.uint8).reshape(len(encoded), width), width


def xport_bytes(name: str, label: str, variables: Sequence[tuple[str, str, bool]],
                columns: Sequence[Sequence[Any]], created: datetime) -> bytes:
    """One dataset as an XPORT v5 file. variables: (name, label, is_text) in order; columns: the values of
    each (text: str, None blank; numbers: float, NaN missing)."""
    stamp = sas_datetime(created)
    rows = len(columns[0]) if columns else 0
    cells, namestrs, position = [], [], 0
    for k, ((vname, vlabel, text), values) in enumerate(zip(variables, columns, strict=True)):
        if text:
            block, width = _text_column(values)
        else:
            block, width = _number_column(values), 8
        cells.append(block)
        namestrs.append(_NAMESTR.pack(_CHAR if text else _NUM, 0, width, k + 1, vname.encode().ljust(8)[:8],
                                      vlabel.encode().ljust(40)[:40], b" " * 8, 0, 0, 0 if text else 1,
                                      b"\0\0", b" " * 8, 0, 0, position, bytes(32), 0, bytes(18)))
        position += width
    data = np.concatenate(cells, axis=1).tobytes() if cells and rows else b""
    return b"".join([
        _header("LIBRARY", 0, 0, 0, 0, 0, 0),
        _padded(f"{'SAS':<8}{'SAS':<8}{'SASLIB':<8}{'6.06':<8}{'bsd4.2':<8}{'':<24}{stamp:>16}".encode()),
        _padded(stamp.encode()),
        _header("MEMBER", 0, 0, 0, 160, 0, 140),
        _header("DSCRPTR", 0, 0, 0, 0, 0, 0),
        _padded(f"{'SAS':<8}{name[:8]:<8}{'SASDATA':<8}{'6.06':<8}{'bsd4.2':<8}{'':<24}{stamp:>16}".encode()),
        _padded(f"{stamp:>16}{'':>16}".encode() + label.encode().ljust(40)[:40] + b" " * 8),
        _header("NAMESTR", 0, len(variables), 0, 0, 0, 0),
        _padded(b"".join(namestrs)),
        _header("OBS", 0, 0, 0, 0, 0, 0),
        _padded(data),
    ])
