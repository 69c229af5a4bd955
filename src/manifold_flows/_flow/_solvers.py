"""ODE solvers a flow may use, by name, and how many field evaluations each step costs."""

import diffrax

#: Explicit solvers offered by name. Adaptive ones carry an embedded error estimate.
SOLVERS: dict[str, type[diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}


def make_solver(solver: str | diffrax.AbstractSolver) -> diffrax.AbstractSolver:
    """A diffrax solver from a name in `SOLVERS` or an explicit Runge-Kutta instance."""
    if isinstance(solver, str):
        try:
            return SOLVERS[solver.lower()]()
        except KeyError:
            raise ValueError(
                f"unknown solver {solver!r}; choose one of {sorted(SOLVERS)} or pass a diffrax "
                "explicit Runge-Kutta solver instance."
            ) from None
    if isinstance(solver, diffrax.Euler | diffrax.AbstractERK):
        return solver
    raise TypeError(
        f"solver must be a name ({sorted(SOLVERS)}) or a diffrax explicit Runge-Kutta solver "
        f"(e.g. diffrax.Dopri5()); got {type(solver).__name__}."
    )


def is_adaptive(solver: diffrax.AbstractSolver) -> bool:
    """Whether the solver has an embedded error estimate (usable with a PID controller)."""
    return not isinstance(solver, diffrax.Euler) and solver.tableau.b_error is not None


def evaluations(solver: diffrax.AbstractSolver) -> tuple[int, int]:
    """`(per_step, once)`: field evaluations per attempted step, and once per solve.

    An explicit Runge-Kutta step evaluates every stage; with "first same as last" (FSAL:
    Dopri5, Tsit5, Bosh3) the first stage of a step is the last of the previous one, so a step
    costs one evaluation fewer and the very first stage is evaluated once up front (a rejected
    step keeps its first stage, so the count holds for rejected steps too).
    """
    if isinstance(solver, diffrax.Euler):
        return 1, 0
    tableau = solver.tableau
    if tableau.fsal:
        return tableau.num_stages - 1, 1
    return tableau.num_stages, 0
