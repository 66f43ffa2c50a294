"""De-duplication: match keys per record and a union-find over them.

Rules (README, "merge"):

- People are the same when a *strong* key matches: any e-mail address (Work
  or Personal; addresses are already trimmed and lower-cased) or the
  canonical LinkedIn Profile key (``tasks.merge.cleaning.linkedin_key``). The
  *weak* key Full Name (case/whitespace-insensitive) + Company Domain is used
  only when a record has both and the domain came from the input, not from
  the record's own e-mail address (else two people named Robert Hall at
  company.com with different addresses would merge: relaticle_people_3453
  has 196 such pairs). The weak key never links two records that both have
  a strong key: it links a record without one to the weak key's first-seen
  record, and at most one record with a strong key joins that group through
  it (so two Robert Halls with different addresses at one company stay two,
  even via a third Robert Hall without an address). Two people at one
  company with neither e-mail nor LinkedIn and different names stay two
  records.
- Companies are the same when the Company Domain (a real host name) or the
  canonical Company LinkedIn key matches; the Company Name (case/whitespace-
  insensitive) is a key only for a record that has neither, so it links only
  records that both lack domain and LinkedIn.
- Matching is transitive across all files (A~B by e-mail, B~C by LinkedIn:
  one record). The union-find keeps the first-seen row as each group's root,
  which gives the stable first-seen output order.
"""

from __future__ import annotations

from tasks.merge.cleaning import is_domain, linkedin_key, text_key
from tasks.merge.records import SLOT_SEP, VALUE_SEP, Layout

WEAK = "n"  # prefix of the people weak key (Full Name + Company Domain)


class KeyMatcher:
    """Computes the match keys of a packed record (``tasks.merge.records``).

    ``keys(packed) -> list[str]``; keys carry a one-letter prefix per kind so
    that an e-mail can never equal a domain. A person's weak key (prefix
    ``WEAK``) comes last; every other person key is strong.
    """

    def __init__(self, layout: Layout):
        slot = layout.slot
        self._people = layout.table_type == "people"
        if self._people:
            self._emails = (slot("Work Email"), slot("Personal Email"))
            self._linkedin = slot("LinkedIn Profile")
            self._name = slot("Full Name")
        else:
            self._emails = ()
            self._linkedin = slot("Company LinkedIn")
            self._name = slot("Company Name")
        self._domain = slot("Company Domain")
        self._last = max(*self._emails, self._linkedin, self._name, self._domain)

    def keys(self, packed: str, domain_derived: bool = False) -> list[str]:
        """Match keys of one packed record (possibly none); ``domain_derived``:
        its Company Domain was derived from an e-mail (no weak key then)."""
        parts = packed.split(SLOT_SEP, self._last + 1)
        parts += [""] * (self._last + 1 - len(parts))
        return self.keys_of(parts, domain_derived)

    def keys_of(self, values: list[str], domain_derived: bool = False) -> list[str]:
        """Like ``keys`` for a record's slot list (``RecordBuilder.values``)."""
        keys: list[str] = []
        for pos in self._emails:
            addresses = values[pos]
            if addresses:
                if VALUE_SEP in addresses:
                    keys.extend(["e" + address for address in addresses.split(VALUE_SEP)])
                else:
                    keys.append("e" + addresses)
        urls = values[self._linkedin]
        if urls:
            for url in urls.split(VALUE_SEP) if VALUE_SEP in urls else (urls,):
                key = linkedin_key(url)
                if key:
                    keys.append("l" + key)
        name, domain = values[self._name], values[self._domain]
        if self._people:
            if name and domain and not domain_derived:
                for d in domain.split(VALUE_SEP) if VALUE_SEP in domain else (domain,):
                    if is_domain(d):
                        keys.append(WEAK + text_key(name.split(VALUE_SEP)[0]) + "\x00" + d)
                        break
        else:
            if domain:
                keys.extend("d" + d for d in domain.split(VALUE_SEP) if is_domain(d))
            if not keys and name:
                keys.append("c" + text_key(name.split(VALUE_SEP)[0]))
        return keys


