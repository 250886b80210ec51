"""Deterministic sample datasets for the local portal (``odsframe demo``, tests).

:func:`build_sample` adds these datasets to a :class:`~odsframe.testing.catalog.Catalog`;
together they use every ODS field type and the annotations a client meets:

``sample-events`` (``records`` rows, default 10 000)
    Cultural events at 40 venues in Paris, 2021-2024, at local times in ``Europe/Paris``
    (both DST changes every year). ``event_id`` (text, ``id``), ``title``, ``category``
    (facet, disjunctive), ``theme`` (hierarchical facet ``Musique/Jazz``), ``start`` (datetime,
    date facet), ``duration_min`` (int), ``price`` (double, null when free), ``free``
    (boolean), ``attendance`` (int, some nulls), ``tags`` (multivalued text, facet),
    ``venue``, ``arrondissement`` (facet), ``location`` (geo_point_2d). Vectorised: a
    million rows build and load in a few seconds.
``sample-bike-stations`` (150 rows)
    Bike-sharing stations: ``stationcode`` (``id``), ``name``, ``capacity`` and availability
    counts (int), ``is_installed`` (boolean), ``commune`` (facet, disjunctive), ``payment``
    (multivalued facet), ``opened_on`` (date), ``duedate`` (datetime),
    ``coordonnees_geo`` (geo_point_2d), ``geo_shape`` (Point). Attachments: a CSV summary
    and a PDF notice.
``sample-trees`` (400 rows)
    Street trees: ``idbase`` (int, ``id``), ``espece`` (hierarchical facet ``Genre/espèce``),
    ``domanialite`` (facet), ``hauteur_m`` (double), ``circonference_cm`` (int),
    ``remarquable`` (boolean), ``date_plantation`` (date, facet), ``photo`` (file: small
    generated PNG images with thumbnails, every 8th tree), ``caracteristiques``
    (json_blob), ``geo_point_2d``.
``sample-districts`` (20 rows)
    Districts on a grid over Paris: ``c_ar`` (int, ``id``), ``l_ar``, ``l_aroff``,
    ``surface`` and ``perimetre`` (double), ``geom_x_y`` (geo_point_2d centroid), ``geom``
    (geo_shape: Polygon, and MultiPolygon for districts 4, 12 and 16).
``sample-monthly-prices`` (720 rows)
    Monthly commodity price indices 2019-2024: ``month`` (date, ``timeserie_precision``
    month, facet, ``id``), ``commodity`` (facet, ``id``), ``price_index`` (double), ``unit``.
``sample-budget-restricted`` (60 rows, ``visibility: restricted``)
    A private budget: ``exercice`` (date, ``timeserie_precision`` year, facet), ``service``
    (facet), ``nature`` (facet), ``montant_eur`` (double).

File-field blobs live in ``<workdir>/sample-trees.files/``: ``dataset.files[file_id]`` is the
image and ``dataset.files[file_id + "/thumbnail"]`` its half-size thumbnail
(:data:`THUMBNAIL_SUFFIX`). Everything is generated from ``numpy.random.default_rng`` seeded
with ``(seed, dataset number)``: the same seed gives the same tables and the same file bytes,
whatever ``records`` is for the other datasets.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import struct
import tempfile
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from odsframe.testing.catalog import POINT_TYPE, Catalog, table_name
from odsframe.testing.model import PortalAttachment, PortalDataset, PortalField

#: Processing time of every sample dataset (``data_processed``, record timestamps).
SAMPLE_PROCESSED_AT = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
#: Key suffix of a thumbnail in ``PortalDataset.files`` (``files[file_id + suffix]``).
THUMBNAIL_SUFFIX = "/thumbnail"
DEFAULT_RECORDS = 10_000

EVENTS_ID = "sample-events"
STATIONS_ID = "sample-bike-stations"
TREES_ID = "sample-trees"
DISTRICTS_ID = "sample-districts"
PRICES_ID = "sample-monthly-prices"
BUDGET_ID = "sample-budget-restricted"
SAMPLE_IDS: tuple[str, ...] = (EVENTS_ID, STATIONS_ID, TREES_ID, DISTRICTS_ID, PRICES_ID, BUDGET_ID)

# Paris, roughly inside the ring road.
_LAT_RANGE = (48.816, 48.901)
_LON_RANGE = (2.253, 2.415)
_LICENCE = "Licence Ouverte v2.0 (Etalab)"
_LICENCE_URL = (
    "https://www.etalab.gouv.fr/wp-content/uploads/2017/04/ETALAB-Licence-Ouverte-v2.0.pdf"
)


def build_sample(
    catalog: Catalog,
    records: int = DEFAULT_RECORDS,
    *,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> list[PortalDataset]:
    """Add the sample datasets to ``catalog`` and return them.

    Parameters
    ----------
    catalog
        The catalog to fill.
    records
        Number of rows of ``sample-events`` (the others have fixed sizes).
    seed
        Seed of every random draw; the same seed gives the same data.
    workdir
        Folder for generated files (images, attachments); when None, a new temporary
        folder removed when the process exits.
    """
    datasets = []
    for dataset, table in sample_tables(records, seed=seed, workdir=workdir):
        datasets.append(catalog.add_dataset(dataset, table, record_timestamp=SAMPLE_PROCESSED_AT))
    return datasets


def sample_tables(
    records: int = DEFAULT_RECORDS,
    *,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> list[tuple[PortalDataset, pa.Table]]:
    """The sample datasets and their arrow tables, without loading them anywhere."""
    if isinstance(records, bool) or not isinstance(records, int) or records < 0:
        raise ValueError(f"records must be a non-negative integer, not {records!r}")
    if workdir is None:
        folder = Path(tempfile.mkdtemp(prefix="odsframe-sample-"))
        # The portal serves these files while the process lives; remove them at exit.
        atexit.register(shutil.rmtree, folder, True)
    else:
        folder = Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
    return [
        _events(records, _rng(seed, 1)),
        _stations(_rng(seed, 2), folder),
        _trees(_rng(seed, 3), folder),
        _districts(_rng(seed, 4)),
        _prices(_rng(seed, 5)),
        _budget(_rng(seed, 6)),
    ]


def _rng(seed: int, number: int) -> np.random.Generator:
    return np.random.default_rng([seed, number])


def _dataset(
    dataset_id: str,
    fields: Sequence[PortalField],
    *,
    title: str,
    description: str,
    keyword: list[str],
    theme: list[str],
    publisher: str = "Ville de Paris (échantillon)",
    minutes: int = 0,
    visibility: str = "domain",
    attachments: list[PortalAttachment] | None = None,
    files: dict[str, Path] | None = None,
) -> PortalDataset:
    processed = SAMPLE_PROCESSED_AT + timedelta(minutes=minutes)
    default: dict[str, Any] = {
        "title": title,
        "description": f"<p>{description}</p>",
        "theme": theme,
        "keyword": keyword,
        "license": _LICENCE,
        "license_url": _LICENCE_URL,
        "language": "fr",
        "timezone": "Europe/Paris",
        "publisher": publisher,
        "territory": ["Paris"],
        "modified": processed.isoformat(),
        "data_processed": processed.isoformat(),
        "metadata_processed": (processed + timedelta(seconds=30)).isoformat(),
    }
    return PortalDataset(
        dataset_id=dataset_id,
        table=table_name(dataset_id),
        fields=list(fields),
        metas={"default": default},
        visibility="restricted" if visibility == "restricted" else "domain",
        attachments=attachments or [],
        files=files or {},
        processed_at=processed,
    )


def _take(values: Sequence[str], indices: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values, pa.string()), pa.array(indices))


def _points(lon: np.ndarray, lat: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.StructArray.from_arrays(
        [pa.array(np.round(lon, 7)), pa.array(np.round(lat, 7))],
        fields=list(POINT_TYPE),
        mask=None if mask is None else pa.array(mask),
    )


def _paris_times(local: np.ndarray) -> pa.Array:
    """Wall-clock ``datetime64[m]`` times in Europe/Paris -> UTC timestamps."""
    index = pd.DatetimeIndex(local).tz_localize(
        "Europe/Paris", ambiguous="NaT", nonexistent="shift_forward"
    )
    utc = index.tz_convert("UTC").as_unit("us")
    return pa.array(utc.asi8, pa.timestamp("us", tz="UTC"))


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------
# sample-events

_CATEGORIES = ("Concert", "Exposition", "Théâtre", "Cinéma", "Atelier", "Conférence", "Danse")
_THEMES = {
    "Concert": ("Musique/Jazz", "Musique/Classique", "Musique/Rock", "Musique/Électro"),
    "Exposition": ("Arts/Peinture", "Arts/Photographie", "Arts/Sculpture"),
    "Théâtre": ("Spectacle/Comédie", "Spectacle/Drame", "Spectacle/Jeune public"),
    "Cinéma": ("Cinéma/Plein air", "Cinéma/Documentaire", "Cinéma/Classiques"),
    "Atelier": ("Loisirs/Cuisine", "Loisirs/Jardinage", "Loisirs/Numérique"),
    "Conférence": ("Savoirs/Histoire", "Savoirs/Sciences", "Savoirs/Urbanisme"),
    "Danse": ("Spectacle/Danse contemporaine", "Spectacle/Bal", "Musique/Tango"),
}
_TITLE_HEADS = (
    "Nuit",
    "Festival",
    "Rencontre",
    "Soirée",
    "Matinée",
    "Parcours",
    "Carte blanche",
    "Cycle",
    "Voyage",
    "Hommage",
)
_TITLE_TAILS = (
    "des lumières",
    "au bord de l'eau",
    "sous les étoiles",
    "en famille",
    "d'automne",
    "du printemps",
    "des quartiers",
    "en plein air",
    "des curieux",
    "à la française",
    "des jardins",
    "de minuit",
)
_TAGS = ("famille", "plein air", "accessible PMR", "nocturne", "en anglais", "sur réservation")
_VENUE_WORDS = (
    "Salle",
    "Théâtre",
    "Jardin",
    "Médiathèque",
    "Kiosque",
    "Halle",
    "Pavillon",
    "Centre",
)
_VENUE_NAMES = (
    "Voltaire",
    "des Lilas",
    "Saint-Martin",
    "du Marais",
    "Bercy",
    "Montsouris",
    "Belleville",
    "des Batignolles",
    "de la Villette",
    "Mouffetard",
)


def _events(records: int, rng: np.random.Generator) -> tuple[PortalDataset, pa.Table]:
    n = records
    venue_count = 40
    venue_lat = rng.uniform(*_LAT_RANGE, venue_count)
    venue_lon = rng.uniform(*_LON_RANGE, venue_count)
    venue_names = [
        f"{_VENUE_WORDS[i % len(_VENUE_WORDS)]} {_VENUE_NAMES[(i * 7) % len(_VENUE_NAMES)]}"
        + (f" {i // len(_VENUE_NAMES) + 1}" if i >= len(_VENUE_NAMES) else "")
        for i in range(venue_count)
    ]
    venue_arr = [f"750{int(a):02d}" for a in rng.integers(1, 21, venue_count)]

    venue = rng.integers(0, venue_count, n)
    category = rng.integers(0, len(_CATEGORIES), n)
    theme_pick = rng.integers(0, 3, n)
    theme_values = [t for c in _CATEGORIES for t in _THEMES[c][:3]]
    theme_index = category * 3 + theme_pick
    heads = rng.integers(0, len(_TITLE_HEADS), n)
    tails = rng.integers(0, len(_TITLE_TAILS), n)

    days = rng.integers(0, 4 * 365 + 1, n)  # 2021-01-01 .. 2024-12-31
    hours = rng.integers(10, 23, n)  # no ambiguous or missing wall-clock hour
    quarters = rng.integers(0, 4, n) * 15
    local = (
        np.datetime64("2021-01-01T00:00", "m")
        + days.astype("timedelta64[D]")
        + hours.astype("timedelta64[h]")
        + quarters.astype("timedelta64[m]")
    )

    free = rng.random(n) < 0.3
    price = np.round(rng.gamma(2.0, 8.0, n) + 5.0, 2)
    attendance = rng.poisson(180, n)
    attendance_missing = rng.random(n) < 0.05
    durations = np.array([45, 60, 90, 120, 150, 180])[rng.integers(0, 6, n)]

    tag_mask = rng.random((n, len(_TAGS))) < 0.22
    tag_values = np.tile(np.arange(len(_TAGS)), n)[tag_mask.ravel()]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(tag_mask.sum(axis=1), out=offsets[1:])
    tags = pa.ListArray.from_arrays(pa.array(offsets), _take(_TAGS, tag_values))

    jitter_lat = rng.normal(0.0, 0.0004, n)
    jitter_lon = rng.normal(0.0, 0.0006, n)

    ids = pc.binary_join_element_wise(
        "EV-", pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), 7, "0"), ""
    )
    table = pa.table(
        {
            "event_id": ids,
            "title": pc.binary_join_element_wise(
                _take(_TITLE_HEADS, heads), _take(_TITLE_TAILS, tails), " "
            ),
            "category": _take(_CATEGORIES, category),
            "theme": _take(theme_values, theme_index),
            "start": _paris_times(local),
            "duration_min": pa.array(durations.astype(np.int64)),
            "price": pa.array(price, mask=free),
            "free": pa.array(free),
            "attendance": pa.array(attendance.astype(np.int64), mask=attendance_missing),
            "tags": tags,
            "venue": _take(venue_names, venue),
            "arrondissement": _take(venue_arr, venue),
            "location": _points(venue_lon[venue] + jitter_lon, venue_lat[venue] + jitter_lat),
        }
    )
    fields = [
        PortalField("event_id", "text", "Identifiant", annotations={"id": []}),
        PortalField("title", "text", "Titre", annotations={"sortable": []}),
        PortalField("category", "text", "Catégorie", annotations={"facet": [], "disjunctive": []}),
        PortalField("theme", "text", "Thème", annotations={"facet": [], "hierarchical": ["/"]}),
        PortalField("start", "datetime", "Début", annotations={"facet": []}),
        PortalField("duration_min", "int", "Durée", annotations={"unit": ["min"]}),
        PortalField("price", "double", "Prix", annotations={"unit": ["€"], "decimals": [2]}),
        PortalField("free", "boolean", "Gratuit"),
        PortalField("attendance", "int", "Fréquentation"),
        PortalField("tags", "text", "Mots-clés", annotations={"multivalued": [","], "facet": []}),
        PortalField("venue", "text", "Lieu"),
        PortalField("arrondissement", "text", "Arrondissement", annotations={"facet": []}),
        PortalField("location", "geo_point_2d", "Coordonnées"),
    ]
    dataset = _dataset(
        EVENTS_ID,
        fields,
        title="Événements culturels (échantillon)",
        description="Événements culturels fictifs dans les lieux municipaux, 2021-2024.",
        keyword=["culture", "agenda", "événements"],
        theme=["Culture"],
    )
    return dataset, table


# --------------------------------------------------------------------------------------
# sample-bike-stations

_STREETS = (
    "Voltaire",
    "Charonne",
    "Oberkampf",
    "République",
    "Belleville",
    "Ménilmontant",
    "Saint-Maur",
    "Parmentier",
    "Richard Lenoir",
    "Faidherbe",
    "Daumesnil",
    "Montparnasse",
    "Vaugirard",
    "Convention",
    "Alésia",
    "Tolbiac",
    "Italie",
    "Clichy",
    "Rivoli",
    "Lafayette",
)
_COMMUNES = ("Paris", "Paris", "Paris", "Paris", "Montreuil", "Boulogne-Billancourt", "Pantin")
_PAYMENTS = ("carte bancaire", "Navigo", "application")


def _stations(rng: np.random.Generator, folder: Path) -> tuple[PortalDataset, pa.Table]:
    n = 150
    arrondissement = rng.integers(1, 21, n)
    codes = [f"{a}{k:03d}" for a, k in zip(arrondissement, rng.permutation(n) + 1)]
    street_a = rng.integers(0, len(_STREETS), n)
    street_b = (street_a + rng.integers(1, len(_STREETS), n)) % len(_STREETS)
    names = [f"{_STREETS[a]} - {_STREETS[b]}" for a, b in zip(street_a, street_b)]
    capacity = rng.integers(12, 61, n)
    bikes = np.minimum(capacity, rng.integers(0, 40, n))
    ebike = np.minimum(bikes, rng.integers(0, 15, n))
    lat = rng.uniform(*_LAT_RANGE, n)
    lon = rng.uniform(*_LON_RANGE, n)
    payments = [
        [p for p, keep in zip(_PAYMENTS, row) if keep] or ["carte bancaire"]
        for row in rng.random((n, len(_PAYMENTS))) < 0.6
    ]
    opened = np.datetime64("2018-01-01") + rng.integers(0, 6 * 365, n).astype("timedelta64[D]")
    due_local = np.datetime64("2024-06-01T09:00", "m") + rng.integers(-240, 1, n).astype(
        "timedelta64[m]"
    )
    shapes = [
        _compact({"type": "Point", "coordinates": [round(x, 7), round(y, 7)]})
        for x, y in zip(lon, lat)
    ]
    table = pa.table(
        {
            "stationcode": pa.array(codes),
            "name": pa.array(names),
            "capacity": pa.array(capacity.astype(np.int64)),
            "numbikesavailable": pa.array(bikes.astype(np.int64)),
            "numdocksavailable": pa.array((capacity - bikes).astype(np.int64)),
            "mechanical": pa.array((bikes - ebike).astype(np.int64)),
            "ebike": pa.array(ebike.astype(np.int64)),
            "is_installed": pa.array(rng.random(n) < 0.95),
            "commune": _take(_COMMUNES, rng.integers(0, len(_COMMUNES), n)),
            "payment": pa.array(payments, pa.list_(pa.string())),
            "opened_on": pa.array(opened.astype("datetime64[D]"), pa.date32()),
            "duedate": _paris_times(due_local),
            "coordonnees_geo": _points(lon, lat),
            "geo_shape": pa.array(shapes),
        }
    )
    summary = (
        pd.DataFrame({"commune": table.column("commune").to_pylist(), "capacity": capacity})
        .groupby("commune", sort=True)["capacity"]
        .agg(["count", "sum"])
    )
    csv_lines = ["commune;stations;capacite_totale"] + [
        f"{commune};{int(row['count'])};{int(row['sum'])}" for commune, row in summary.iterrows()
    ]
    attachments_folder = folder / f"{STATIONS_ID}.attachments"
    attachments_folder.mkdir(parents=True, exist_ok=True)
    csv_path = attachments_folder / "stations-summary.csv"
    csv_path.write_bytes(("\n".join(csv_lines) + "\n").encode("utf-8"))
    pdf_path = attachments_folder / "notice.pdf"
    pdf_path.write_bytes(_pdf_bytes("Notice du jeu de données des stations (échantillon)."))
    fields = [
        PortalField("stationcode", "text", "Code station", annotations={"id": []}),
        PortalField("name", "text", "Nom station"),
        PortalField("capacity", "int", "Capacité"),
        PortalField("numbikesavailable", "int", "Vélos disponibles"),
        PortalField("numdocksavailable", "int", "Bornettes libres"),
        PortalField("mechanical", "int", "Vélos mécaniques"),
        PortalField("ebike", "int", "Vélos électriques"),
        PortalField("is_installed", "boolean", "Station en fonctionnement"),
        PortalField("commune", "text", "Commune", annotations={"facet": [], "disjunctive": []}),
        PortalField(
            "payment", "text", "Moyens de paiement", annotations={"multivalued": [","], "facet": []}
        ),
        PortalField("opened_on", "date", "Mise en service"),
        PortalField("duedate", "datetime", "Actualisation"),
        PortalField("coordonnees_geo", "geo_point_2d", "Coordonnées géographiques"),
        PortalField("geo_shape", "geo_shape", "Geo Shape"),
    ]
    dataset = _dataset(
        STATIONS_ID,
        fields,
        title="Stations de vélos en libre-service (échantillon)",
        description="Disponibilité fictive des stations, relevée le 1er juin 2024.",
        keyword=["vélo", "mobilité", "temps réel"],
        theme=["Mobilité", "Transports"],
        minutes=5,
        attachments=[
            PortalAttachment("stations_summary_csv", "stations-summary.csv", "text/csv", csv_path),
            PortalAttachment("notice_pdf", "notice.pdf", "application/pdf", pdf_path),
        ],
    )
    return dataset, table


def _pdf_bytes(text: str) -> bytes:
    """A one-page PDF-looking file holding ``text`` (enough for attachment downloads)."""
    body = text.encode("latin-1", "replace")
    stream = b"BT /F1 12 Tf 72 720 Td (" + body + b") Tj ET"
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n"
        b"4 0 obj << /Length "
        + str(len(stream)).encode()
        + b" >> stream\n"
        + stream
        + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


# --------------------------------------------------------------------------------------
# sample-trees

_SPECIES = (
    "Platanus/x hispanica",
    "Aesculus/hippocastanum",
    "Tilia/tomentosa",
    "Acer/platanoides",
    "Acer/pseudoplatanus",
    "Sophora/japonica",
    "Prunus/serrulata",
    "Celtis/australis",
    "Fraxinus/excelsior",
    "Quercus/robur",
)
_DOMANIALITES = ("Alignement", "Jardin", "Cimetière", "Périphérique", "DASCO")
_STAGES = ("Jeune", "Jeune adulte", "Adulte", "Mature")
_PHOTO_EVERY = 8
_PHOTO_COUNT = 12


def _trees(rng: np.random.Generator, folder: Path) -> tuple[PortalDataset, pa.Table]:
    n = 400
    files_folder = folder / f"{TREES_ID}.files"
    files_folder.mkdir(parents=True, exist_ok=True)
    photos: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    for number in range(_PHOTO_COUNT):
        image = _tree_image(rng, 64, 48)
        data = _png_bytes(image)
        file_id = hashlib.md5(data).hexdigest()
        path = files_folder / f"{file_id}.png"
        path.write_bytes(data)
        thumb = files_folder / f"{file_id}.thumbnail.png"
        thumb.write_bytes(_png_bytes(image[::2, ::2]))
        files[file_id] = path
        files[file_id + THUMBNAIL_SUFFIX] = thumb
        mean = image.reshape(-1, 3).mean(axis=0).round().astype(int)
        photos.append(
            {
                "id": file_id,
                "filename": f"arbre-{number + 1:02d}.png",
                "format": "png",
                "width": 64,
                "height": 48,
                "thumbnail": True,
                "mimetype": "image/png",
                "color_summary": [f"rgba({mean[0]}, {mean[1]}, {mean[2]}, 1.00)"],
            }
        )
    species = rng.integers(0, len(_SPECIES), n)
    height = np.round(rng.gamma(4.0, 3.0, n), 1)
    circumference = (height * rng.uniform(6, 10, n)).astype(np.int64)
    planted = np.datetime64("1950-01-01") + rng.integers(0, 74 * 365, n).astype("timedelta64[D]")
    planted_missing = rng.random(n) < 0.1
    stage = rng.integers(0, len(_STAGES), n)
    pits = rng.integers(1, 4, n)
    photo_pick = rng.integers(0, _PHOTO_COUNT, n)
    photo_values = [
        _compact(photos[int(photo_pick[i])]) if i % _PHOTO_EVERY == 0 else None for i in range(n)
    ]
    characteristics = [
        _compact(
            {"stade": _STAGES[int(s)], "fosses": int(p), "sol": ["terre", "grille"][: 1 + i % 2]}
        )
        for i, (s, p) in enumerate(zip(stage, pits))
    ]
    table = pa.table(
        {
            "idbase": pa.array(np.arange(100_001, 100_001 + n, dtype=np.int64)),
            "espece": _take(_SPECIES, species),
            "domanialite": _take(_DOMANIALITES, rng.integers(0, len(_DOMANIALITES), n)),
            "hauteur_m": pa.array(height),
            "circonference_cm": pa.array(circumference),
            "remarquable": pa.array(rng.random(n) < 0.03),
            "date_plantation": pa.array(
                planted.astype("datetime64[D]"), pa.date32(), mask=planted_missing
            ),
            "photo": pa.array(photo_values, pa.string()),
            "caracteristiques": pa.array(characteristics, pa.string()),
            "geo_point_2d": _points(rng.uniform(*_LON_RANGE, n), rng.uniform(*_LAT_RANGE, n)),
        }
    )
    fields = [
        PortalField("idbase", "int", "Identifiant", annotations={"id": []}),
        PortalField(
            "espece", "text", "Genre / espèce", annotations={"facet": [], "hierarchical": ["/"]}
        ),
        PortalField("domanialite", "text", "Domanialité", annotations={"facet": []}),
        PortalField("hauteur_m", "double", "Hauteur", annotations={"unit": ["m"], "decimals": [1]}),
        PortalField("circonference_cm", "int", "Circonférence", annotations={"unit": ["cm"]}),
        PortalField("remarquable", "boolean", "Arbre remarquable"),
        PortalField("date_plantation", "date", "Date de plantation", annotations={"facet": []}),
        PortalField("photo", "file", "Photo", annotations={"has_thumbnails": []}),
        PortalField("caracteristiques", "json_blob", "Caractéristiques"),
        PortalField("geo_point_2d", "geo_point_2d", "Geo Point"),
    ]
    dataset = _dataset(
        TREES_ID,
        fields,
        title="Arbres d'alignement (échantillon)",
        description="Arbres fictifs avec photos, caractéristiques et dates de plantation.",
        keyword=["arbres", "nature", "patrimoine végétal"],
        theme=["Environnement"],
        minutes=10,
        files=files,
    )
    return dataset, table


def _tree_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A small RGB picture of a tree: sky gradient, trunk, a few leafy discs."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = 120 + (y * 60 // height)
    image[..., 1] = 170 + (y * 50 // height)
    image[..., 2] = 235
    trunk = (abs(x - width // 2) <= 2) & (y > height // 2)
    image[trunk] = (110, 75, 40)
    for _ in range(int(rng.integers(3, 7))):
        cx = int(rng.integers(width // 4, 3 * width // 4))
        cy = int(rng.integers(height // 6, height // 2 + 4))
        radius = int(rng.integers(6, 12))
        green = int(rng.integers(100, 190))
        leaves = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
        image[leaves] = (40, green, 50)
    return image


def _png_bytes(image: np.ndarray) -> bytes:
    """PNG (8-bit RGB, no filtering) of an ``(height, width, 3)`` uint8 array."""
    height, width = image.shape[:2]
    rows = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------
# sample-districts

_DISTRICT_NAMES = (
    "Louvre",
    "Bourse",
    "Temple",
    "Hôtel-de-Ville",
    "Panthéon",
    "Luxembourg",
    "Palais-Bourbon",
    "Élysée",
    "Opéra",
    "Entrepôt",
    "Popincourt",
    "Reuilly",
    "Gobelins",
    "Observatoire",
    "Vaugirard",
    "Passy",
    "Batignolles-Monceau",
    "Buttes-Montmartre",
    "Buttes-Chaumont",
    "Ménilmontant",
)
_MULTIPOLYGON_DISTRICTS = (4, 12, 16)


def _districts(rng: np.random.Generator) -> tuple[PortalDataset, pa.Table]:
    columns, rows = 5, 4
    lon_step = (_LON_RANGE[1] - _LON_RANGE[0]) / columns
    lat_step = (_LAT_RANGE[1] - _LAT_RANGE[0]) / rows
    shapes: list[str] = []
    centroids: list[tuple[float, float]] = []
    surfaces: list[float] = []
    perimeters: list[float] = []
    metres_per_degree_lat = 111_320.0
    metres_per_degree_lon = 111_320.0 * np.cos(np.radians(48.86))
    for index in range(columns * rows):
        col, row = index % columns, index // columns
        x0 = _LON_RANGE[0] + col * lon_step
        y0 = _LAT_RANGE[0] + row * lat_step
        wobble = rng.uniform(-0.15, 0.15, 4)
        ring = [
            [x0, y0],
            [x0 + lon_step * (0.5 + wobble[0]), y0 + lat_step * 0.02],
            [x0 + lon_step, y0],
            [x0 + lon_step * (0.98 + wobble[1] / 10), y0 + lat_step * (0.5 + wobble[2])],
            [x0 + lon_step, y0 + lat_step],
            [x0, y0 + lat_step],
            [x0 + lon_step * (0.03 + abs(wobble[3]) / 10), y0 + lat_step * 0.5],
            [x0, y0],
        ]
        ring = [[round(x, 7), round(y, 7)] for x, y in ring]
        number = index + 1
        if number in _MULTIPOLYGON_DISTRICTS:
            # A lake with an islet: the main part has a hole, the islet (smaller than the
            # hole) is the second part, so the MultiPolygon is valid.
            outer = _rectangle(x0, y0, lon_step, lat_step)
            hole = _rectangle(
                x0 + lon_step * 0.4, y0 + lat_step * 0.35, lon_step * 0.1, lat_step * 0.1
            )
            islet = _rectangle(
                x0 + lon_step * 0.42, y0 + lat_step * 0.37, lon_step * 0.06, lat_step * 0.06
            )
            geometry: dict[str, Any] = {
                "type": "MultiPolygon",
                "coordinates": [[outer, hole[::-1]], [islet]],
            }
        else:
            geometry = {"type": "Polygon", "coordinates": [ring]}
        shape = shapely.from_geojson(_compact(geometry))
        projected = shapely.transform(
            shape, lambda xy: xy * [metres_per_degree_lon, metres_per_degree_lat]
        )
        centroid = shapely.centroid(shape)
        shapes.append(_compact(geometry))
        centroids.append((round(float(centroid.x), 7), round(float(centroid.y), 7)))
        surfaces.append(round(float(shapely.area(projected)), 2))
        perimeters.append(round(float(shapely.length(shapely.boundary(projected))), 2))
    labels = ["1er Ardt"] + [f"{i}ème Ardt" for i in range(2, 21)]
    table = pa.table(
        {
            "c_ar": pa.array(np.arange(1, 21, dtype=np.int64)),
            "l_ar": pa.array(labels),
            "l_aroff": pa.array(list(_DISTRICT_NAMES)),
            "surface": pa.array(surfaces),
            "perimetre": pa.array(perimeters),
            "geom_x_y": _points(
                np.array([c[0] for c in centroids]), np.array([c[1] for c in centroids])
            ),
            "geom": pa.array(shapes),
        }
    )
    fields = [
        PortalField("c_ar", "int", "Numéro d'arrondissement", annotations={"id": []}),
        PortalField("l_ar", "text", "Nom de l'arrondissement"),
        PortalField("l_aroff", "text", "Nom officiel de l'arrondissement"),
        PortalField("surface", "double", "Surface", annotations={"unit": ["m²"]}),
        PortalField("perimetre", "double", "Périmètre", annotations={"unit": ["m"]}),
        PortalField("geom_x_y", "geo_point_2d", "Geometry X Y"),
        PortalField("geom", "geo_shape", "Geometry"),
    ]
    dataset = _dataset(
        DISTRICTS_ID,
        fields,
        title="Arrondissements (échantillon)",
        description="Découpage fictif en 20 arrondissements, polygones et multipolygones.",
        keyword=["arrondissements", "limites administratives"],
        theme=["Administration", "Territoire"],
        minutes=15,
    )
    return dataset, table


# --------------------------------------------------------------------------------------
# sample-monthly-prices

_COMMODITIES = (
    ("Blé", "USD/t"),
    ("Maïs", "USD/t"),
    ("Riz", "USD/t"),
    ("Café", "USc/lb"),
    ("Cacao", "USD/t"),
    ("Sucre", "USc/lb"),
    ("Cuivre", "USD/t"),
    ("Aluminium", "USD/t"),
    ("Pétrole brut", "USD/bbl"),
    ("Or", "USD/oz"),
)


def _prices(rng: np.random.Generator) -> tuple[PortalDataset, pa.Table]:
    months = 72  # 2019-01 .. 2024-12
    month_starts = np.array(
        [np.datetime64(f"{2019 + m // 12}-{m % 12 + 1:02d}-01") for m in range(months)]
    )
    month_column = np.tile(month_starts, len(_COMMODITIES))
    commodity = np.repeat(np.arange(len(_COMMODITIES)), months)
    walk = np.cumsum(rng.normal(0.0, 2.5, (len(_COMMODITIES), months)), axis=1)
    index = np.round(100.0 + walk, 2).ravel()
    table = pa.table(
        {
            "month": pa.array(month_column.astype("datetime64[D]"), pa.date32()),
            "commodity": _take([c[0] for c in _COMMODITIES], commodity),
            "price_index": pa.array(index),
            "unit": _take([c[1] for c in _COMMODITIES], commodity),
        }
    )
    fields = [
        PortalField(
            "month",
            "date",
            "Mois",
            annotations={"timeserie_precision": ["month"], "facet": [], "id": []},
        ),
        PortalField("commodity", "text", "Matière première", annotations={"facet": [], "id": []}),
        PortalField("price_index", "double", "Indice de prix", annotations={"decimals": [2]}),
        PortalField("unit", "text", "Unité de cotation"),
    ]
    dataset = _dataset(
        PRICES_ID,
        fields,
        title="Indices mensuels des prix des matières premières (échantillon)",
        description="Indices fictifs base 100 en janvier 2019, un par mois et par produit.",
        keyword=["prix", "matières premières", "indices"],
        theme=["Économie"],
        publisher="Observatoire des prix (échantillon)",
        minutes=20,
    )
    return dataset, table


# --------------------------------------------------------------------------------------
# sample-budget-restricted

_SERVICES = ("Voirie", "Espaces verts", "Culture", "Écoles", "Sport", "Propreté")


def _budget(rng: np.random.Generator) -> tuple[PortalDataset, pa.Table]:
    years = np.arange(2015, 2025)
    year = np.repeat(years, len(_SERVICES))
    service = np.tile(np.arange(len(_SERVICES)), len(years))
    n = len(year)
    investment = rng.random(n) < 0.4
    table = pa.table(
        {
            "exercice": pa.array(
                np.array([np.datetime64(f"{y}-01-01") for y in year]).astype("datetime64[D]"),
                pa.date32(),
            ),
            "service": _take(_SERVICES, service),
            "nature": pa.array(np.where(investment, "Investissement", "Fonctionnement")),
            "montant_eur": pa.array(np.round(rng.uniform(0.2e6, 40e6, n), 2)),
        }
    )
    fields = [
        PortalField(
            "exercice",
            "date",
            "Exercice",
            annotations={"timeserie_precision": ["year"], "facet": []},
        ),
        PortalField("service", "text", "Service", annotations={"facet": []}),
        PortalField("nature", "text", "Nature", annotations={"facet": []}),
        PortalField("montant_eur", "double", "Montant", annotations={"unit": ["€"]}),
    ]
    dataset = _dataset(
        BUDGET_ID,
        fields,
        title="Budget par service (échantillon, accès restreint)",
        description=_html_escape("Montants fictifs par exercice & service; réservé aux agents."),
        keyword=["budget", "finances"],
        theme=["Finances"],
        minutes=25,
        visibility="restricted",
    )
    return dataset, table


def _rectangle(x: float, y: float, width: float, height: float) -> list[list[float]]:
    corners = [(x, y), (x + width, y), (x + width, y + height), (x, y + height), (x, y)]
    return [[round(cx, 7), round(cy, 7)] for cx, cy in corners]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
