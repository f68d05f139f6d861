"""Spreading each batch's search over the local devices (`dcgan-complete --strategy
mirrored`, or a tf.distribute strategy given to `complete`): each device searches its own
slice of the batch.

An image's loss depends only on its own z (completion.py), so the slices never talk to
each other: an image's result is the one a single device gives, up to floating-point
rounding (kernels may sum in another order for another slice size). The networks should
be built or loaded under `strategy.scope()`, so that each device reads its own copy of
the weights.
"""
import dataclasses

import numpy as np
import tensorflow as tf


def distribute(search, strategy):
    """`search` (completion's compiled run and evaluate) spread over `strategy`'s
    replicas; `search` itself for one replica or no strategy."""
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return search
    spread = _Spread(strategy)

    def run(z, state, images, weights, lowres_weights, seeds, hparams, start, steps, n_iter):
        # outputs: z [B, z_dim], state (each [B, z_dim]), losses [steps, B], z per step [steps, B, z_dim]
        return spread(search.run, (z, state, images, weights, lowres_weights, seeds), (hparams, start, steps, n_iter),
                      batch_axes=(0, 0, 1, 1))

    def evaluate(z, images, weights, lowres_weights, hparams):
        return spread(search.evaluate, (z, images, weights, lowres_weights), (hparams,), batch_axes=(0, 0))

    return dataclasses.replace(search, run=run, evaluate=evaluate)


class _Spread:
    """Calls a function on every replica with its slice of the batched arguments (batch
    first) and the shared ones as they are; joins the replicas' outputs along each
    output's batch axis."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync

        @tf.function(reduce_retracing=True)
        def on_replicas(function, batched, shared):
            return strategy.run(lambda *a: function(*a, *shared), args=batched)

        self._on_replicas = on_replicas

    def __call__(self, function, batched, shared, batch_axes):
        flat = tf.nest.flatten(batched)
        size = int(flat[0].shape[0])
        if size < self.replicas:  # no replica may get an empty slice (its kernels fail): repeat the last image
            flat = [tf.concat([x, tf.repeat(x[-1:], self.replicas - size, axis=0)], 0) for x in flat]
        sizes = [len(part) for part in np.array_split(np.arange(max(size, self.replicas)), self.replicas)]
        parts = [tf.split(x, sizes) for x in flat]
        slices = [tf.nest.pack_sequence_as(batched, [p[r] for p in parts]) for r in range(self.replicas)]
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda context: slices[context.replica_id_in_sync_group])
        outputs = self._on_replicas(function, per_replica, shared)

        def joined(output, axis):
            whole = tf.concat(self.strategy.experimental_local_results(output), axis)
            return whole[:size] if axis == 0 else whole[:, :size]

        return tuple(tf.nest.map_structure(lambda o, a=axis: joined(o, a), output)
                     for output, axis in zip(outputs, batch_axes))
