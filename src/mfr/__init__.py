"""mfr: masked face recognition (Geng et al., ACM MM 2020) and beyond."""

__version__ = "0.1.0"
