from .base import AbstractBase as AbstractBase, AbstractNormalizedBase as AbstractNormalizedBase
from .dataset import DatasetBase as DatasetBase
from .gaussian import GaussianBase as GaussianBase
from .uniform import UniformBase as UniformBase
