"""The quarantine's copy of a rejected record: useful for debugging, free of raw user ids.

A record that parsed is stored as its fields in JSON with the user id replaced by its pseudonym
(the same keyed hash as accepted rows, so a quarantined row joins to the user's bronze events).
A record that did not parse keeps its original text, in which the user id is replaced by its
pseudonym wherever it can be found: every ``"user_id": value`` of JSON-like text, else every
occurrence of the user id the reader did parse (a CSV row with too few or too many fields).
Text in which no user id can be located (e.g. a line holding only a JSON string) may still hold
one, so every word in it (a run of letters, digits, marks, ``_ . @ + -``) is replaced by its
pseudonym, except the raw field names and ``null``/``true``/``false``: the shape stays readable.
The text is made valid UTF-8 (invalid bytes become U+FFFD) so that every reader can open the table.
"""

from __future__ import annotations

from typing import Optional, Sequence

from pyspark.sql import Column, functions as F

from interest_lib import schema as S
from interest_lib.pseudonymise import pseudonymise_col
from interest_lib.ingest.readers import CORRUPT, raw_record

# A JSON member "user_id": value (key in any case), the value quoted (possibly cut off by the end
# of the line) or bare. Group 1 is the key and colon as written, group 2 the value.
_JSON_MEMBER = r'(?i)("{field}"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^\s,}}\]]+)'


# A "word" of text whose user id cannot be located: what an id could be made of.
_WORD = r"[\p{L}\p{N}\p{M}_.@+-]+"
_KEPT_WORDS = ("null", "true", "false")


def _pseudonym(value: Column, key: bytes) -> Column:
    """The pseudonym of a raw id as accepted rows get it (trimmed first)."""
    return pseudonymise_col(F.trim(value), key)


def _json_member(field: str) -> str:
    return _JSON_MEMBER.format(field=field)


def redact_json_ids(text: Column, key: bytes, field: str = S.USER_ID) -> Column:
    """``text`` with the value of every ``"<field>": value`` member replaced by its pseudonym
    (quoted); the key is kept as written and a JSON ``null`` stays ``null``."""
    pattern = F.lit(_json_member(field))
    heads = F.regexp_extract_all(text, pattern, 1)
    values = F.regexp_extract_all(text, pattern, 2)
    members = F.zip_with(heads, values, lambda h, v: F.concat(h, F.when(v == "null", v).otherwise(
        F.concat(F.lit('"'), _pseudonym(F.regexp_replace(v, r'^"|"$', ""), key), F.lit('"')))))
    pieces = F.split(text, _json_member(field), -1)  # n members -> n + 1 pieces around them
    joined = F.zip_with(members, F.slice(pieces, 2, F.size(pieces)),
                        lambda m, p: F.concat(m, F.coalesce(p, F.lit(""))))
    return F.concat(F.element_at(pieces, 1), F.array_join(joined, ""))


def mask_words(text: Column, key: bytes, keep: Sequence[str] = ()) -> Column:
    """``text`` with every word (see ``_WORD``) but those in ``keep`` and null/true/false replaced
    by its pseudonym; punctuation and spacing stay as written."""
    kept = list(keep) + list(_KEPT_WORDS)
    words = F.transform(F.regexp_extract_all(text, F.lit(_WORD), 0),
                        lambda w: F.when(w.isin(*kept), w).otherwise(_pseudonym(w, key)))
    pieces = F.split(text, _WORD, -1)  # n words -> n + 1 pieces around them
    joined = F.zip_with(words, F.slice(pieces, 2, F.size(pieces)),
                        lambda w, p: F.concat(w, F.coalesce(p, F.lit(""))))
    return F.concat(F.element_at(pieces, 1), F.array_join(joined, ""))


def quarantine_record(fields: Sequence[str], key: Optional[bytes] = None,
                      user_field: Optional[str] = S.USER_ID) -> Column:
    """The rejected record as valid UTF-8 text with ``user_field`` pseudonymised (see module doc).

    Args:
        fields: the raw fields, in order (the reader's columns).
        key: the pseudonymisation key; None = the records hold no user ids (e.g. items).
        user_field: the field holding the user id; None = none.
    """
    if key is None or user_field is None or user_field not in fields:
        return F.make_valid_utf8(raw_record(fields))
    uid = F.col(user_field)
    blank = uid.isNull() | (F.trim(uid) == "")
    pseudonym = F.when(blank, uid).otherwise(_pseudonym(uid, key))
    parsed = raw_record([pseudonym.alias(f) if f == user_field else F.col(f) for f in fields])
    corrupt = F.col(CORRUPT)
    text = (
        F.when(corrupt.isNull(), parsed)
        .when(corrupt.rlike(_json_member(user_field)), redact_json_ids(corrupt, key, user_field))
        # No JSON member: replace the id the reader did parse wherever it occurs (CSV rows).
        # No id located, yet the text may hold one (a line that is only a JSON string): mask it.
        .when(blank, mask_words(corrupt, key, keep=fields))
        .otherwise(F.replace(corrupt, F.trim(uid), pseudonym))
    )
    return F.make_valid_utf8(text)
