"""embedlab: train text models whose embedding layer is under study."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("embedlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]


def load(path):
    """Rebuild a trained checkpoint for inference: ``embedlab.load(path).predict(texts)``.

    See :func:`embedlab.inference.load`; imported lazily so ``import embedlab`` stays light.
    """
    from embedlab.inference import load as _load

    return _load(path)


__all__ += ["load"]
