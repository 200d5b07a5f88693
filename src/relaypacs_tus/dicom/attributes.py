"""The patient, study and series attributes a wrapped picture gets, and their checks.

Values must fit their DICOM Value Representations (PS3.5 §6.2: LO 64 characters, SH 16, PN 64 per
component group, DA YYYYMMDD, TM HHMMSS, CS 16 of A-Z 0-9 space underscore; no backslash, which
separates values). Reasons name the field, never its value (no PHI in errors).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.uid import UID

from . import errors as E
from .errors import DicomRejected

_DATE_RE = re.compile(r"^\d{8}$")
_TIME_RE = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_CS_RE = re.compile(r"^[A-Z0-9_ ]{1,16}$")


@dataclass(frozen=True)
class PatientStudy:
    """Who and what the picture is of. Values use DICOM formats: ``patient_name`` as PN (``Family^Given``),
    ``birth_date`` as DA (YYYYMMDD), ``sex`` M/F/O, ``study_date``/``study_time`` as DA/TM. Empty means
    unknown (written as an empty Type 2 attribute). ``study_instance_uid`` is what the uploader declared;
    the UID written is ``SeriesPlacement.study_instance_uid``, and the two must agree when both are set."""

    patient_id: str
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    study_description: str = ""
    body_part: str = ""
    study_date: str = ""  # when empty, the picture's own date (EXIF) or now is used
    study_time: str = ""


@dataclass(frozen=True)
class SeriesPlacement:
    """Where the instance goes: the pipeline gives every upload of one batch the same study and series
    UIDs and increasing instance numbers."""

    study_instance_uid: str
    series_instance_uid: str
    instance_number: int
    series_number: int | None = None
    series_description: str = ""


def _bad(words: str) -> DicomRejected:
    return DicomRejected(E.INVALID_PATIENT_DATA, words)


def _check_text(value: str, limit: int, words: str) -> None:
    if len(value) > limit:
        raise _bad(f"the {words} is longer than {limit} characters")
    if "\\" in value or any(ord(c) < 0x20 for c in value):
        raise _bad(f"the {words} contains a backslash or control character")


def check_patient(p: PatientStudy) -> None:
    if not p.patient_id.strip():
        raise _bad("a patient ID is required to file a picture in the PACS")
    _check_text(p.patient_id, 64, "patient ID")
    for group in p.patient_name.split("="):
        _check_text(group, 64, "patient name")
    _check_text(p.accession_number, 16, "accession number")
    _check_text(p.study_description, 64, "study description")
    if p.birth_date and not _valid_date(p.birth_date):
        raise _bad("the birth date must be a real date written as YYYYMMDD")
    if p.study_date and not _valid_date(p.study_date):
        raise _bad("the study date must be a real date written as YYYYMMDD")
    if p.study_time and not _TIME_RE.match(p.study_time):
        raise _bad("the study time must be written as HHMMSS")
    if p.sex not in ("", "M", "F", "O"):
        raise _bad("the patient sex must be M, F or O")
    if p.body_part:
        body_part_term(p.body_part)


def _valid_date(text: str) -> bool:
    if not _DATE_RE.match(text):
        return False
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def body_part_term(text: str) -> str:
    value = text.strip().upper().replace(" ", "_").replace("-", "_")
    if not _CS_RE.match(value):
        raise _bad("the body part must be at most 16 letters, digits or underscores")
    return value


# Body parts that are not paired structures (PS3.16 Table L-5, as dicom3tools' dciodvfy knows them): for
# these Laterality (0020,0060) must be absent; for any other part it is required (empty when unknown).
_UNPAIRED_WORDS = (
    "ABDOMEN ABDOMENPELVIS AORTA BACK BLADDER BRAIN CEREBELLUM CERVIX CHEST CHESTABDOMEN CHESTABDPELVIS "
    "CIRCLEOFWILLIS COCCYX COLON CORONARYARTERY CSPINE CTSPINE DUODENUM ESOPHAGUS FACE GALLBLADDER HEAD "
    "HEADNECK HEART ILEUM ILIUM JAW JEJUNUM LARYNX LIVER LSPINE LSSPINE MAXILLA MEDIASTINUM MOUTH NECK "
    "NECKCHEST NECKCHESTABDOMEN NECKCHESTABDPELV NOSE PANCREAS PELVIS PENIS PHARYNX PROSTATE RECTUM SKULL "
    "SPINE SPLEEN SSPINE STERNUM STOMACH THYROID TLSPINE TONGUE TRACHEA TSPINE URETER URETHRA UTERUS VAGINA "
    "VULVA WHOLEBODY"
)
UNPAIRED_BODY_PARTS = frozenset(_UNPAIRED_WORDS.split())
_SIDES = {"LEFT": "L", "RIGHT": "R", "BOTH": "B", "BILATERAL": "B"}


def laterality(body_part: str) -> tuple[str | None, str]:
    """Split a side word off a body part ("LEFT_ARM" -> ("L", "ARM")), so both use defined terms."""
    words = body_part.replace(" ", "_").split("_")
    sides = {_SIDES[w] for w in words if w in _SIDES}
    rest = "_".join(w for w in words if w and w not in _SIDES)
    return (sides.pop() if len(sides) == 1 else None), rest


def check_placement(place: SeriesPlacement, p: PatientStudy) -> None:
    for value, words in ((place.study_instance_uid, "Study"), (place.series_instance_uid, "Series")):
        if not UID(value).is_valid:
            raise ValueError(f"SeriesPlacement: the {words} Instance UID is not a valid UID")
    if place.instance_number < 0 or place.instance_number > 2**31 - 1:
        raise ValueError("SeriesPlacement: instance_number must fit an IS value")
    if p.study_instance_uid and p.study_instance_uid != place.study_instance_uid:
        raise DicomRejected(
            E.STUDY_MISMATCH, "the Study Instance UID does not match the one given for this upload"
        )
