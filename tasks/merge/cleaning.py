"""Value normalisers for the merge: e-mails, domains, LinkedIn URLs, names,
phones, null-like tokens and spreadsheet-formula neutralisation.

Pure functions on ``str``; none of them raises on any text (property-tested),
and the cleaning ones are idempotent. The rules (also in README, "merge"):

- Null-like tokens (``NULL_TOKENS``, case-insensitive) count as empty only in
  e-mail, phone, domain and LinkedIn fields; anywhere else text is kept.
- E-mails: trimmed, lower-cased, split on ``, ; : |`` and whitespace, with
  ``Name <a@x.com>`` reduced to the address (in a cell written that way,
  words without ``@`` are display names and are dropped: names have their
  own columns) and ``mailto:`` removed; syntax-checked;
  classified personal (``tasks/personal_email_domains.yaml``) or work.
- Domains: scheme, user info, ``www.``, path, query, fragment and port
  removed, lower-cased. A value that is not a host name after that (spaces,
  no dot, ...) is kept exactly as written. Companies are matched by the
  registrable domain (``registrable_domain``: Public Suffix List).
- LinkedIn: output form ``https://www.linkedin.com/<path>`` (path case as
  written, no query, fragment or trailing slash); comparison key
  ``linkedin.com/<path>`` percent-decoded and lower-cased.
- Names: the source's case is always kept (no title-casing).
- Phones: kept as written; ``phone_key`` compares them by E.164 (region of
  numbers without a country code: setting ``phone_region``), else by digits.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import phonenumbers
import yaml

NULL_TOKENS: frozenset[str] = frozenset(
    {"n/a", "na", "#n/a", "null", "none", "nil", "-", "--", ".", "?"}
)
"""Lower-cased cell texts that mean "no value" in e-mail, phone, domain and
LinkedIn fields (csvkit's blanks.csv shows NA, N/A, NONE, NULL, ".")."""


def is_null(value: str) -> bool:
    """True for an empty/whitespace cell or a null-like token (``NULL_TOKENS``)."""
    v = value.strip()
    return not v or v.lower() in NULL_TOKENS


# --- e-mail ---------------------------------------------------------------

_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{}~-]+"
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
EMAIL_RE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[a-z0-9-]+)")
"""A pragmatic address syntax (RFC 5322 dot-atom local part, a dotted host
with an alphabetic top-level label); applied to lower-cased text."""

_EMAIL_SEPARATORS = re.compile(r"[,;:|\s]+")
_ANGLE = re.compile(r"<([^<>]*)>")
_TOKEN_TRIM = "\"'()[]{}<>"


def split_emails(cell: str) -> tuple[list[str], list[str]]:
    """Split one e-mail cell into ``(valid addresses, invalid tokens)``.

    Valid addresses are lower-cased, distinct, in cell order. Invalid tokens
    are kept as written (trimmed) so that the caller can keep them (they go
    to the "Invalid Email" column). Null-like tokens give ``([], [])``.
    """
    text = cell.strip()
    if not text or text.lower() in NULL_TOKENS:
        return [], []
    low = text.lower()
    if EMAIL_RE.fullmatch(low):
        return [low], []
    angle = "<" in text and _ANGLE.search(text) is not None
    if angle:  # "Name <a@x.com>, b@y.com": words outside <...> without "@" are display names
        text = " ".join(_ANGLE.findall(text)) + " " + _ANGLE.sub(" ", text)
    valid: list[str] = []
    invalid: list[str] = []
    for token in _EMAIL_SEPARATORS.split(text):
        token = token.strip(_TOKEN_TRIM)
        if not token or token.lower() in NULL_TOKENS or token.lower() == "mailto":
            continue
        if angle and "@" not in token:
            continue
        address = token.lower()
        if EMAIL_RE.fullmatch(address):
            if address not in valid:
                valid.append(address)
        elif token not in invalid:
            invalid.append(token)
    return valid, invalid


def _load_personal_domains() -> tuple[frozenset[str], frozenset[str]]:
    data = yaml.safe_load((Path(__file__).with_name("personal_email_domains.yaml")).read_text("utf-8"))
    return frozenset(data["domains"]), frozenset(data["brands"])


PERSONAL_DOMAINS, PERSONAL_BRANDS = _load_personal_domains()


@lru_cache(maxsize=1 << 18)
def is_personal_domain(domain: str) -> bool:
    """True when ``domain`` (lower-case) belongs to a free/consumer mail provider.

    Exact matches come from ``PERSONAL_DOMAINS``; a brand (``PERSONAL_BRANDS``)
    matches ``brand.<tld>``, ``brand.co.<cc>`` and ``brand.com.<cc>``.
    """
    if domain in PERSONAL_DOMAINS:
        return True
    labels = domain.split(".")
    if len(labels) == 2:
        return labels[0] in PERSONAL_BRANDS
    return len(labels) == 3 and labels[1] in ("co", "com") and labels[0] in PERSONAL_BRANDS


