"""Query building: ODSQL text, the :class:`Query` object and the read :class:`Plan`.

Nothing in this package makes a request.
"""

from odsframe.query.odsql import (
    in_bbox,
    intersects,
    literal,
    quote_field,
    where_from,
    within_distance,
)
from odsframe.query.plan import Plan, PlannedRequest
from odsframe.query.query import Query

__all__ = [
    "Plan",
    "PlannedRequest",
    "Query",
    "in_bbox",
    "intersects",
    "literal",
    "quote_field",
    "where_from",
    "within_distance",
]
