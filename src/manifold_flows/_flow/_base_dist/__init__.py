from .base import AbstractBase as AbstractBase, AbstractNormalizedBase as AbstractNormalizedBase
from .box import BoxUniformBase as BoxUniformBase
from .centered_gaussian import CenteredGaussianBase as CenteredGaussianBase
from .dataset import DatasetBase as DatasetBase
from .gaussian import GaussianBase as GaussianBase
from .uniform import UniformBase as UniformBase