def email_domain(address: str) -> str:
    """The host part of a valid address (text after the last ``@``)."""
    return address.rpartition("@")[2]


def is_personal_email(address: str) -> bool:
    """True when a valid, lower-cased address is on a personal mail provider."""
    return is_personal_domain(email_domain(address))


# --- domains --------------------------------------------------------------

_DOMAIN_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]+)")


def is_domain(value: str) -> bool:
    """True when ``value`` is a lower-case dotted host name (what ``clean_domain`` yields)."""
    return _DOMAIN_RE.fullmatch(value) is not None


@lru_cache(maxsize=1 << 18)
def clean_domain(value: str) -> str:
    """Reduce a website/domain cell to its host name (see module rules).

    ``"https://www.Example.com:8080/a?b#c"`` -> ``"example.com"``. Null-like
    tokens give ``""``; text that is not a host name is returned trimmed but
    otherwise as written.
    """
    text = value.strip()
    if not text or text.lower() in NULL_TOKENS:
        return ""
    host = text.lower()
    if is_domain(host) and not host.startswith("www."):
        return host
    if "://" in host:
        host = host.split("://", 1)[1]
    elif host.startswith("//"):
        host = host[2:]
    for mark in "/?#":
        host = host.split(mark, 1)[0]
    host = host.rpartition("@")[2]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        host = name
    host = host.strip(".")
    while host.startswith("www."):
        host = host[4:]
    return host if is_domain(host) else text


@lru_cache(maxsize=1)
def _public_suffix_list():
    from publicsuffixlist import PublicSuffixList  # loads its bundled list: no network

    return PublicSuffixList()


@lru_cache(maxsize=1 << 18)
def registrable_domain(host: str) -> str:
    """The registrable domain of a host name (Public Suffix List, ICANN and
    private sections, as bundled with ``publicsuffixlist``): ``app.acme.com``
    and ``acme.com`` give ``acme.com``, ``shop.acme.co.uk`` gives
    ``acme.co.uk``, while ``shop-a.myshopify.com`` stays itself (myshopify.com
    is a platform's suffix). A host that is itself a public suffix, or not a
    host name, is returned unchanged."""
    if not is_domain(host):
        return host
    return _public_suffix_list().privatesuffix(host) or host


# --- LinkedIn -------------------------------------------------------------

_LINKEDIN_RE = re.compile(
    r"(?:https?:)?(?://)?(?:[a-z0-9-]+\.)?linkedin\.com(?::\d+)?(/[^?#]*)?(?:[?#].*)?", re.I | re.S
)


_CLEAN_LINKEDIN = "https://www.linkedin.com/"


def _linkedin_path(value: str) -> str | None:
    m = _LINKEDIN_RE.fullmatch(value.strip())
    if m is None:
        return None
    path = (m.group(1) or "").rstrip("/")
    return path or None


def clean_linkedin(value: str) -> str:
    """A LinkedIn URL in output form ``https://www.linkedin.com/<path>``.

    Locale/``www.``/mobile subdomains, query, fragment and trailing slashes go;
    the path keeps its case. Null-like tokens give ``""``; anything that is not
    a linkedin.com URL with a path is returned trimmed, as written.
    """
    text = value.strip()
    if not text or text.lower() in NULL_TOKENS:
        return ""
    path = _linkedin_path(text)
    return text if path is None else _CLEAN_LINKEDIN[:-1] + path


def linkedin_key(value: str) -> str | None:
    """Comparison key ``linkedin.com/<path>`` (percent-decoded, lower-case), or
    None when ``value`` is not a linkedin.com URL with a path."""
    if value.startswith(_CLEAN_LINKEDIN) and "?" not in value and "#" not in value:
        path = value[len(_CLEAN_LINKEDIN) - 1:].rstrip("/")  # fast path: clean_linkedin's output form
    else:
        path = _linkedin_path(value)
    if not path:
        return None
    if "%" in path:
        path = unquote(path)
    return "linkedin.com" + path.lower().rstrip("/")


# --- names ----------------------------------------------------------------

NAME_PREFIXES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir"})
NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "md", "phd", "dds", "dvm", "esq"})