_REASONS = {"e": "same e-mail address", "l": "same LinkedIn URL", WEAK: "same full name and company domain",
            "d": "same company domain", "c": "same company name"}


def shared_key_reasons(row_keys: list[list[str]]) -> list[str]:
    """Why rows were matched: one line per key that two or more of them carry,
    first-seen order, e.g. ``["same e-mail address: ann@x.com"]``."""
    counts: dict[str, int] = {}
    for keys in row_keys:
        for key in dict.fromkeys(keys):
            counts[key] = counts.get(key, 0) + 1
    return [f"{_REASONS[key[0]]}: {key[1:].replace(chr(0), ' @ ')}" for key, n in counts.items() if n > 1]


class UnionFind:
    """Groups row numbers (0, 1, 2, ... in reading order) that share a key.

    ``add(keys) -> row number``; ``find(row) -> root`` (the group's smallest,
    i.e. first-seen, row). A weak key (prefix ``WEAK``) links a row without
    other keys to the key's first-seen row, and links at most one row with
    other (strong) keys to it, so it never joins two rows with strong keys.
    Memory: one int per row plus one dict entry per distinct key.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self._owner: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.parent)

    def add(self, keys: list[str]) -> int:
        """Append a row with these keys, joining it to every row sharing one."""
        row = len(self.parent)
        self.parent.append(row)
        owner = self._owner
        for key in keys:
            if key[0] == WEAK:
                # owner: first-seen row; stored as ~row once a row with strong keys used the key
                strong = len(keys) > 1
                other = owner.get(key)
                if other is None:
                    owner[key] = ~row if strong else row
                elif other >= 0:
                    self.union(row, other)
                    if strong:
                        owner[key] = ~other
                elif not strong:
                    self.union(row, ~other)
                continue
            other = owner.setdefault(key, row)
            if other != row:
                self.union(row, other)
        return row

    def find(self, row: int) -> int:
        """Root (first-seen row) of ``row``'s group, with path halving."""
        parent = self.parent
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    def union(self, a: int, b: int) -> None:
        """Join the groups of rows ``a`` and ``b``; the smaller root wins."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb

    def groups(self) -> dict[int, list[int]]:
        """``{root: [rows in order]}`` for groups of two or more rows; every
        other row is its own record. Also compresses every path fully."""
        members: dict[int, list[int]] = {}
        parent = self.parent
        for row in range(len(parent)):
            # parent[row] <= row always, so in reading order parent[parent[row]] is already a root
            root = parent[parent[row]]
            parent[row] = root
            if root != row:
                bucket = members.get(root)
                if bucket is None:
                    members[root] = [root, row]
                else:
                    bucket.append(row)
        return members


_STRONG_FIELDS = {"people": ("Work Email", "Personal Email", "LinkedIn Profile"),
                  "company": ("Company Domain", "Company LinkedIn")}


def lead_identities(record: dict[str, str], table_type: str) -> list[str]:
    """The strong keys of one merged-CSV row ({header: text}), as the merge's
    de-duplication uses them: people by every e-mail address (numbered
    columns included) and LinkedIn profile key; companies by every company
    domain and LinkedIn company key. Prefixed like ``KeyMatcher`` keys, so an
    e-mail never equals a domain. [] when the row has none."""
    keys = []
    fields = _STRONG_FIELDS[table_type]
    for header, value in record.items():
        value = value.strip()
        base = header.rstrip("0123456789").rstrip() if header[-1:].isdigit() else header
        if not value or base not in fields:
            continue
        if base.endswith("Email"):
            keys.append("e" + value.lower())
        elif base.endswith("LinkedIn") or base == "LinkedIn Profile":
            if key := linkedin_key(value):
                keys.append("l" + key)
        elif is_domain(value.lower()):
            keys.append("d" + value.lower())
    return keys
