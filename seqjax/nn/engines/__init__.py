"""Fast engines for the recurrent layers (the scan in :mod:`seqjax.nn.recurrence` is the reference
engine), chosen by ``RecurrentLayer.implementation``:

* :mod:`~seqjax.nn.engines.cpu`: the CPU kernels' JAX side (primitives, lowering per platform,
  differentiation, vmap, sharding);
* :mod:`~seqjax.nn.engines.portable`: the same contract in pure JAX (reference and fallback);
* :mod:`~seqjax.nn.engines.cpu_build`: building, caching and loading the C++ library;
* :mod:`~seqjax.nn.engines.cuda`: the LSTM through cuDNN (``implementation="cudnn"``).
"""
