"""How `complete` searches z: its options, and the search approaches.

Each approach (`--approach`) is defined here and only here: its name, its
hyperparameters (default, range and help, from which dcgan-complete makes its flags),
the state it carries from one iteration to the next, and its update. Adding an approach
is writing its update and adding an `Approach` to APPROACHES: completion runs it and
dcgan-complete offers it, with a flag per new hyperparameter.

    options = SearchOptions(approach="momentum", n_iter=500, hyperparameters={"lr": 1e-4})
    options = search_options(approach="momentum", n_iter=500, lr=1e-4)      # the same

Where the search starts (`init`): "encoder", the guess of the encoder kept with the model
(encoder.py), or "random", the original's Uniform(-1, 1) from each image's seed. How its
step size changes (`schedule`): "constant", the original's, or "cosine", from the
approach's rate down to zero at the last iteration; each approach has its own default.

Every approach clips z to [-1, 1] after each step. The updates run inside the compiled
search (completion.py) and import TensorFlow when it is traced: this module itself does
not, so that dcgan-complete builds its flags without loading TensorFlow.
"""
import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .errors import InputError, check_number


@dataclass(frozen=True)
class Parameter:
    """A hyperparameter of an approach: `name` is its keyword (and, in camelCase and
    kebab-case, its flag); values must lie within the bounds (inclusive minimum/maximum,
    exclusive above/below) and be finite."""

    name: str
    default: float
    help: str = ""
    kind: type = float
    minimum: float = None
    maximum: float = None
    above: float = None
    below: float = None

    @property
    def flags(self):
        """Its flags: `--hmcBeta` and `--hmc-beta` for hmc_beta, `--lr` for lr."""
        first, *rest = self.name.split("_")
        return tuple(dict.fromkeys([f"--{first}{''.join(w.capitalize() for w in rest)}", f"--{self.name.replace('_', '-')}"]))

    @property
    def bounds(self):
        return dict(minimum=self.minimum, maximum=self.maximum, above=self.above, below=self.below)

    def check(self, value):
        """`value` as this parameter's kind, or InputError saying what it must be."""
        check_number(value, self.name, self.kind, **self.bounds)
        return self.kind(value)


@dataclass(frozen=True)
class Step:
    """What an update sees at one iteration, for a batch of B images."""

    z: object  # [B, z_dim], before the update
    state: tuple  # the approach's state: state_size tensors [B, z_dim]
    loss: object  # [B]: each image's loss at z
    grad: object  # [B, z_dim]: its gradient
    iteration: object  # int64 scalar, counted from 0
    rate: object  # float32 scalar: the schedule's factor on the step size at this iteration
    seeds: object  # [B] int64: each image's seed (for an approach's own randomness)
    objective: Callable  # z -> (loss, grad), for approaches that look around z


@dataclass(frozen=True)
class Approach:
    name: str
    help: str  # for --approach
    parameters: tuple  # of Parameter
    state_size: int  # how many [B, z_dim] tensors it carries between iterations (zeros at the start)
    update: Callable  # update(step: Step, h: {parameter name: scalar tensor}) -> (z, state)
    schedule: str = "constant"  # its default schedule (SCHEDULES)


# ---------------------------------------------------------------- the updates


def _clip(z):
    import tensorflow as tf

    return tf.clip_by_value(z, -1.0, 1.0)


def momentum_update(step, h):
    """The original's (2016) projected gradient descent with Nesterov-style momentum."""
    (velocity,) = step.state
    new_velocity = h["momentum"] * velocity - step.rate * h["lr"] * step.grad
    z = step.z - h["momentum"] * velocity + (1 + h["momentum"]) * new_velocity
    return _clip(z), (new_velocity,)


def adam_update(step, h):
    """The original's Adam on z, bias-corrected."""
    import tensorflow as tf

    m, v = step.state
    t = tf.cast(step.iteration, tf.float32) + 1.0
    m = h["beta1"] * m + (1 - h["beta1"]) * step.grad
    v = h["beta2"] * v + (1 - h["beta2"]) * step.grad * step.grad
    m_hat = m / (1 - h["beta1"] ** t)
    v_hat = v / (1 - h["beta2"] ** t)
    return _clip(step.z - step.rate * h["lr"] * m_hat / (tf.sqrt(v_hat) + h["eps"])), (m, v)


def hmc_update(step, h):
    """One HMC iteration as the original: hmc_l leapfrog steps of size hmc_eps on
    beta * loss (beta = hmc_beta * hmc_anneal^iteration) from a fresh momentum v ~ N(0, I)
    (z clipped after each), then a per-image Metropolis accept on beta * loss + |v|^2 / 2."""
    import tensorflow as tf

    v0, uniform = hmc_noise(step.seeds, step.iteration, step.z.shape[-1])
    eps = step.rate * h["hmc_eps"]
    beta = h["hmc_beta"] * h["hmc_anneal"] ** tf.cast(step.iteration, tf.float32)
    z, loss, grad, v = step.z, step.loss, step.grad, v0
    for _ in tf.range(tf.cast(h["hmc_l"], tf.int32)):
        v = v - eps / 2 * beta * grad
        z = _clip(z + eps * v)
        loss, grad = step.objective(z)
        v = v - eps / 2 * beta * grad
    energy0 = beta * step.loss + tf.reduce_sum(v0 * v0, axis=1) / 2
    energy = beta * loss + tf.reduce_sum(v * v, axis=1) / 2
    # The original rejects when u > exp(energy0 - energy); compared in logs, no overflow.
    reject = tf.math.log(uniform) > energy0 - energy
    return tf.where(reject[:, None], step.z, z), ()