def split_full_name(full: str) -> tuple[str, str]:
    """``(first, last)`` from a full name, case kept.

    Honorific prefixes (Mr., Dr., ...) and suffixes (Jr., PhD, ...) stay in
    Full Name only. ``"Last, First"`` (one comma) gives ``("First", "Last")``;
    otherwise the first word is the first name and the rest the last name
    (``"Mary Ann Smith"`` -> ``("Mary", "Ann Smith")``).
    """
    words = [w for w in full.split() if w.strip(".,")]  # punctuation alone is no name
    while len(words) > 1 and words[-1].lower().strip(".,") in NAME_SUFFIXES:
        words.pop()
    while len(words) > 1 and words[0].lower().strip(".,") in NAME_PREFIXES:
        words.pop(0)
    text = " ".join(words).strip(", ")
    last, comma, first = text.partition(",")
    if comma and "," not in first and first.strip() and last.strip():
        return first.strip(), last.strip()
    words = text.split()
    if not words:
        return "", ""
    return words[0].rstrip(","), " ".join(words[1:])


def build_full_name(first: str, last: str) -> str:
    """``"first last"`` from the non-empty parts, case kept."""
    return " ".join(part for part in (first.strip(), last.strip()) if part)


# --- comparison keys --------------------------------------------------------


def text_key(value: str) -> str:
    """Comparison key for free text: case-folded, whitespace collapsed."""
    return " ".join(value.split()).casefold()


@lru_cache(maxsize=1)
def phone_region() -> str:
    """Region assumed for phones written without a country code (ISO 3166
    alpha-2, setting ``CSV_MERGER_PHONE_REGION``, default US)."""
    from csv_merger.settings import get_settings  # base layer; read once per process

    return get_settings().phone_region.upper()


@lru_cache(maxsize=1 << 16)
def e164(value: str, region: str | None = None) -> str | None:
    """The E.164 form (``"+14155550134"``) of a phone cell, or None when it is
    not a possible phone number (libphonenumber via ``phonenumbers``: right
    length for its country). ``region``: the country of numbers written
    without ``+``/country code (default ``phone_region()``). Extensions are
    dropped from the key."""
    text = value.strip()
    if not 7 <= sum(ch.isdigit() for ch in text) <= 20:
        return None
    try:
        number = phonenumbers.parse(text, region or phone_region())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_PHONE_TEXT = re.compile(r"\+?[\d\s().\-/]+(?:\s*(?:x|ext\.?|#)\s*\d{1,6})?", re.IGNORECASE)
_NOT_PHONE_TEXT = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|[+-]?\d+[.,]\d+")
"""Dates (2024-03-01, 01/03/2024, 1.3.24) and decimal numbers: possible
phone numbers by length in some regions, but not written as phones."""


def is_phone_number(value: str) -> bool:
    """True for a cell written as a phone number: digits with a leading ``+``
    or separators (``(415) 555-0134``, ``+44 20 7946 0958``) that form a
    possible number (``e164``). A bare run of digits (an id, a zip), a date
    or a decimal number is not."""
    text = value.strip()
    if not _PHONE_TEXT.fullmatch(text) or (text[:1] != "+" and text.isdigit()) or _NOT_PHONE_TEXT.fullmatch(text):
        return False
    return e164(text) is not None


def phone_key(value: str) -> str:
    """Comparison key for a phone: the digits of its E.164 form when it is a
    possible number (``"+1 415 555 0134"``, ``"(415) 555-0134"`` and
    ``"4155550134"`` all give ``"14155550134"`` with region US), else its
    digits, else ``text_key``. The value
    itself is never rewritten."""
    key = e164(value)
    if key is not None:
        return key[1:]  # without "+": equal to the digits of a number e164 cannot read
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits or text_key(value)


# --- output safety ----------------------------------------------------------

FORMULA_PREFIXES = ("=", "+", "-", "@")
"""First characters that make a spreadsheet read a cell as a formula (OWASP)."""
_NUMBER_CHARS = r"[\d ().\-/+x]"
_NUMERIC_LIKE = re.compile(rf"[+\-]{_NUMBER_CHARS}*")
FORMULA_CELL = re.compile(rf"[\x1e\x1f](?:[=@]|[+\-](?!{_NUMBER_CHARS}*(?:[\x1e\x1f]|\Z)))")
"""Finds, in cells each preceded by ``\x1f`` or ``\x1e``, a cell that
``neutralise_formula`` changes."""


def neutralise_formula(cell: str) -> str:
    """Prefix ``'`` to a cell that a spreadsheet would run as a formula.

    Cells starting with ``= + - @`` (OWASP "CSV injection") get the prefix,
    except number-like text (``+``/``-`` then digits, spaces, ``( ) . - / + x``, such as
    ``+1 (555) 010-2030`` or ``-12.5``), which cannot call a function.
    Idempotent: a neutralised cell starts with ``'`` and is left alone.
    """
    if cell[:1] in FORMULA_PREFIXES and _NUMERIC_LIKE.fullmatch(cell) is None:
        return "'" + cell
    return cell
