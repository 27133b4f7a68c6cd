"""Units: groups of words that are kept or dropped together (the one definition of a unit).

A unit is a run of words joined by cheap rules (``CompressionConfig.units``), used at inference
(``selection``) and, through ``labeling.rule_unit_spans``, by the teachers, so a label's unit is
the unit the compressor later keeps or drops:

- ``attached``: no space between ("3.5", "e-mail", "U.S.").
- ``capitalised``: names: runs of capitalised words, joined through lower-case connectors when
  both sides are capitalised ("Queen Saleha of Brunei", "Ludwig van Beethoven"); a capitalised
  function word ("In", "The") does not start a name.
- ``phrase`` (opt-in, not in the defaults): phrase-like runs of content words and the
  connectors between them ("steam engine indicator", "speed of light"); numbers stay apart.
- ``number``: quantities and dates, never a number and an ordinary word ("1962 and" stays two
  units, since a mean score would sink the number): a number and its unit/scale words ("4.2
  million dollars", "5 km", "30 percent"), month + day/year and day + month ("April 11", "11
  April", "April 2024"), a label and its number ("Route 9", "Windows 10"), and, in scripts
  written without spaces, a number and the character touching it ("2023年").

The word lists are matched vectorised: each word's lower-cased ASCII letters are packed into an
integer key (``_word_keys``), so no Python loop runs over the words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mooscomp.alignment import Words, _codepoints

_ASCII_ALNUM = np.zeros(128, dtype=bool)
for _c in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _ASCII_ALNUM[ord(_c)] = True
_ASCII_UPPER = np.zeros(128, dtype=bool)
_ASCII_UPPER[ord("A") : ord("Z") + 1] = True
_ASCII_DIGIT = np.zeros(128, dtype=bool)
_ASCII_DIGIT[ord("0") : ord("9") + 1] = True
# Symbols that bind to an adjacent number ("$3", "5%").
_NUMBER_SYMBOLS = np.asarray([ord(c) for c in "$%€£¥"], dtype=np.uint32)
# Non-ASCII punctuation blocks: general punctuation, CJK symbols, full-width ASCII punctuation.
_PUNCT_RANGES = ((0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFF0F), (0xFE30, 0xFE4F), (0x00A0, 0x00BF))

# Words that follow a number in a quantity (units, scales, currencies, durations).
UNIT_WORDS = frozenset("""
percent pct per cent km m cm mm nm kg g mg lb lbs oz mph kph kmh ft mi miles mile meters metres
meter metre feet foot inches yards acres hectares ha litres liters ml gallons tons tonnes
degrees kelvin volts watts kw mw gw kwh mwh hz khz mhz ghz kb mb gb tb bytes bits
million millions billion billions trillion thousand thousands hundred hundreds dozen bn mn k
dollars dollar usd euros euro eur pounds pound gbp yen yuan rupees cents pence
years year months weeks week days day hours hour hrs minutes minute mins seconds sec secs ms
am pm bc ad bce ce
""".split())  # fmt: skip
MONTHS = frozenset("""
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec
""".split())  # fmt: skip
# Lower-case words that stay inside a name between two capitalised words.
CONNECTORS = frozenset("of the de von van der den bin bint ibn al el da di la le du des del".split())
# Capitalised function words: they start sentences, not names, labels or connector chains.
FUNCTION_WORDS = frozenset("""
a an the in on at by for from to of and or but nor with without since until till after before
during about around over under between than as if when whenever while where what who whom which
that this these those there then is was are were be been it he she we they i you his her its our
their my your not no so all some every each per via only also after until nearly almost
yet because although though however thus hence page
""".split())  # fmt: skip
_KEY_LEN = 12  # letters packed per key (5 bits each; longer words match nothing)


def _key(word: str) -> int:
    return sum((ord(c) - 96) << (5 * k) for k, c in enumerate(word))


def _keys(words: Iterable[str]) -> np.ndarray:
    """Sorted keys of a word list (only words of at most ``_KEY_LEN`` ASCII letters can match)."""
    return np.asarray(sorted({_key(w) for w in words if len(w) <= _KEY_LEN and w.isalpha()}), dtype=np.int64)


_UNIT_KEYS, _MONTH_KEYS = _keys(UNIT_WORDS), _keys(MONTHS)
_CONNECTOR_KEYS, _FUNCTION_KEYS = _keys(CONNECTORS), _keys(FUNCTION_WORDS)


def _member(keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(n,) bool: ``keys`` found in the sorted ``table`` (binary search; np.isin loops over a small table)."""
    pos = np.minimum(np.searchsorted(table, keys), table.shape[0] - 1)
    return table[pos] == keys


