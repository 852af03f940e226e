"""The `batch_norm` modes of a `MetaModel`: how it runs its networks.

One object per mode, chosen when the learner is built
(`batch_norm_mode(name)`). Support sets are always normalized with their
own batch statistics; the modes differ for query sets:

- `TransductiveBatchNorm` (`"transductive"`, and `"per_step"`, whose
  per-step scales and offsets `MAML` adds): each query set with its own
  batch statistics.
- `InductiveBatchNorm` (`"inductive"`): queries with the statistics of the
  task's support set under the adapted weights, so that each query is
  predicted on its own.

Where the backend has a fused batch-normalization kernel (TensorFlow,
PyTorch), every pass with batch statistics whose updated moving statistics
are discarded (all but the inductive mode's pass that reads the support
set's statistics) runs a private copy of the network that uses it
(`normalization.fused_copy`).

In every mode the wrapped model's moving statistics are neither used nor
updated by meta-training, frozen (non-trainable) BatchNormalization layers
keep their moving statistics, and Dropout-like layers are active in
training and inactive in `predict()`, `evaluate()` and `adapt()` (in
inductive training, query passes keep Dropout active too). Padded support
examples (variable-way episodes) count in the statistics.

A learner may run more than one network with the same semantics (the
wrapped model, a relation module): each is `prepare`d once, outside any
traced step, and then named by its `model` argument.
"""

import inspect

from keras import ops

from keras_meta.algorithms import normalization
from keras_meta.models.batch_statistics import BatchStatisticsModel
from keras_meta.models.surgery import clone_with_weights


class TransductiveBatchNorm:
    """Batch statistics everywhere: support and query sets alike."""

    # Whether queries take the support set's statistics (see
    # `InductiveBatchNorm`).
    inductive = False

    def __init__(self, owner):
        self.owner = owner
        self._networks = {}

    def prepare(self, model):
        """Prepares `model` for `run_model` and `run_query`: which layers
        normalize, how it takes `training`, and private copies where
        BatchNormalization and Dropout must follow different flags."""
        batch_layers = normalization.batch_statistic_layers(model)
        parameters = inspect.signature(model.call).parameters
        network = {
            "batch_statistics": bool(batch_layers),
            "inductive": self.inductive and bool(batch_layers),
            "slots": [],
            "takes_training": "training" in parameters or any(
                p.kind is p.VAR_KEYWORD for p in parameters.values()),
            "no_noise": None,
            "fixed_statistics": None,
        }
        if batch_layers and normalization.has_stochastic_layers(model):
            network["no_noise"] = normalization.private_copy(
                model, "stochastic")
        if batch_layers:
            # Batch statistics whose updates are discarded (every pass
            # but the inductive mode's `support_statistics`): the
            # backend's fused kernel may compute them (same values, less
            # time).
            network["fused"] = normalization.fused_copy(model)
            if network["no_noise"] is not None:
                network["fused_no_noise"] = normalization.fused_copy(
                    model, freeze_stochastic=True)
        self._networks[id(model)] = network
        return network

    def network(self, model):
        return self._networks[id(model)]

    @staticmethod
    def call_model(network, model, weights, state, inputs, training):
        """`model.stateless_call`, passing `training` if it takes it."""
        kwargs = {}
        if network["takes_training"]:
            kwargs["training"] = training
        return model.stateless_call(weights, state, inputs, **kwargs)

    def run_model(self, model, weights, state, inputs, training,
                  fused=True):
        """Runs `model` on `weights`, normalizing `inputs` with their own
        batch statistics; Dropout-like layers are active only if
        `training`. Returns `(outputs, new_state)`; the new state's moving
        statistics have gradients only with `fused=False` (the fused
        kernel's copy, used otherwise where there is one, computes the
        same values without them)."""
        network = self.network(model)
        if not network["batch_statistics"]:
            return self.call_model(network, model, weights, state, inputs,
                                   bool(training))
        if training or network["no_noise"] is None:
            runner = (network.get("fused") if fused else None) or model
        else:
            runner = (network.get("fused_no_noise") if fused else None) or (
                network["no_noise"])
        return self.call_model(network, runner, weights, state, inputs, True)

    def support_statistics(self, model, weights, state, support_inputs,
                           training):
        """`(support_outputs, state)`: here the state unchanged (see
        `InductiveBatchNorm.support_statistics`)."""
        outputs, _ = self.run_model(model, weights, state, support_inputs,
                                    training)
        return outputs, state

    def run_query(self, model, weights, state, query_inputs, training,
                  support_inputs, statistics=None):
        """Runs `model` on query examples: here with their own batch
        statistics. Returns `(outputs, new_state)`."""
        del support_inputs, statistics
        return self.run_model(model, weights, state, query_inputs, training)

    def model_state(self, model, weights, support_inputs):
        """The non-trainable values an adapted copy of `model` holds."""
        del weights, support_inputs
        return [ops.convert_to_tensor(v.value)
                for v in model.non_trainable_variables]

    def copy_model(self, model, weights, support_inputs):
        """A copy of `model` holding `weights` that predicts as `run_query`
        does: a `BatchStatisticsModel` when `model` normalizes with batch
        statistics, else a plain copy."""
        state = self.model_state(model, weights, support_inputs)
        copy = clone_with_weights(model, weights, state=state)
        network = self.network(model)
        if network["batch_statistics"] and not network["inductive"]:
            return BatchStatisticsModel(
                copy, name=f"{model.name}_batch_statistics")
        return copy