def schedule_rate(schedule, iteration, n_iter):
    """The factor on the step size at `iteration` (from 0) of `n_iter`: 1 throughout for
    "constant"; for "cosine", (1 + cos(pi * iteration / n_iter)) / 2, from 1 to near 0."""
    import tensorflow as tf

    if schedule == "constant":
        return tf.constant(1.0)
    progress = tf.cast(iteration, tf.float32) / tf.cast(tf.maximum(n_iter, 1), tf.float32)
    return 0.5 * (1.0 + tf.cos(math.pi * progress))


def initial_z(seeds, z_dim):
    """Each image's starting z ~ Uniform(-1, 1)^z_dim, drawn from its seed alone."""
    import tensorflow as tf

    return _per_image(tf.random.stateless_uniform, seeds, tf.constant(0, tf.int64), z_dim, minval=-1.0, maxval=1.0)


def hmc_noise(seeds, iteration, z_dim):
    """HMC's randomness at `iteration`, from each image's seed alone: the momentum
    v ~ N(0, I) [B, z_dim] and the Metropolis uniform u [B]."""
    import tensorflow as tf

    iteration = tf.cast(iteration, tf.int64)
    v = _per_image(tf.random.stateless_normal, seeds, 2 * iteration + 1, z_dim)
    u = _per_image(tf.random.stateless_uniform, seeds, 2 * iteration + 2, 1)[:, 0]
    return v, u


def _per_image(sample, seeds, counter, dim, **kwargs):
    import tensorflow as tf

    # Stateless ops take one seed per call, so each image's draw is a call of its own.
    keys = tf.stack([tf.cast(seeds, tf.int64), tf.fill(tf.shape(seeds), counter)], axis=1)

    @tf.autograph.experimental.do_not_convert
    def draw(key):
        return sample([dim], seed=key, **kwargs)

    return tf.map_fn(draw, keys, fn_output_signature=tf.float32)


# ---------------------------------------------------------------- the approaches

_STEP = "step size"
_UNIT = dict(minimum=0, below=1)

APPROACHES = {approach.name: approach for approach in (
    # Measured (docs/quality.md): as good as momentum at its best step, and its step does
    # not depend on the size of the gradient, which grows with the number of known pixels.
    # lr 0.05 (0.01 until the encoder start): from the encoder's z, 100 iterations at 0.05
    # complete as well as 200 at 0.01 and better than a cosine decay from 0.03 or 0.1
    # (docs/performance.md, "Time to quality").
    Approach("adam", "as good as momentum at its best step, at any gradient scale", (
        Parameter("lr", 0.05, _STEP, above=0),
        Parameter("beta1", 0.9, "Adam's decay of the gradient's mean", **_UNIT),
        Parameter("beta2", 0.999, "Adam's decay of the gradient's square", **_UNIT),
        Parameter("eps", 1e-8, "Adam's epsilon", above=0),
    ), state_size=2, update=adam_update),
    # The loss sums over pixels, so its gradient is ~100 per coordinate of z on faces: the
    # original's lr 0.01 sends momentum from wall to wall of [-1, 1] (3 dB worse on the
    # center mask); 1e-4 completes as adam does.
    Approach("momentum", "the original's 2016 projected gradient descent", (
        Parameter("lr", 1e-4, _STEP, above=0),
        Parameter("momentum", 0.9, "momentum's decay", **_UNIT),
    ), state_size=1, update=momentum_update),
    Approach("hmc", "Hamiltonian Monte Carlo sampling", (
        Parameter("hmc_beta", 0.2, "HMC's inverse temperature", above=0),
        Parameter("hmc_eps", 0.001, "HMC's leapfrog step size", above=0),
        Parameter("hmc_l", 100, "leapfrog steps per HMC iteration", kind=int, minimum=1),
        Parameter("hmc_anneal", 1.0, "HMC's factor on beta per iteration", above=0),
    ), state_size=0, update=hmc_update),
)}
DEFAULT_APPROACH = "adam"
SCHEDULES = ("constant", "cosine")
INITS = ("encoder", "random")
# Iterations when --nIter is not given, by where the search starts; from the encoder's
# start, more for the mask types that need them (measured on 200 held-out faces:
# docs/performance.md, "Time to quality"). From the encoder's start the fill is best
# after ~25-50 iterations and then fits the known pixels at the hole's expense; with 80%
# of the pixels missing it goes on improving to 200.
DEFAULT_ITERATIONS = {"encoder": 50, "random": 1000}
ENCODER_ITERATIONS_BY_MASK = {"random80": 200}
OUT_INTERVAL = 50  # the original's snapshot interval ...
MIN_SNAPSHOTS = 10  # ... made shorter where a search would show fewer steps than this


