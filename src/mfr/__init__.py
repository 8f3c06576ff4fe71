"""mfr: masked face recognition (Geng et al., ACM MM 2020) and beyond."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `import mfr` stays light (FaceRecognizer pulls in numpy and the embedders)
    if name == "FaceRecognizer":
        from mfr.api import FaceRecognizer

        return FaceRecognizer
    raise AttributeError(f"module 'mfr' has no attribute {name!r}")