def _word_keys(words: Words, cps: np.ndarray) -> np.ndarray:
    """(n_words,) int64 key of each word's lower-cased ASCII letters; -1 for any other word."""
    lens = words.ends - words.starts
    keys = np.where((lens >= 1) & (lens <= _KEY_LEN), 0, -1).astype(np.int64)
    for k in range(_KEY_LEN):
        live = np.flatnonzero((keys >= 0) & (lens > k))
        if live.size == 0:
            break
        c = cps[words.starts[live] + k].astype(np.int64) | 0x20  # ASCII lower-case
        ok = (c >= ord("a")) & (c <= ord("z"))
        keys[live[~ok]] = -1
        keys[live[ok]] += (c[ok] - 96) << (5 * k)
    return keys


def word_classes(words: Words, *, cps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_words,) bool arrays: alphanumeric, starts upper-case, starts with a digit (``cps``: the
    text's code points when the caller has them)."""
    n = len(words)
    if n == 0:
        z = np.zeros(0, dtype=bool)
        return z, z.copy(), z.copy()
    cps = (_codepoints(words.text) if cps is None else cps)[words.starts]
    multi = (words.ends - words.starts) > 1
    ascii_ = cps < 128
    a = np.minimum(cps, 127)
    non_ascii_alnum = ~ascii_
    for lo, hi in _PUNCT_RANGES:
        non_ascii_alnum &= ~((cps >= lo) & (cps <= hi))
    alnum = multi | np.where(ascii_, _ASCII_ALNUM[a], non_ascii_alnum)
    upper = np.where(ascii_, _ASCII_UPPER[a], False)
    if (~ascii_).any():  # rare: non-ASCII initials need Python's Unicode tables
        idx = np.flatnonzero(~ascii_)
        t = words.text
        upper[idx] = [t[s].isupper() for s in words.starts[idx].tolist()]
    digit = np.where(ascii_, _ASCII_DIGIT[a], False)
    return alnum, upper, digit


def _prev(a: np.ndarray) -> np.ndarray:
    return np.concatenate([[False], a[:-1]])


def _next(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[1:], [False]])


def _connector_joins(upper: np.ndarray, conn: np.ndarray, func: np.ndarray, gap: np.ndarray,
                     hyphen: np.ndarray) -> np.ndarray:
    """Joins through runs of at most 3 connectors between a capitalised (non-function) word and a
    capitalised word ("Queen Saleha of Brunei", "Rogier van der Weyden", "Bashar al-Assad")."""
    n = upper.shape[0]
    idx = np.arange(n)
    prev_nc = np.maximum.accumulate(np.where(~conn, idx, -1))  # last non-connector at or before i
    next_nc = np.minimum.accumulate(np.where(~conn, idx, n)[::-1])[::-1]  # first at or after i
    bad = np.concatenate([[0], np.cumsum(~gap)])  # bad[j] = gaps that break a unit among words < j
    c = np.flatnonzero(conn)
    left, right = prev_nc[c], next_nc[c]
    ok = (left >= 0) & (right < n) & (right - left - 1 <= 3)
    c, left, right = c[ok], left[ok], right[ok]
    # "al-Assad": the connector's right side is a hyphen touching a capitalised word
    hyph = hyphen[right] & (right + 1 < n)
    far = np.where(hyph, right + 1, right)
    far_c = np.minimum(far, n - 1)
    ok = upper[left] & ~func[left] & upper[far_c] & (bad[right + 1] - bad[left + 1] == 0)
    joins = np.zeros(n, dtype=bool)
    joins[c[ok]] = True
    joins[right[ok]] = True
    joins[far_c[ok & hyph]] = True
    return joins