def all_parameters():
    """{name: [(approach name, Parameter)]} over every approach: a name two approaches
    share (lr) is one flag whose default is each approach's own."""
    found = {}
    for approach in APPROACHES.values():
        for parameter in approach.parameters:
            found.setdefault(parameter.name, []).append((approach.name, parameter))
    return found


# ---------------------------------------------------------------- the options


@dataclass(frozen=True)
class SearchOptions:
    """How `complete` searches, checked when made (InputError for a bad value).

    hyperparameters: the approach's own (see APPROACHES), any not given at its default;
    those of other approaches are allowed and unused.
    lam: weight of the perceptual (discriminator) loss per image, as the original's.
    n_iter: iterations (default: by init, DEFAULT_ITERATIONS). init: where each image's
    search starts, "encoder" (the model's encoder; a random start where it has none) or
    "random" (the original's Uniform(-1, 1) from the image's seed). schedule: the step
    size's schedule, "constant" or "cosine" (default: the approach's own).
    weighted_context: weight known pixels by the paper's 7x7 weights instead of the mask.
    blend: fill the hole with G(z) Poisson-blended into the known pixels (the paper's last
    step) instead of pasting it. Images go in batches of `batch_size`; snapshots every
    `out_interval` iterations (default: default_out_interval(n_iter)).
    """

    approach: str = DEFAULT_APPROACH
    n_iter: int = None  # None: DEFAULT_ITERATIONS of where the search starts
    init: str = "encoder"
    schedule: str = None  # None: the approach's own
    lam: float = 0.1
    weighted_context: bool = False
    blend: bool = False
    batch_size: int = 64
    out_interval: int = None  # None: default_out_interval(n_iter)
    hyperparameters: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.approach not in APPROACHES:
            raise InputError(f"unknown approach {self.approach!r}: choose one of {', '.join(APPROACHES)}")
        if self.n_iter is not None:
            check_number(self.n_iter, "n_iter", int, minimum=0)
        if self.init not in INITS:
            raise InputError(f"unknown init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        check_number(self.batch_size, "batch_size", int, minimum=1)
        if self.out_interval is not None:
            check_number(self.out_interval, "out_interval", int, minimum=1)
        check_number(self.lam, "lam", float, minimum=0)
        known = all_parameters()
        for name, value in self.hyperparameters.items():
            if name not in known:
                raise InputError(f"unknown search setting {name!r}: choose from {', '.join(_settings())}")
            for _, parameter in known[name]:
                parameter.check(value)

    @property
    def search_approach(self):
        return APPROACHES[self.approach]

    @property
    def search_schedule(self):
        return self.schedule or self.search_approach.schedule

    def values(self):
        """{name: value} of the approach's hyperparameters, defaults filled in."""
        return {p.name: p.check(self.hyperparameters.get(p.name, p.default)) for p in self.search_approach.parameters}


def default_iterations(init, mask_type=None):
    """Iterations when none are given: by the start, and from the encoder's by mask type."""
    if init == "encoder":
        return ENCODER_ITERATIONS_BY_MASK.get(mask_type, DEFAULT_ITERATIONS["encoder"])
    return DEFAULT_ITERATIONS[init]


def default_out_interval(n_iter):
    """Snapshots when no interval is given: every OUT_INTERVAL iterations, as the
    original's, or often enough for MIN_SNAPSHOTS steps (50 iterations: every 5)."""
    return max(1, min(OUT_INTERVAL, math.ceil(n_iter / MIN_SNAPSHOTS)))


def settled(options, has_encoder, mask_type=None):
    """`options` with where the search starts and how long it runs decided: init
    "encoder" becomes "random" where the model has no encoder (with a warning), an unset
    n_iter default_iterations(init, mask_type), an unset out_interval
    default_out_interval(n_iter)."""
    init = options.init
    if init == "encoder" and not has_encoder:
        warnings.warn("the model has no encoder: the search starts from random z "
                      "(train one with `train-encoder`, or pass --init random to silence this)")
        init = "random"
    n_iter = default_iterations(init, mask_type) if options.n_iter is None else options.n_iter
    out_interval = default_out_interval(n_iter) if options.out_interval is None else options.out_interval
    return dataclasses.replace(options, init=init, n_iter=n_iter, out_interval=out_interval)


def _settings():
    return [f.name for f in dataclasses.fields(SearchOptions) if f.name != "hyperparameters"] + list(all_parameters())


def search_options(options=None, **settings):
    """`options` (default SearchOptions()) with `settings` changed: SearchOptions' fields
    (n_iter=500) and hyperparameters (lr=1e-4) by name; None leaves a setting as it is."""
    options = options or SearchOptions()
    settings = {k: v for k, v in settings.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(SearchOptions)} - {"hyperparameters"}
    hyperparameters = {**options.hyperparameters, **{k: v for k, v in settings.items() if k not in fields}}
    return dataclasses.replace(options, hyperparameters=hyperparameters,
                               **{k: v for k, v in settings.items() if k in fields})
