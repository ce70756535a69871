"""Payment card numbers in text: 12 to 19 digits that pass the Luhn check and fit an issuer.

Digits may be grouped by single spaces or dashes (``4111 1111 1111 1111``, ``3782-822463-10005``).
A run is a card only when its length and leading digits match an issuer's published ranges and the
Luhn checksum holds, so that ISBN-13s, EAN barcodes, phone numbers, epoch-millisecond timestamps and
order ids are kept. The Luhn check is ours (eight lines, on the hot path, no dependency); the tests
check it against python-stdnum's.
"""

from __future__ import annotations

import re

# (first digits low, high, allowed lengths) from the issuers' and processors' published IIN ranges.
_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = tuple(
    (low, high, frozenset(lengths))
    for low, high, lengths in (
        ("4", "4", (13, 16, 19)),  # Visa (13 digits: legacy, still in processors' test lists)
        ("51", "55", (16,)),  # Mastercard
        ("2221", "2720", (16,)),  # Mastercard 2-series
        ("34", "34", (15,)),  # American Express
        ("37", "37", (15,)),
        ("6011", "6011", (16, 17, 18, 19)),  # Discover
        ("644", "649", (16, 17, 18, 19)),
        ("65", "65", (16, 17, 18, 19)),
        ("622126", "622925", (16, 17, 18, 19)),  # Discover / UnionPay co-branded
        ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners Club International
        ("3095", "3095", (14, 15, 16, 17, 18, 19)),
        ("36", "36", (14, 15, 16, 17, 18, 19)),
        ("38", "39", (14, 15, 16, 17, 18, 19)),
        ("3528", "3589", (16, 17, 18, 19)),  # JCB
        ("62", "62", (16, 17, 18, 19)),  # UnionPay
        ("81", "81", (16, 17, 18, 19)),  # UnionPay (81 series)
        ("2200", "2204", (16, 17, 18, 19)),  # Mir
        ("5018", "5018", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
        ("5020", "5020", (12, 13, 14, 15, 16, 17, 18, 19)),
        ("5038", "5038", (12, 13, 14, 15, 16, 17, 18, 19)),
        ("5893", "5893", (12, 13, 14, 15, 16, 17, 18, 19)),
        ("6304", "6304", (12, 13, 14, 15, 16, 17, 18, 19)),
        ("6759", "6759", (12, 13, 14, 15, 16, 17, 18, 19)),
        ("6761", "6763", (12, 13, 14, 15, 16, 17, 18, 19)),
        ("6703", "6703", (16, 17, 18, 19)),  # Bancontact (Maestro range)
        ("6771", "6771", (16,)),  # Maestro (Adyen's test range)
        ("633110", "633110", (16, 18, 19)),  # Switch / Solo (retired; still in test lists)
        ("6333", "6334", (16, 18, 19)),
        ("6767", "6767", (16, 18, 19)),
        ("5019", "5019", (16,)),  # Dankort
        ("5066", "5067", (16,)),  # Elo
        ("509", "509", (16,)),
        ("636368", "636368", (16,)),
        ("606282", "606282", (16, 19)),  # Hipercard
        ("60", "60", (16,)),  # RuPay
        ("508", "508", (16,)),
    )
)
# Digit groups separated by one space or dash. A match is a whole run (it is greedy, unbounded and
# must end the run), so it never starts inside a longer run and masking twice changes nothing.
_CANDIDATE = re.compile(r"\d(?:[ -]?\d){11,}(?![ -]?\d)")
# A cheaper first scan (one character class): runs of digits, spaces and dashes long enough for a card.
_RUN = re.compile(r"[0-9][0-9 -]{11,}")
_GROUP = re.compile(r"\d+")
MIN_DIGITS, MAX_DIGITS = 12, 19


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum of a string of digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _ean13_valid(digits: str) -> bool:
    return sum((ord(c) - 48) * (3 if i % 2 else 1) for i, c in enumerate(digits)) % 10 == 0


def issuer_fits(digits: str) -> bool:
    """Whether an issuer issues numbers of this length starting with these digits."""
    length = len(digits)
    for low, high, lengths in _RANGES:
        if length in lengths and low <= digits[: len(low)] <= high:
            # A 13-digit "Visa" that is also a valid EAN-13 is far more likely a barcode (EANs 400-440).
            return not (length == 13 and _ean13_valid(digits))
    return False


def is_card(digits: str) -> bool:
    return MIN_DIGITS <= len(digits) <= MAX_DIGITS and issuer_fits(digits) and luhn_valid(digits)


_CODE_BEFORE = re.compile(r"[A-Za-z][-_]\Z")
_CODE_AFTER = re.compile(r"[-_][A-Za-z]")


def _in_code(text: str, start: int, end: int) -> bool:
    """Digits joined to letters by a dash or underscore are part of a product code or an id
    ("SKU-4000056655665556-RED"); digits glued to letters still count (a cut, a paste)."""
    return bool(_CODE_BEFORE.search(text, max(0, start - 2), start) or _CODE_AFTER.match(text, end))


def card_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each card number in ``text``.

    In a run of grouped digits the longest window of consecutive groups that is a card wins, so that
    a card followed by a year or preceded by a count is still found.
    """
    spans: list[tuple[int, int]] = []
    if _RUN.search(text) is None:
        return spans
    for match in _CANDIDATE.finditer(text):
        run = match.group()
        pending = [[(m.start(), m.end()) for m in _GROUP.finditer(run)]]
        while pending:  # the groups left and right of a card may hold another one
            groups = pending.pop()
            found = _first_card(run, groups)
            if found is not None:
                start, end = match.start() + found[0], match.start() + found[1]
                if not _in_code(text, start, end):
                    spans.append((start, end))
                pending.append([g for g in groups if g[1] <= found[0]])
                pending.append([g for g in groups if g[0] >= found[1]])
    return spans


def _first_card(run: str, groups: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The longest window of consecutive groups (of 3+ digits) holding a card; at most 19 digits, so
    linear in the number of groups."""
    best: tuple[int, int] | None = None
    best_length = 0
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            start, end = groups[last]
            # Cards are printed in groups of 3+ digits ("4-6-5", "4-4-4-4"); only a last group after a
            # first one of 4 may be shorter ("3600 6666 3333 44").
            if end - start < 3 and (last == first or groups[first][1] - groups[first][0] < 4):
                break
            digits += run[start:end]
            if len(digits) > MAX_DIGITS:
                break
            if len(digits) > best_length and is_card(digits):
                best, best_length = (groups[first][0], groups[last][1]), len(digits)
            if end - start < 3:
                break
    return best
