from .base import (
    AbstractDivergence as AbstractDivergence,
    AbstractStochasticDivergence as AbstractStochasticDivergence,
    PointField as PointField,
    is_flat_embedded as is_flat_embedded,
)
from .exact import ExactDivergence as ExactDivergence
from .field import FieldDivergence as FieldDivergence
from .hutchinson import HutchinsonDivergence as HutchinsonDivergence
