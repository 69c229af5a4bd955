"""The registry of built-in manifold instances that the contract tests and `mflows doctor`
run the laws on."""

from .._manifold import (
    AbstractManifold,
    Euclidean,
    FlatTorus,
    ParticleSpace,
    Sphere,
    ZeroCenterOfMass,
)

__all__ = ["manifold_registry"]


def manifold_registry() -> dict[str, AbstractManifold]:
    """One small instance of every built-in manifold, keyed by a descriptive name.

    Covers the flat torus in 1, 2 and 3 dimensions (square, rectangular and cubic boxes; the
    2D box is the N = 10 IPL box), Euclidean space, the circle and the 2-sphere, and the
    particle configuration space of a 2D torus, and the zero-centre-of-mass configurations
    of 4 particles in R^2 (the DW4 system). A new manifold is added here, and every
    contract test then runs on it.

    **Returns:**

    A new dict from name to manifold instance.
    """
    return {
        "torus_1d": FlatTorus(3.0, dim=1),
        "torus_2d": FlatTorus(4.472136, dim=2),
        "torus_2d_rectangle": FlatTorus((3.0, 5.5)),
        "torus_3d": FlatTorus(2.5, dim=3),
        "euclidean_2d": Euclidean(2),
        "sphere_1": Sphere(1),
        "sphere_2": Sphere(2),
        "particles_torus_2d": ParticleSpace(FlatTorus(4.472136, dim=2), 5),
        "zero_com_4x2": ZeroCenterOfMass(4, 2),
    }