def _number_joins(words: Words, alnum: np.ndarray, upper: np.ndarray, digit: np.ndarray,
                  keys: np.ndarray, func: np.ndarray, gap: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """Quantities, dates and labelled numbers; never a number and an ordinary following word."""
    lens = words.ends - words.starts
    unit, month = _member(keys, _UNIT_KEYS), _member(keys, _MONTH_KEYS)
    prev_digit = _prev(digit)
    touching = np.ones(len(words), dtype=bool)  # no whitespace at all before the word ("2023年")
    touching[1:] = words.starts[1:] == words.ends[:-1]
    # a number, then its unit words ("4.2 million dollars"), symbol ("30 %") or touching character
    quantity = prev_digit & (sym | (alnum & ~digit & touching) | unit)
    for _ in range(2):  # chains of up to three unit words
        quantity |= unit & _prev(quantity & unit)
    day = digit & (lens <= 2)
    dates = (_prev(month & upper) & (day | (digit & (lens == 4)))) | (_prev(day) & month & upper)
    label = _prev(upper & alnum & ~func & ~digit) & digit  # "Route 9", "Windows 10"
    return (quantity | dates | label) & gap


def _phrase_joins(alnum: np.ndarray, upper: np.ndarray, digit: np.ndarray, keys: np.ndarray,
                  func: np.ndarray, spaced: np.ndarray) -> np.ndarray:
    """Phrase-like runs: adjacent content words (no function word, no number) and a lower-case
    connector between two of them ("steam engine indicator", "speed of light"), so a multi-word
    answer is kept or dropped whole. ``func``: (n_words,) function words; ``spaced``: (n_words,)
    a space and no line break before."""
    content = alnum & ~func & ~digit
    joins = content & _prev(content) & spaced
    conn = _member(keys, _CONNECTOR_KEYS) & ~upper & spaced & _prev(content) & _next(content & spaced)
    return joins | conn | (_prev(conn) & content)


def unit_ids(words: Words, rules: Sequence[str]) -> np.ndarray:
    """(n_words,) non-decreasing unit ids; the words of one unit are kept or dropped together."""
    n = len(words)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    joins = np.zeros(n, dtype=bool)  # word i joins the unit of word i-1
    if rules:
        cps = _codepoints(words.text)
        first_cp = cps[words.starts]
        alnum, upper, digit = word_classes(words, cps=cps)
        space = words.space_before()
        gap = ~words.newline_before()  # a join may cross spaces but never a line break
        sym = np.isin(first_cp, _NUMBER_SYMBOLS) & ((words.ends - words.starts) == 1)
        if "attached" in rules:
            # Inside a run of words with no whitespace between them, join from the first to the
            # last alphanumeric word ("e-mail", "3.5", "U.S"), leaving outer punctuation free.
            core = alnum | sym
            run = np.cumsum(space) - 1  # run id per word
            idx = np.arange(n)
            first = np.full(run[-1] + 1, n, dtype=np.int64)
            last = np.full(run[-1] + 1, -1, dtype=np.int64)
            np.minimum.at(first, run[core], idx[core])
            np.maximum.at(last, run[core], idx[core])
            joins |= ~space & (idx > first[run]) & (idx <= last[run])
        if "capitalised" in rules or "number" in rules or "phrase" in rules:
            keys = _word_keys(words, cps)
            func = _member(keys, _FUNCTION_KEYS)
        if "capitalised" in rules:
            name = upper & alnum & ~digit
            joins |= name & _prev(name & ~func) & space & gap
            conn = _member(keys, _CONNECTOR_KEYS) & ~upper & space
            hyphen = np.zeros(n, dtype=bool)
            hyphen[:-1] = (first_cp[:-1] == ord("-")) & ~space[:-1] & ~space[1:]
            joins |= _connector_joins(name, conn, func, gap & (space | hyphen | _prev(hyphen)), hyphen)
        if "number" in rules:
            joins |= _number_joins(words, alnum, upper, digit, keys, func, gap, sym)
        if "phrase" in rules:
            joins |= _phrase_joins(alnum, upper, digit, keys, func, space & gap)
        joins[0] = False
    return np.cumsum(~joins) - 1


def pool_units(values: np.ndarray, units: np.ndarray, n_units: int, how: str) -> np.ndarray:
    """(n_units,) mean or max of per-word ``values`` within each unit."""
    if how == "max":
        out = np.full(n_units, -np.inf, dtype=np.float64)
        np.maximum.at(out, units, values)
        return out
    sums = np.bincount(units, weights=values, minlength=n_units)
    cnt = np.bincount(units, minlength=n_units)
    return sums / np.maximum(cnt, 1)
