"""Image models for transfer learning (Flax linen).

- :class:`MobileNetV2`: ``keras.applications.MobileNetV2``, layer for layer and name for name.
- :class:`ClassifierHead`, :class:`BackboneClassifier`: a new head on a pretrained backbone.
- :func:`unfreeze_top`: unfreezes the top N units of a MobileNetV2 backbone in a frozen mask.
- :func:`keras_style_init`: Keras' default initial values, drawn in NumPy (no compilation).
- :mod:`seqjax.models.mobilenet_v2_weights`: Keras' ImageNet ``.h5`` files, read with h5py.
"""

from seqjax.models.classifier_head import BackboneClassifier, ClassifierHead
from seqjax.models.keras_init import keras_style_init
from seqjax.models.mobilenet_v2 import MobileNetV2, preprocess_input, unfreeze_top

__all__ = [
    "BackboneClassifier",
    "ClassifierHead",
    "MobileNetV2",
    "keras_style_init",
    "preprocess_input",
    "unfreeze_top",
]