class InductiveBatchNorm(TransductiveBatchNorm):
    """Queries normalized with the support set's statistics (MetaBN,
    Bronskill et al., 2020)."""

    inductive = True

    def prepare(self, model):
        normalization.check_inductive_support(model, self.owner)
        network = super().prepare(model)
        if network["inductive"]:
            network["slots"] = normalization.statistic_slots(model)
            if network["no_noise"] is not None:
                network["fixed_statistics"] = normalization.private_copy(
                    model, "normalization")
        return network

    def support_statistics(self, model, weights, state, support_inputs,
                           training):
        """`(support_outputs, state)`, the state holding the support set's
        batch statistics as the moving statistics of every
        batch-statistics BatchNormalization layer."""
        network = self.network(model)
        if not network["inductive"]:
            return super().support_statistics(model, weights, state,
                                              support_inputs, training)
        # The statistics' gradients flow through the moving-statistics
        # update, which the fused copy does not differentiate: the model's
        # own layers compute this pass.
        outputs, new_state = self.run_model(
            model, weights,
            normalization.zeroed_statistics(state, network["slots"]),
            support_inputs, training, fused=False)
        return outputs, normalization.batch_statistics_from_update(
            new_state, network["slots"])

    def run_query(self, model, weights, state, query_inputs, training,
                  support_inputs, statistics=None):
        """Runs `model` on query examples normalized with the support set's
        statistics under `weights` (`statistics`, if already computed by
        `support_statistics`). Returns `(outputs, new_state)`."""
        network = self.network(model)
        if not network["inductive"]:
            return self.run_model(model, weights, state, query_inputs,
                                  training)
        if statistics is None:
            _, statistics = self.support_statistics(
                model, weights, state, support_inputs, training)
        if training and network["fixed_statistics"] is not None:
            # Dropout active, BatchNormalization on the given statistics.
            return self.call_model(network, network["fixed_statistics"],
                                   weights, statistics, query_inputs, True)
        return self.call_model(network, model, weights, statistics,
                               query_inputs, False)

    def model_state(self, model, weights, support_inputs):
        """The model's state with the support set's statistics as moving
        statistics, so that a stock Keras copy predicts inductively."""
        state = super().model_state(model, weights, support_inputs)
        if not self.network(model)["inductive"]:
            return state
        _, state = self.support_statistics(
            model, [ops.convert_to_tensor(w) for w in weights], state,
            ops.convert_to_tensor(support_inputs), False)
        return state


MODES = {
    "inductive": InductiveBatchNorm,
    "transductive": TransductiveBatchNorm,
    "per_step": TransductiveBatchNorm,
}


def batch_norm_mode(name, owner):
    """The mode object for `batch_norm=name` of the learner class `owner`."""
    if name not in MODES:
        raise ValueError(
            f"`batch_norm` must be one of {list(MODES)}. "
            f"Received: batch_norm={name!r}."
        )
    return MODES[name](owner)
