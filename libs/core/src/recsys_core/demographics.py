"""The demographic vocabularies, defined once (issue #17): MovieLens occupations (ml-1m codes and
ml-100k names, and the mapping between them), ml-1m age brackets and genders.

The data readers and the synthetic generator (``recsys_data``), the embedder's request
checks and its two-tower model all read these; nothing else spells them out. docs/occupations.md
explains the vocabularies and the mapping. Pure Python: no service, no torch.
"""

from __future__ import annotations

#: ml-1m / ml-10m occupation codes (the index) -> normalised lowercase names
ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "k-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
#: ml-100k's occupation names (its u.occupation file, in that file's order)
ML100K_OCCUPATIONS: tuple[str, ...] = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip
#: the explicit cross-vocabulary mapping of docs/occupations.md (ml-100k name -> ml-1m name)
ML100K_TO_ML1M: dict[str, str] = {
    "doctor": "doctor/health care",
    "healthcare": "doctor/health care",
    "educator": "academic/educator",
    "engineer": "technician/engineer",
    "technician": "technician/engineer",
    "salesman": "sales/marketing",
    "marketing": "sales/marketing",
    "none": "other",
    "administrator": "clerical/admin",
    "executive": "executive/managerial",
    "student": "college/grad student",
}
#: ml-1m age brackets: each bracket's start age, which is also its code in users.dat
ML1M_AGES: tuple[int, ...] = (1, 18, 25, 35, 45, 50, 56)
#: gender codes; a model's index is the position + 1 (0 = unknown)
GENDERS: tuple[str, ...] = ("F", "M")


def normalise_occupation(value: str) -> str | None:
    """A code "0".."20" or a name (either MovieLens vocabulary, any case) -> lowercase name; else None."""
    v = value.strip().lower()
    if v.isascii() and v.isdigit():  # "²".isdigit() is True, but int("²") raises
        code = int(v)
        return ML1M_OCCUPATIONS[code] if 0 <= code < len(ML1M_OCCUPATIONS) else None
    if v in ML1M_OCCUPATIONS or v in ML100K_OCCUPATIONS:
        return v
    return None


def occupation_candidates(name: str) -> list[str]:
    """``name`` and its counterparts in the other vocabulary (ML100K_TO_ML1M, both directions),
    in the order a model's vocabulary should be searched for them."""
    out = [name]
    if name in ML100K_TO_ML1M:
        out.append(ML100K_TO_ML1M[name])
    out += [k for k, v in ML100K_TO_ML1M.items() if v == name]
    return out


def age_bracket(age: int | None) -> int:
    """Age in years (or an ml-1m bracket code) -> 1..len(ML1M_AGES); 0 when unknown (None or <= 0)."""
    if age is None or age <= 0:
        return 0
    k = 0
    for i, start in enumerate(ML1M_AGES):
        if age >= start:
            k = i
    return k + 1


def gender_index(gender: str | None) -> int:
    """ "F"/"M" (any case, first letter) -> 1/2; 0 when not given or neither."""
    if not gender:
        return 0
    g = gender.strip().upper()[:1]
    return GENDERS.index(g) + 1 if g in GENDERS else 0
