"""The parts of a training loop that `fit` and `fit_likelihood` share: the data batches of
each step, the checkpoints, and the bookkeeping after each step (records, validation,
checkpoints, progress, callback, interrupts)."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from .checkpoint import save_train_checkpoint
from .config import TrainConfig
from .progress import MetricsLog, MetricsWindow, Progress
from .run import CHECKPOINT, CHECKPOINT_INFO, write_json
from .state import TrainState


class _Checkpoints:
    """Writes the checkpoint of a run (`checkpoint.eqx`: the state and the metrics window;
    `checkpoint.json`: where it is) and remembers the step of the last one (`last_step`).
    `run_dir=None` (no run directory, or a process other than 0) writes nothing but still
    keeps the step."""

    def __init__(self, run_dir: Path | None, steps_per_epoch: int, total_steps: int):
        self.run_dir, self.steps_per_epoch, self.total_steps = run_dir, steps_per_epoch, total_steps
        self.last_step: int | None = None

    def save(self, state: TrainState, val_loss, window: MetricsWindow) -> None:
        step = int(state.step)
        if self.run_dir is not None:
            save_train_checkpoint(self.run_dir / CHECKPOINT, state, window.as_array())
            write_json(
                self.run_dir / CHECKPOINT_INFO,
                {
                    "step": step,
                    "epoch": -(-step // self.steps_per_epoch),
                    "total_steps": self.total_steps,
                    "val_loss": val_loss,
                },
            )
        self.last_step = step


class _Bookkeeper:
    """What a training loop does after each step, shared by `fit` and `fit_likelihood`: the
    metrics record (every `log_every` steps, at epoch ends and at the last step; with the
    validation of `validate(state)` at epoch ends), the checkpoint (epoch ends and every
    `checkpoint_every` steps), the progress bar and the callback; and the checkpoint of an
    interrupted or finished loop.

    It holds the metrics `window` (the steps since the last record): the loop adds each good
    step to `books.window` in the statement that takes the new state, so that an interrupt
    never separates the two, and calls `stepped` after every step."""

    def __init__(
        self,
        *,
        config: TrainConfig,
        schedule,
        steps_per_epoch: int,
        total_steps: int,
        metrics: MetricsLog,
        checkpoints: "_Checkpoints",
        bar: Progress,
        callback: Callable[[dict[str, Any]], None] | None,
        validate: Callable[[TrainState], dict[str, Any]],
        last_val,
        window: MetricsWindow,
    ):
        self.config, self.schedule = config, schedule
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.metrics, self.checkpoints, self.bar = metrics, checkpoints, bar
        self.callback, self.validate, self.last_val = callback, validate, last_val
        self.window = window
        self.history: list[dict[str, Any]] = []
        # steps timed since the last record in this call (the window may hold steps of the
        # run this one resumes, whose time is not known)
        self.timed_steps, self.window_start = 0, time.perf_counter()

    def record_due(self, done: int) -> bool:
        """Whether a metrics record is written after step `done`."""
        return (
            done % self.config.log_every == 0
            or done % self.steps_per_epoch == 0
            or done == self.total_steps
        )

    def write(self, record: dict[str, Any]) -> None:
        self.metrics.write(record)
        self.history.append(record)

    def stepped(self, state: TrainState, extra: dict[str, Any] | None = None) -> None:
        """After the step that brought `state` to `state.step`; `extra` goes into its record."""
        done = int(state.step)
        self.timed_steps += 1
        epoch_end = done % self.steps_per_epoch == 0
        every = self.config.checkpoint_every
        due = epoch_end or (every and done % every == 0)
        if not self.record_due(done):
            if due:
                self.checkpoints.save(state, self.last_val, self.window)
            return
        elapsed = time.perf_counter() - self.window_start
        mean_loss, mean_gn = self.window.means()
        record = {
            "step": done,
            "epoch": -(-done // self.steps_per_epoch),
            "loss": mean_loss,
            "grad_norm": mean_gn,
            "lr": float(self.schedule(done - 1)),
            "steps_per_s": self.timed_steps / elapsed if elapsed > 0 else None,
            **(extra or {}),
        }
        if epoch_end:
            record.update(self.validate(state))
            self.last_val = record.get("val_loss")
        # The record goes to the log before the checkpoint of its step: a run killed in
        # between resumes from the previous checkpoint, drops the records past it and writes
        # this one again (never lost, never twice).
        self.write(record)
        self.window = MetricsWindow()
        self.timed_steps, self.window_start = 0, time.perf_counter()
        if due:
            self.checkpoints.save(state, self.last_val, self.window)
        self.bar.update(
            done, loss=record["loss"], val_loss=self.last_val, speed=record["steps_per_s"]
        )
        if self.callback is not None:
            self.callback(record)

    def interrupted(self, state: TrainState, run_dir) -> None:
        """Checkpoint the state reached, unless its record is due and may be half-written
        (the window is emptied only after the write): then the previous checkpoint is the
        place to resume from, and the resumed run writes that record again."""
        unsure = self.window.num_steps > 0 and self.record_due(int(state.step))
        if run_dir is not None and int(state.step) != self.checkpoints.last_step and not unsure:
            self.checkpoints.save(state, self.last_val, self.window)

    def finished(self, state: TrainState, run_dir) -> None:
        if run_dir is not None and int(state.step) != self.checkpoints.last_step:
            self.checkpoints.save(state, self.last_val, self.window)


class _BatchOrder:
    """The data batches of the steps: the order of an epoch is a function of (key, epoch), so
    a resumed run takes the batches of the uninterrupted one. Keeps the orders of the current
    and the next epoch (the pipelined host coupling looks one step ahead)."""

    def __init__(self, train_x, order_seed, steps_per_epoch: int, batch_size: int, parallel):
        self.train_x, self.order_seed = train_x, order_seed
        self.steps_per_epoch, self.batch_size, self.parallel = steps_per_epoch, batch_size, parallel
        self._perms: dict[int, np.ndarray] = {}

    def __call__(self, step: int):
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch not in self._perms:
            for old in [e for e in self._perms if e < epoch]:
                del self._perms[old]
            rng = np.random.default_rng([*self.order_seed, epoch])
            self._perms[epoch] = rng.permutation(self.train_x.shape[0])
        index = jnp.asarray(self._perms[epoch][i * self.batch_size : (i + 1) * self.batch_size])
        return self.parallel.shard_batch(jnp.take(self.train_x, index, axis=0))
