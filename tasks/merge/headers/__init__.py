"""Header mapping: which canonical field (``csv_merger.schema``) each input column feeds.

``map_headers`` decides once per file, column by column, in this order:

1. ``override``/``ignored``: the user's mapping (``--mapping``), matched on the
   exact header first, then on the normalised header; "ignore" drops the
   column, "keep" keeps it under its own header, a field name maps it.
2. ``synonym``: the normalised header equals a normalised synonym of
   ``synonyms.yaml`` or of ``languages/<code>.yaml`` (Spanish, German,
   French, Portuguese, Italian, Dutch) beside this module (whole names, never substrings: "age" does not match
   "Homepage"). A column number is dropped when only the unnumbered form is
   listed ("Email 2" -> "Email"). Headers listed under ``not_fields`` (e.g.
   "Source", "Email Status") are known to be something else: unmapped.
3. ``fuzzy``: a typo of a listed header (``FIRSNAME``, ``Emial``), see
   ``_within_typo_budget``. A typo as close to two different fields, or closer
   to a ``not_fields`` header, stays unmapped.
4. ``content`` by the file's kind (``kinds.py``, ``file_kinds`` in
   synonyms.yaml): in a Google Maps place list (headers such as placeId,
   totalScore, google_id) ``title``/``name`` is the Company Name, ``site``
   the Company Domain and ``url`` (the map link) stays unmapped; in a
   Crunchbase list ``name`` is the Company Name.
5. ``content``, from the ``sample`` rows (null-like cells, ``tasks.merge.cleaning.
   is_null``, are ignored; "share" = share of the other sampled cells):
   - a column not mapped to an e-mail field whose cells are e-mail addresses
     (share >= 0.8), e.g. "PHONE1" full of addresses, is mapped to the generic
     e-mail field (Work Email / Company Email), with a warning;
   - an e-mail column with no address at all: holding verification statuses
     ("verified", "guessed") it is unmapped; holding phone numbers
     (share >= 0.8) it is mapped to the phone field; otherwise it stays and a
     warning says it holds no address (e.g. only "N/A");
   - a phone column holding a few addresses (below the share) is reported;
   - a LinkedIn or Company Domain column of the wrong kind
     (``linkedin.com/company/...`` URLs under "LinkedIn" in a people list or
     under "companyUrl", ``/in/...`` profiles under "Company LinkedIn") moves
     to the other LinkedIn field; people's profiles in a company list are
     unmapped;
   - an unmapped column (not under a ``not_fields`` header) whose values are
     LinkedIn profiles, LinkedIn company pages, phone numbers written as such
     (``tasks.merge.cleaning.is_phone_number``: a bare run of digits is not
     one) or, in a company list, web addresses (not social or map links),
     share >= 0.8, is mapped to that field; the note and the warning give
     the share;
   - an ambiguous "Title"/"Position" header is a job title unless the file has
     a separate job-title column (then it is the courtesy title, as in
     Outlook), or its values are courtesy titles (Mr, Ms), or fewer than 30% of
     them contain a job-title word (atomic-crm's Faker "title" holds
     "Ubiquitous", "Cutting-edge"): unmapped.
   Columns under ``not_fields`` headers and overridden columns are left alone.

Every other column is ``unmapped`` (``field`` None): the merge keeps it under
its original header. Nothing is dropped except by an explicit "ignore".
"""

from tasks.merge.headers.mapper import map_headers
from tasks.merge.headers.model import ColumnMapping
from tasks.merge.headers.overrides import IGNORE, KEEP, load_mapping_file
from tasks.merge.headers.synonyms import SYNONYMS_PATH, normalise_header, synonym_counts

__all__ = ["IGNORE", "KEEP", "SYNONYMS_PATH", "ColumnMapping", "load_mapping_file", "map_headers",
           "normalise_header", "synonym_counts"]
